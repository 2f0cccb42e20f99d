"""Rule coverage of the scenario library: each scenario explored with
--rule-coverage, then per rule how many scenarios reach it, and the rules
no scenario reaches.

Run: .venv/bin/python tools/library_rule_coverage.py [--budget STATES] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from fuzzinit.explore.bfs import explore
from fuzzinit.reach.probe import Probe
from fuzzinit.reach.rules import RULES
from fuzzinit.scenario.load import load

LIBRARY = Path(__file__).resolve().parent.parent / "fuzzinit" / "library"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=int, default=200_000)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    start = time.monotonic()
    reached_by: dict[str, list[str]] = {r.id: [] for r in RULES}
    never_fired: dict[str, list[str]] = {}
    paths = sorted(LIBRARY.glob("*.toml"))
    for path in paths:
        sc = load(path)
        probe = Probe(sc, "expanded states")
        ex = explore(sc, sum(t.count for t in sc.triggers), args.budget,
                     probe=probe)
        reach = probe.result()
        for hit in reach.reached():
            reached_by[hit.rule.id].append(sc.name)
        if reach.never_fired():
            # A failing scenario's search stops at its first failure.
            never_fired[f"{sc.name} ({ex.verdict})"] = [
                t.label for t in reach.never_fired()]
    elapsed = time.monotonic() - start
    if args.json:
        print(json.dumps({"scenarios": len(paths), "elapsed_s": elapsed,
                          "reached_by": reached_by,
                          "never_fired": never_fired}))
        return 0
    print(f"{len(paths)} library scenarios explored with --rule-coverage"
          f" in {elapsed:.0f} s")
    for r in RULES:
        print(f"  {r.number:2d} {r.id:24s} {len(reached_by[r.id]):3d}"
              " scenarios")
    none = [r.id for r in RULES if not reached_by[r.id]]
    print(f"reached by no scenario: {', '.join(none) or 'none'}")
    for name, labels in never_fired.items():
        print(f"  {name}: never fired: {', '.join(labels)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
