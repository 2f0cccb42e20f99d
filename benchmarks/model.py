"""Throughput of the reference model, interpreted and mypyc-compiled.

Run: .venv/bin/python benchmarks/model.py  (or `make bench`)

Prints, from one run: primitive ops/s and orderings/s on the seed scenario
(every ordering fails at the AP's printk) and on the upstream-fix scenario
(every ordering runs to the end), for both builds and their ratio; then the
seed scenario's time to first failure, the wall time of
`fuzzinit run --seed 1` as a new process, and scenario loads/s: the seed
scenario on its kernel profile (five files) next to its hand-written copy
(one file, tests/scenarios/fred-pinned-sev-es-ap-flat.toml).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fuzzinit import compiled
from fuzzinit.model.run import run
from fuzzinit.orderings.random_walk import random_ordering
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.search import search

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("fred-pinned-sev-es-ap", "upstream-fix-sev-es")
ORDERINGS = 20_000
LOADS = 300


def measure(sc: Scenario, runner: Any, machine: Any,
            inputs: list[tuple[list[int], list[int]]]) -> tuple[float, float]:
    """(ops/s, orderings/s); ops counts the events the model executed."""
    ops = 0
    start = time.perf_counter()
    for cpus, events in inputs:
        result = runner(machine, cpus, events)
        ops += result.at + 1 if result.at >= 0 else len(events)
    elapsed = time.perf_counter() - start
    return ops / elapsed, len(inputs) / elapsed


def main() -> None:
    build_dir = Path(tempfile.mkdtemp(prefix="fuzzinit-bench-"))
    t0 = time.perf_counter()
    crun = compiled.load(compiled.build(build_dir))
    build_s = time.perf_counter() - t0
    cmachine = __import__(f"{compiled.PACKAGE}.machine", fromlist=["Machine"])
    print(f"mypyc build: {build_s:.1f} s")
    print(f"{'scenario':<24} {'build':<12} {'ops/s':>12} {'orderings/s':>12}")
    for name in SCENARIOS:
        sc = load(ROOT / "models" / f"{name}.toml")
        rng = random.Random(1)
        inputs = []
        for _ in range(ORDERINGS):
            ordering = random_ordering(sc, rng)
            inputs.append(([e.cpu for e in ordering], [e.op for e in ordering]))
        interp = measure(sc, run, sc.machine, inputs)
        comp = measure(sc, crun.run, cmachine.Machine(**sc.machine_args), inputs)
        for label, (ops, rate) in (("interpreted", interp), ("compiled", comp)):
            print(f"{name:<24} {label:<12} {ops:>12,.0f} {rate:>12,.0f}")
        print(f"{name:<24} {'ratio':<12} {comp[0] / interp[0]:>11.1f}x"
              f" {comp[1] / interp[1]:>11.1f}x")
    seed = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    report = search(seed, examples=2000, seed=1)
    assert report.finding is not None
    print(f"seed scenario, seed 1: first failing ordering after"
          f" {report.first_failure_s:.4f} s ({report.examples} orderings),"
          f" found + shrunk + core in {report.elapsed_s:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "fuzzinit", "run",
             str(ROOT / "models/fred-pinned-sev-es-ap.toml"), "--json",
             "--seed", "1"], cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - start
    out = json.loads(proc.stdout)
    print(f"fuzzinit run --json --seed 1: exit {proc.returncode},"
          f" verdict {out['verdict']}, core {len(out['events'])} events,"
          f" {wall:.2f} s wall (new process)")
    rates = {}
    for label, path in (
            ("on the profile", ROOT / "models/fred-pinned-sev-es-ap.toml"),
            ("hand-written", ROOT / "tests/scenarios/"
             "fred-pinned-sev-es-ap-flat.toml")):
        start = time.perf_counter()
        for _ in range(LOADS):
            load(path)
        rates[label] = LOADS / (time.perf_counter() - start)
        print(f"seed scenario {label}: {rates[label]:,.0f} loads/s")
    print(f"profile / hand-written load rate:"
          f" {rates['on the profile'] / rates['hand-written']:.2f}")


if __name__ == "__main__":
    main()
