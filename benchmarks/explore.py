"""fuzzinit explore next to SPIN on the exported Promela model, one run.

Run: .venv/bin/python benchmarks/explore.py [--aps 1,2,3,4] [--plain]
     .venv/bin/python benchmarks/explore.py --ablation

Complete verdicts: the upstream-fix SEV-ES scenario scaled to 1 boot CPU +
N APs (fuzzinit/explore/scaling.py), with no trigger, with up to two NMIs
(the issue's goal: 4 APs, 2 NMIs) and with up to two of printk/NMI.
fuzzinit: states, states/s and wall time (scenario load + explore, both
reductions on; --plain adds the search without reductions). SPIN: states
stored, states/s of pan's run (pan's own elapsed time; its wall time
when that is under 50 ms), compile time (spin -a + gcc) and total wall
time. Ratios: fuzzinit states/s over SPIN's, SPIN's total wall time over
fuzzinit's (above 1: fuzzinit is faster to the verdict).

First counterexample: the pinned-FRED SEV-ES scenario (the seed case)
scaled the same way, all triggers; wall time to the failing ordering for
both (fuzzinit: load + explore, a shortest ordering; SPIN: compile + pan's
depth-first run to the first assertion violation; `pan -i`, which SPIN
needs for a shortest trail, is shown apart).

The state counts are not comparable one to one: SPIN stores its own
states (process counters and all variables of the exported model), with
its own partial-order reduction and no symmetry reduction.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fuzzinit.explore.bfs import explore
from fuzzinit.explore.scaling import scaled
from fuzzinit.export.spin import verify
from fuzzinit.scenario.load import Scenario, load

ROOT = Path(__file__).resolve().parent.parent
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
TRIGGERS: dict[str, tuple[frozenset[str] | None, int]] = {
    "none": (frozenset(), 0),
    "2 NMIs": (frozenset({"nmi"}), 2),
    "printk+NMI 2": (None, 2),
}


def write(tmp: Path, source: Path, aps: int,
          kinds: frozenset[str] | None) -> Path:
    path = tmp / f"{source.stem}-{aps}-{len(kinds or ())}.toml"
    path.write_text(scaled(source.read_text(), aps, kinds))
    return path


def fuzzinit_run(path: Path, k: int, reduce: bool) -> tuple[Scenario, str,
                                                             int, float]:
    start = time.monotonic()
    sc = load(path)
    ex = explore(sc, k, 20_000_000, por=reduce, symmetry=reduce)
    return sc, ex.verdict, ex.states, time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aps", default="1,2,3,4")
    parser.add_argument("--plain", action="store_true",
                        help="also explore without reductions")
    parser.add_argument("--ablation", action="store_true",
                        help="only: each reduction on and off, 4 APs and"
                        " 2 NMIs")
    args = parser.parse_args()
    if args.ablation:
        ablation()
        return
    aps = [int(x) for x in args.aps.split(",")]
    print("complete verdicts (upstream fix, SEV-ES)")
    print(f"{'APs':>3} {'triggers':<13} {'fuzzinit':>9} {'states':>9}"
          f" {'states/s':>9} {'wall s':>7} | {'SPIN':>8} {'states':>10}"
          f" {'states/s':>10} {'compile':>7} {'wall s':>7} |"
          f" {'st/s ratio':>10} {'wall ratio':>10}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for n in aps:
            for label, (kinds, k) in TRIGGERS.items():
                path = write(tmp, FIXED, n, kinds)
                rows = [True, False] if args.plain else [True]
                for reduce in rows:
                    sc, verdict, states, wall = fuzzinit_run(path, k, reduce)
                    rate = states / wall if wall else 0.0
                    spin = verify(sc, k, tmp / f"spin-{n}-{k}-{label[0]}")
                    spin_wall = spin.compile_s + spin.run_s
                    # pan counts in 10 ms steps: below that, its wall time
                    pan_s = spin.pan_elapsed_s if spin.pan_elapsed_s >= 0.05 \
                        else spin.run_s
                    spin_rate = spin.states / pan_s if pan_s else 0.0
                    name = "reduced" if reduce else "plain"
                    print(f"{n:>3} {label:<13} {name:>9} {states:>9,}"
                          f" {rate:>9,.0f} {wall:>7.2f} | {spin.verdict[:8]:>8}"
                          f" {spin.states:>10,} {spin_rate:>10,.0f}"
                          f" {spin.compile_s:>7.2f} {spin_wall:>7.2f} |"
                          f" {rate / spin_rate if spin_rate else 0:>10.3f}"
                          f" {spin_wall / wall if wall else 0:>10.2f}"
                          + ("" if verdict == "complete" else
                             f"  fuzzinit: {verdict}"))
        print()
        print("time to the first counterexample (pinned FRED, SEV-ES)")
        print(f"{'APs':>3} {'fuzzinit s':>10} {'events':>6} {'SPIN s':>8}"
              f" {'(compile)':>9} {'ratio':>7} {'pan -i s':>8}"
              f" {'events':>6}")
        for n in aps:
            path = write(tmp, PINNED, n, None)
            start = time.monotonic()
            sc = load(path)
            k = sum(t.count for t in sc.triggers)
            ex = explore(sc, k, 20_000_000)
            wall = time.monotonic() - start
            spin = verify(sc, k, tmp / f"spin-pinned-{n}")
            spin_wall = spin.compile_s + spin.run_s
            print(f"{n:>3} {wall:>10.3f} {len(ex.ordering or []):>6}"
                  f" {spin_wall:>8.2f} {spin.compile_s:>9.2f}"
                  f" {spin_wall / wall:>7.0f} {spin.shorten_s:>8.2f}"
                  f" {len(spin.ordering or []):>6}")


def ablation() -> None:
    """The goal scenario with both, one or no reduction."""
    with tempfile.TemporaryDirectory() as tmp_name:
        path = write(Path(tmp_name), FIXED, 4, frozenset({"nmi"}))
        sc = load(path)
        print("upstream fix, 4 APs, up to 2 NMIs")
        print(f"{'POR':>5} {'symmetry':>8} {'states':>9} {'states/s':>9}"
              f" {'wall s':>7}")
        for por, sym in ((True, True), (True, False), (False, True),
                         (False, False)):
            ex = explore(sc, 2, 20_000_000, por=por, symmetry=sym)
            print(f"{por!s:>5} {sym!s:>8} {ex.states:>9,}"
                  f" {ex.states_per_s:>9,.0f} {ex.elapsed_s:>7.2f}")


if __name__ == "__main__":
    main()
