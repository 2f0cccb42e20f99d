"""Every performance figure of fuzzinit from one run, each beside its anchor.

Run: make bench   (= .venv/bin/python benchmarks/run_all.py)
     .venv/bin/python benchmarks/run_all.py --quick     (under a minute)
     .venv/bin/python benchmarks/run_all.py --json out.json

Prints one JSON object (stdout, or --json FILE) and a table (stderr when
the JSON goes to stdout). Each measurement runs in a new process, so that
it chooses its own build of the model (FUZZINIT_MODEL) and its peak RSS is
its own:

- model: primitive ops/s and orderings/s on the seed scenario (every
  ordering fails at the AP's printk) and on the upstream fix (every
  ordering runs to the end), compiled and interpreted, against a bare
  Python loop of the same shape (one list update per event);
- run: examples/s of `search` on the upstream fix and the seed's time to
  its first failing ordering, in the default build;
- fuzz: `fuzzinit fuzz` exec/s on the seed against an empty atheris
  harness and against the model's bound (compiled orderings/s);
- explore vs SPIN: 1 boot CPU + 4 APs + up to 2 NMIs (the upstream fix):
  states, states/s and wall time to a complete verdict, SPIN's pan on the
  exported model (states/s of pan's own run, compile time apart), and the
  wall time to the first counterexample (the seed scaled to 4 APs);
- scale: 1, 8, 32 and 128 APs: `search` time per event (upstream fix) and
  `explore` states/s and bytes per state under a state budget, with peak
  RSS;
- ablation: explore of the 4-AP, 2-NMI case with each reduction (POR,
  symmetry) on and off, and with hash compaction.

--quick: fewer orderings and examples, smaller budgets, the ablation on
2 APs, and no SPIN (its compile of the exported model alone takes 15-45 s
on the 2-core development machine).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "models" / "fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models" / "upstream-fix-sev-es.toml"
Row = dict[str, Any]


# --- workers: each runs in its own process --------------------------------

def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _scaled(source: Path, aps: int, kinds: frozenset[str] | None) -> Path:
    from fuzzinit.explore.scaling import scaled

    folder = Path(tempfile.mkdtemp(prefix="fuzzinit-bench-"))
    path = folder / f"{source.stem}-{aps}.toml"
    path.write_text(scaled(source.read_text(), aps, kinds))
    return path


def w_model(scenario: str, orderings: int) -> Row:
    from fuzzinit import model_build
    from fuzzinit.model.run import run
    from fuzzinit.orderings.random_walk import random_ordering
    from fuzzinit.scenario.load import load

    sc = load(scenario)
    rng = random.Random(1)
    inputs = []
    for _ in range(orderings):
        ordering = random_ordering(sc, rng)
        inputs.append(([e.cpu for e in ordering], [e.op for e in ordering]))
    m = sc.machine
    ops = 0
    start = time.perf_counter()
    for cpus, events in inputs:
        result = run(m, cpus, events)
        ops += result.at + 1 if result.at >= 0 else len(events)
    model_s = time.perf_counter() - start
    # The same shape without the model: one list update per event, over
    # exactly the events the model executed.
    executed = []
    for cpus, events in inputs:
        result = run(m, cpus, events)
        n = result.at + 1 if result.at >= 0 else len(events)
        executed.append((cpus[:n], events[:n]))
    st = [0] * (sc.ncpu * 32)
    start = time.perf_counter()
    for cpus, events in executed:
        for c, e in zip(cpus, events, strict=True):
            st[c] += e
    bare_s = time.perf_counter() - start
    return {"build": model_build.build(), "ops": ops,
            "ops_per_s": ops / model_s, "orderings_per_s": orderings / model_s,
            "bare_loop_ops_per_s": ops / bare_s}


def w_search(scenario: str, examples: int, aps: int) -> Row:
    import fuzzinit.search as search_module
    from fuzzinit import model_build
    from fuzzinit.scenario.load import load

    path = _scaled(Path(scenario), aps, frozenset()) if aps > 1 else \
        Path(scenario)
    sc = load(path)
    # Count the events of the orderings the search runs (search.py calls
    # evaluate() once per ordering it tries).
    from fuzzinit.verdict import evaluate

    executed = [0]

    def counting(sc_: Any, events: Any, *args: Any) -> Any:
        executed[0] += len(events)
        return evaluate(sc_, events, *args)

    setattr(search_module, "evaluate", counting)  # noqa: B010
    search = search_module.search
    start = time.perf_counter()
    report = search(sc, examples=examples, seed=1)
    wall = time.perf_counter() - start
    return {"build": model_build.build(), "aps": aps,
            "examples": report.examples, "wall_s": wall,
            "examples_per_s": report.examples / wall,
            "events": executed[0],
            "us_per_event": wall / max(executed[0], 1) * 1e6,
            "first_failure_s": report.first_failure_s,
            "failed": report.finding is not None, "peak_rss": _peak_rss()}


def w_explore(scenario: str, aps: int, kinds: list[str] | None,
              triggers: int, budget: int, por: bool = True,
              symmetry: bool = True, hash_compact: bool = False) -> Row:
    from fuzzinit import model_build
    from fuzzinit.explore.bfs import explore
    from fuzzinit.explore.store import resident_bytes
    from fuzzinit.scenario.load import load

    start = time.perf_counter()
    path = _scaled(Path(scenario), aps,
                   None if kinds is None else frozenset(kinds))
    sc = load(path)
    k = triggers if triggers >= 0 else sum(t.count for t in sc.triggers)
    before = resident_bytes()
    ex = explore(sc, k, budget, por=por, symmetry=symmetry,
                 hash_compact=hash_compact)
    after = resident_bytes()
    wall = time.perf_counter() - start
    # States/s from the median of three searches: one search of 0.3 s
    # varied by a quarter from run to run on the development machine.
    elapsed = [ex.elapsed_s] + [
        explore(sc, k, budget, por=por, symmetry=symmetry,
                hash_compact=hash_compact).elapsed_s for _ in range(2)]
    explore_s = statistics.median(elapsed)
    # Bytes per state: the peak of what the search allocated, over its
    # states, from a second run under tracemalloc (exact, unlike resident
    # memory, whose pages small searches do not fill).
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    explore(sc, k, budget, por=por, symmetry=symmetry,
            hash_compact=hash_compact)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {"build": model_build.build(), "aps": aps, "verdict": ex.verdict,
            "states": ex.states, "transitions": ex.transitions,
            "explore_s": explore_s, "wall_s": wall,
            "states_per_s": ex.states / explore_s if explore_s else 0.0,
            "bytes_per_state": peak / max(ex.states, 1),
            "rss_growth_per_state": (after - before) / max(ex.states, 1),
            "events": len(ex.ordering or []), "peak_rss": _peak_rss(),
            "miss_probability": ex.miss_probability}


def w_spin(scenario: str, aps: int, kinds: list[str] | None,
           triggers: int) -> Row:
    from fuzzinit.export.spin import verify
    from fuzzinit.scenario.load import load

    path = _scaled(Path(scenario), aps,
                   None if kinds is None else frozenset(kinds))
    sc = load(path)
    k = triggers if triggers >= 0 else sum(t.count for t in sc.triggers)
    res = verify(sc, k, path.parent / "spin")
    pan_s = res.pan_elapsed_s if res.pan_elapsed_s >= 0.05 else res.run_s
    return {"verdict": res.verdict, "states": res.states,
            "compile_s": res.compile_s, "run_s": res.run_s, "pan_s": pan_s,
            "states_per_s": res.states / pan_s if pan_s else 0.0,
            "wall_s": res.compile_s + res.run_s,
            "events": len(res.ordering or [])}


def w_fuzz(seconds: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "fuzzinit", "fuzz", str(SEED), "--json",
             "--time", str(seconds)], cwd=tmp, capture_output=True,
            text=True, check=False)
    if not proc.stdout.strip():
        raise RuntimeError(f"fuzzinit fuzz: {proc.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return {"exec_per_s": out["exec_per_s"]}


EMPTY_HARNESS = """
import sys
import atheris

