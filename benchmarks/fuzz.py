"""Atheris campaign figures, from one run.

Run: .venv/bin/python benchmarks/fuzz.py [--seeds 3] [--cap 20]

1. exec/s of `fuzzinit fuzz` on the seed scenario (fred-pinned-sev-es-ap)
   and on the upstream fix, one worker and --jobs 2 (10 s each);
2. the seed's exec/s next to what bounds it: the mypyc-compiled model's
   orderings/s on the same scenario (as benchmarks/model.py measures it)
   and an atheris harness that does nothing but hold the same 4096
   counters;
3. time to the first failure with model-state coverage versus atheris line
   coverage of the model, on scenarios where the failure is not the first
   input (median over seeds, each capped at --cap seconds).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fuzzinit import compiled
from fuzzinit.model import run as model_run
from fuzzinit.orderings.random_walk import random_ordering
from fuzzinit.scenario.load import load

ROOT = Path(__file__).resolve().parent.parent
SEED = "models/fred-pinned-sev-es-ap.toml"
EMPTY_HARNESS = """\
import sys
import atheris
counters = [atheris._reserve_counter() for _ in range(4096)]
atheris.Setup(sys.argv, lambda data: None)
atheris.Fuzz()
"""


def fuzz(model: str, *args: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "fuzzinit", "fuzz",
             str(ROOT / model), "--json", *args], cwd=tmp,
            capture_output=True, text=True, check=False)
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


def compiled_orderings_per_s(model: str, orderings: int = 20_000) -> float:
    """Orderings/s of the mypyc-compiled model's run() on random orderings
    of `model` (benchmarks/model.py's measure, best of three)."""
    with tempfile.TemporaryDirectory() as tmp:
        crun = compiled.load(compiled.build(Path(tmp)))
        cmachine = __import__(f"{compiled.PACKAGE}.machine",
                              fromlist=["Machine"])
        sc = load(ROOT / model)
        machine = cmachine.Machine(**sc.machine_args)
        rng = random.Random(1)
        inputs = []
        for _ in range(orderings):
            ordering = random_ordering(sc, rng)
            inputs.append(([e.cpu for e in ordering],
                           [e.op for e in ordering]))
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for cpus, ops in inputs:
                crun.run(machine, cpus, ops)
            best = max(best, orderings / (time.perf_counter() - start))
    return best


def empty_harness_per_s(seconds: int = 5) -> float:
    """libFuzzer's exec/s for a harness that returns at once."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "empty.py"
        script.write_text(EMPTY_HARNESS)
        (Path(tmp) / "corpus").mkdir()
        proc = subprocess.run(
            [sys.executable, str(script), str(Path(tmp) / "corpus"),
             f"-max_total_time={seconds}", "-max_len=4096",
             "-print_final_stats=1"], capture_output=True, text=True,
            check=False)
    m = re.search(r"stat::average_exec_per_sec:\s+(\d+)", proc.stderr)
    return float(m.group(1)) if m else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cap", type=int, default=20)
    args = parser.parse_args()
    print("exec/s (10 s campaigns, model-state coverage):")
    for model in ("models/fred-pinned-sev-es-ap.toml",
                  "models/upstream-fix-sev-es.toml"):
        one = fuzz(model, "--time", "10")
        two = fuzz(model, "--time", "10", "--jobs", "2")
        print(f"  {Path(model).stem:<28} 1 job {one['exec_per_s']:>9,.0f}   2 jobs"
              f" {two['exec_per_s']:>9,.0f}   ratio"
              f" {two['exec_per_s'] / one['exec_per_s']:.2f}")
    seed = fuzz(SEED, "--time", "10")["exec_per_s"]
    ceiling = compiled_orderings_per_s(SEED)
    empty = empty_harness_per_s()
    build = "compiled" if str(model_run.__file__).endswith(".so") \
        else "interpreted"
    print(f"seed scenario: fuzz {seed:,.0f} exec/s ({build} model), compiled"
          f" model {ceiling:,.0f} orderings/s, ratio {seed / ceiling:.2f};"
          f" empty harness {empty:,.0f} exec/s")
    print(f"time to first failure, median of {args.seeds} seeds"
          f" (cap {args.cap} s; 'n/f' = not found in time):")
    for model in ("models/fred-pinned-bare-ap-lint1.toml",
                  "tests/planted/rare-trigger.toml",
                  "tests/planted/masked-by-another-kind.toml",
                  "tests/planted/two-aps.toml"):
        row = []
        for coverage in ("state", "lines"):
            times = []
            for seed in range(1, args.seeds + 1):
                out = fuzz(model, "--coverage", coverage, "--seed", str(seed),
                           "--time", str(args.cap), "--stop-on-failure")
                t = out["first_failure_s"]
                times.append(float(t) if t is not None else float("inf"))
            med = statistics.median(times)
            row.append("n/f" if med == float("inf") else f"{med:.2f} s")
        print(f"  {Path(model).stem:<28} state {row[0]:>8}   lines"
              f" {row[1]:>8}")


if __name__ == "__main__":
    main()
