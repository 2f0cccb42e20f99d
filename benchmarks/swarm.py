"""Swarm testing versus plain generation on the planted bugs.

Run: .venv/bin/python benchmarks/swarm.py [--seeds N] [--budgets 10,20,50]

For every planted bug in tests/planted/ and every budget, from one run:
how many of N seeded searches found the bug with swarm testing (trigger
kinds switched on per example) and with plain generation (every kind on),
and the mean number of orderings to the first failure among those found.
Also prints `fuzzinit run` throughput (examples/s) on the seed scenario in
interleave and permutation mode.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from fuzzinit.scenario.load import load
from fuzzinit.search import search

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--budgets", default="10,20,50")
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{'planted bug':<26} {'budget':>6} {'swarm':>12} {'plain':>12}")
    for path in sorted((ROOT / "tests/planted").glob("*.toml")):
        sc = load(path)
        for budget in budgets:
            row = []
            for swarm in (True, False):
                found = []
                for seed in range(args.seeds):
                    r = search(sc, budget, seed, swarm=swarm)
                    if r.finding is not None and \
                            r.first_failure_example is not None:
                        found.append(r.first_failure_example)
                mean = sum(found) / len(found) if found else float("nan")
                row.append(f"{len(found):>3}/{args.seeds} ({mean:4.1f})")
            print(f"{path.stem:<26} {budget:>6} {row[0]:>12} {row[1]:>12}")
    print("(found/seeds (mean orderings to the first failure))")
    seed_model = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    fixed = load(ROOT / "models/upstream-fix-sev-es.toml")
    for label, sc in (("seed scenario", seed_model),
                      ("upstream-fix", fixed)):
        for mode in ("interleave", "permute"):
            scm = dataclasses.replace(sc, mode=mode)
            # Nothing counts as failing, so every search runs its whole
            # budget: examples/s of generation plus the model.
            scm = dataclasses.replace(scm, fail_on=frozenset())
            start = time.perf_counter()
            r = search(scm, 2000, 0)
            elapsed = time.perf_counter() - start
            print(f"fuzzinit run, {label}, {mode}: {r.examples} examples in"
                  f" {elapsed:.2f} s = {r.examples / elapsed:,.0f} examples/s")


if __name__ == "__main__":
    main()