def test_one_input(data: bytes) -> None:
    pass

atheris.Setup(sys.argv, test_one_input)
atheris.Fuzz()
"""


def w_empty_harness(runs: int) -> Row:
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "empty.py"
        script.write_text(EMPTY_HARNESS)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, str(script), f"-runs={runs}",
                               "-print_final_stats=1"], cwd=tmp,
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
    done = re.search(r"stat::number_of_executed_units:\s*(\d+)",
                     proc.stderr)
    if done is None:
        raise RuntimeError(f"empty harness: {proc.stderr[-2000:]}")
    return {"exec_per_s": int(done.group(1)) / wall, "wall_s": wall}


WORKERS: dict[str, Callable[..., Row]] = {
    "model": w_model, "search": w_search, "explore": w_explore,
    "spin": w_spin, "fuzz": w_fuzz, "empty_harness": w_empty_harness}


def measure(name: str, build: str | None = None, **kw: Any) -> Row:
    """Run worker `name` in a new process (FUZZINIT_MODEL=build)."""
    env = dict(os.environ)
    env.pop("FUZZINIT_MODEL", None)
    if build is not None:
        env["FUZZINIT_MODEL"] = build
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", name, json.dumps(kw)],
        env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} {kw}: exit {proc.returncode}:"
                           f" {proc.stderr[-3000:]}")
    out: Row = json.loads(proc.stdout)
    return out


# --- the suite --------------------------------------------------------------

def suite(quick: bool, say: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"quick": quick}
    from fuzzinit import model_build

    out["default_build"] = model_build.describe()
    say(f"default build: {out['default_build']}")
    n = 2000 if quick else 20_000
    out["model"] = {}
    for scen in (SEED, FIXED):
        row = {b: measure("model", b, scenario=str(scen), orderings=n)
               for b in ("compiled", "interpreted")}
        row["compiled_over_interpreted"] = \
            row["compiled"]["ops_per_s"] / row["interpreted"]["ops_per_s"]
        out["model"][scen.stem] = row
        say(f"model {scen.stem}: compiled {row['compiled']['ops_per_s']:,.0f}"
            f" ops/s, interpreted {row['interpreted']['ops_per_s']:,.0f}"
            f" ({row['compiled_over_interpreted']:.1f}x); bare loop"
            f" {row['compiled']['bare_loop_ops_per_s']:,.0f} ops/s")
    bound = out["model"][SEED.stem]["compiled"]["orderings_per_s"]

    out["run"] = {
        "clean": measure("search", scenario=str(FIXED),
                         examples=200 if quick else 1000, aps=1),
        "seed": measure("search", scenario=str(SEED), examples=1000, aps=1)}
    say(f"run: {out['run']['clean']['examples_per_s']:,.0f} examples/s"
        f" (upstream fix); seed's first failure after"
        f" {out['run']['seed']['first_failure_s']:.3f} s")

    fuzz = measure("fuzz", seconds=3 if quick else 10)
    empty = measure("empty_harness", runs=200_000 if quick else 2_000_000)
    out["fuzz"] = {"exec_per_s": fuzz["exec_per_s"],
                   "empty_harness_exec_per_s": empty["exec_per_s"],
                   "model_bound_orderings_per_s": bound,
                   "over_model_bound": fuzz["exec_per_s"] / bound,
                   "over_empty_harness":
                       fuzz["exec_per_s"] / empty["exec_per_s"]}
    say(f"fuzz: {fuzz['exec_per_s']:,.0f} exec/s;"
        f" {out['fuzz']['over_model_bound']:.2f} of the model's bound")

    goal: dict[str, Any] = {"scenario": str(FIXED), "aps": 4,
                            "kinds": ["nmi"], "triggers": 2}
    first: dict[str, Any] = {"scenario": str(SEED), "aps": 4, "kinds": None,
                             "triggers": -1}
    ours = measure("explore", budget=20_000_000, **goal)
    ours_first = measure("explore", budget=20_000_000, **first)
    if quick:
        # SPIN's compile of the exported model alone takes 15-45 s here.
        out["explore_vs_spin"] = {"fuzzinit": ours, "spin": None,
                                  "first_counterexample": {
                                      "fuzzinit": ours_first, "spin": None}}
    else:
        spin = measure("spin", **goal)
        spin_first = measure("spin", **first)
        out["explore_vs_spin"] = {
            "fuzzinit": ours, "spin": spin,
            "states_per_s_ratio": ours["states_per_s"]
            / spin["states_per_s"],
            "wall_ratio_spin_over_fuzzinit": spin["wall_s"] / ours["wall_s"],
            "first_counterexample": {
                "fuzzinit": ours_first, "spin": spin_first,
                "wall_ratio_spin_over_fuzzinit":
                    spin_first["wall_s"] / ours_first["wall_s"]}}
    say(f"explore: {ours['states_per_s']:,.0f} states/s")

    out["scale"] = []
    for aps in (1, 8, 32, 128):
        run = measure("search", scenario=str(FIXED),
                      examples=5 if quick else 100, aps=aps)
        exp = measure("explore", scenario=str(FIXED), aps=aps, kinds=[],
                      triggers=0, budget=1_000 if quick else 20_000)
        out["scale"].append({"aps": aps, "run": run, "explore": exp})
        say(f"{aps} APs: run {run['us_per_event']:.1f} us/event,"
            f" explore {exp['bytes_per_state']:,.0f} B/state")
    per8 = next(r for r in out["scale"] if r["aps"] == 8)
    per128 = next(r for r in out["scale"] if r["aps"] == 128)
    out["scale_run_128_over_8"] = \
        per128["run"]["us_per_event"] / per8["run"]["us_per_event"]

    out["ablation"] = []
    # --quick: 2 APs (the 4-AP search without reductions takes ~40 s).
    case = dict(goal, aps=2) if quick else goal
    out["ablation_aps"] = case["aps"]
    for por, sym, hc in ((True, True, False), (True, False, False),
                         (False, True, False), (False, False, False),
                         (True, True, True)):
        row = measure("explore", budget=20_000_000, por=por, symmetry=sym,
                      hash_compact=hc, **case)
        out["ablation"].append({"por": por, "symmetry": sym,
                                "hash_compact": hc, **row})
    return out


def table(r: dict[str, Any]) -> str:
    lines = [f"fuzzinit benchmarks ({'quick' if r['quick'] else 'full'});"
             f" default build: {r['default_build']}", ""]
    lines.append(f"{'model':<30} {'compiled':>12} {'interpreted':>12}"
                 f" {'ratio':>6} {'bare loop':>12}  (ops/s)")
    for name, row in r["model"].items():
        lines.append(f"{name:<30} {row['compiled']['ops_per_s']:>12,.0f}"
                     f" {row['interpreted']['ops_per_s']:>12,.0f}"
                     f" {row['compiled_over_interpreted']:>5.1f}x"
                     f" {row['compiled']['bare_loop_ops_per_s']:>12,.0f}")
        lines.append(f"{'':<30} {row['compiled']['orderings_per_s']:>12,.0f}"
                     f" {row['interpreted']['orderings_per_s']:>12,.0f}"
                     "        (orderings/s)")
    run = r["run"]
    lines += ["", f"run: {run['clean']['examples_per_s']:,.0f} examples/s"
              f" on the upstream fix ({run['clean']['us_per_event']:.1f}"
              f" us/event); seed: first failure after"
              f" {run['seed']['first_failure_s']:.3f} s"]
    f = r["fuzz"]
    lines += [f"fuzz: {f['exec_per_s']:,.0f} exec/s; empty harness"
              f" {f['empty_harness_exec_per_s']:,.0f} exec/s"
              f" ({f['over_empty_harness']:.3f}); model bound"
              f" {f['model_bound_orderings_per_s']:,.0f} orderings/s"
              f" ({f['over_model_bound']:.2f}; goal >= 0.33)"]
    e = r["explore_vs_spin"]
    ours, spin = e["fuzzinit"], e["spin"]
    fc = e["first_counterexample"]
    lines += ["", "explore vs SPIN, 1 boot CPU + 4 APs + up to 2 NMIs:",
              f"  fuzzinit {ours['states']:>10,} states"
              f" {ours['states_per_s']:>10,.0f} states/s"
              f" {ours['wall_s']:>7.2f} s wall ({ours['verdict']})"]
    if spin is None:
        lines += ["  SPIN: not run with --quick (its compile alone takes"
                  " 15-45 s)",
                  f"  first counterexample (seed, 4 APs): fuzzinit"
                  f" {fc['fuzzinit']['wall_s']:.2f} s"
                  f" ({fc['fuzzinit']['events']} events)"]
    else:
        lines += [f"  SPIN     {spin['states']:>10,} states"
                  f" {spin['states_per_s']:>10,.0f} states/s"
                  f" {spin['wall_s']:>7.2f} s wall (compile"
                  f" {spin['compile_s']:.2f} s, {spin['verdict']})",
                  f"  states/s ratio {e['states_per_s_ratio']:.2f} (goal >="
                  f" 0.5); SPIN wall / fuzzinit wall"
                  f" {e['wall_ratio_spin_over_fuzzinit']:.1f}",
                  f"  first counterexample (seed, 4 APs): fuzzinit"
                  f" {fc['fuzzinit']['wall_s']:.2f} s"
                  f" ({fc['fuzzinit']['events']} events), SPIN"
                  f" {fc['spin']['wall_s']:.2f} s (compile"
                  f" {fc['spin']['compile_s']:.2f} s), ratio"
                  f" {fc['wall_ratio_spin_over_fuzzinit']:.1f}"]
    lines += ["", f"{'APs':>4} {'run us/event':>13} {'run RSS MB':>11}"
              f" {'explore st/s':>13} {'B/state':>9} {'states':>8}"
              f" {'explore RSS MB':>15}"]
    for row in r["scale"]:
        lines.append(f"{row['aps']:>4} {row['run']['us_per_event']:>13.1f}"
                     f" {row['run']['peak_rss'] / 2**20:>11.0f}"
                     f" {row['explore']['states_per_s']:>13,.0f}"
                     f" {row['explore']['bytes_per_state']:>9,.0f}"
                     f" {row['explore']['states']:>8,}"
                     f" {row['explore']['peak_rss'] / 2**20:>15.0f}")
    lines.append(f"  run time per event, 128 APs over 8:"
                 f" {r['scale_run_128_over_8']:.2f} (goal <= 2)")
    lines += ["", f"ablation: 1 boot CPU + {r['ablation_aps']} APs + up to 2"
              " NMIs (upstream fix)",
              f"{'POR':>5} {'symmetry':>8} {'hash':>5} {'states':>9}"
              f" {'states/s':>9} {'wall s':>7} {'B/state':>8}"]
    for row in r["ablation"]:
        lines.append(f"{row['por']!s:>5} {row['symmetry']!s:>8}"
                     f" {row['hash_compact']!s:>5} {row['states']:>9,}"
                     f" {row['states_per_s']:>9,.0f} {row['wall_s']:>7.2f}"
                     f" {row['bytes_per_state']:>8,.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: under a minute")
    parser.add_argument("--json", metavar="FILE",
                        help="write the JSON object to FILE, the table to"
                        " stdout")
    parser.add_argument("--worker", nargs=2, metavar=("NAME", "ARGS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, kw = args.worker
        print(json.dumps(WORKERS[name](**json.loads(kw))))
        return

    def say(text: str) -> None:
        print(f"  {text}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    result = suite(args.quick, say)
    result["wall_s"] = time.perf_counter() - start
    text = table(result) + f"\n\n(measured in {result['wall_s']:.0f} s)"
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(text)
    else:
        print(json.dumps(result))
        print(text, file=sys.stderr)


if __name__ == "__main__":
    main()
