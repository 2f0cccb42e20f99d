"""Atheris campaign figures, from one run.

Run: .venv/bin/python benchmarks/fuzz.py [--seeds 3] [--cap 20]

1. exec/s of `fuzzinit fuzz` on the seed scenario (fred-pinned-sev-es-ap)
   and on the upstream fix, one worker and --jobs 2 (10 s each);
2. time to the first failure with model-state coverage versus atheris line
   coverage of the model, on scenarios where the failure is not the first
   input (median over seeds, each capped at --cap seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def fuzz(model: str, *args: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, "-m", "fuzzinit", "fuzz",
             str(ROOT / model), "--json", *args], cwd=tmp,
            capture_output=True, text=True, check=False)
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


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
