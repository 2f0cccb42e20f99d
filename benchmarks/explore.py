"""Exhaustive exploration figures, from one run.

Run: .venv/bin/python benchmarks/explore.py [--aps 1,2,3] [--budget N]

The upstream-fix SEV-ES scenario scaled to 1 boot CPU + N APs (the boot
CPU starts every AP, then waits for each; each AP runs the same
start_secondary program), explored with no trigger and with up to two
(printk after cr4_init, NMI once online, on every AP): distinct states,
transitions, states/s and wall time. No partial-order or symmetry
reduction yet (issue 6), so the counts grow with the interleavings of the
APs' programs; the SPIN comparison the issue asks for is not built.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from fuzzinit.explore.bfs import explore
from fuzzinit.scenario.load import load

ROOT = Path(__file__).resolve().parent.parent


def scaled(aps: int) -> str:
    text = (ROOT / "models/upstream-fix-sev-es.toml").read_text()
    starts = ", ".join(f'"start {i}"' for i in range(1, aps + 1))
    waits = ", ".join(f'"wait_online {i}"' for i in range(1, aps + 1))
    text = text.replace('smp_init = ["start 1", "wait_online 1"]',
                        f"smp_init = [{starts}, {waits}]")
    text = re.sub(r'name = "upstream-fix-sev-es"',
                  f'name = "upstream-fix-sev-es-{aps}ap"', text)
    ap = text[text.index("[[cpu]]  # the AP"):text.index("[orderings]")]
    text = text.replace(ap, ap * aps)
    every = ", ".join(str(i) for i in range(1, aps + 1))
    return text.replace("cpus = [1]", f"cpus = [{every}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--aps", default="1,2,3")
    parser.add_argument("--budget", type=int, default=3_000_000)
    args = parser.parse_args()
    print(f"{'scenario':<26} {'triggers':>8} {'result':>17} {'states':>10}"
          f" {'transitions':>12} {'states/s':>10} {'wall s':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(x) for x in args.aps.split(",")):
            path = Path(tmp) / f"s{n}.toml"
            path.write_text(scaled(n))
            sc = load(path)
            for k in (0, 2):
                ex = explore(sc, k, args.budget)
                print(f"{sc.name:<26} {k:>8} {ex.verdict:>17} {ex.states:>10}"
                      f" {ex.transitions:>12} {ex.states_per_s:>10,.0f}"
                      f" {ex.elapsed_s:>8.2f}")


if __name__ == "__main__":
    main()
