"""`--rule-coverage` on the commands that search."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from fuzzinit.scenario.load import Scenario

if TYPE_CHECKING:
    from fuzzinit.reach.probe import Probe


def add_rule_coverage(parser: argparse.ArgumentParser,
                      unit: str = "each ordering") -> None:
    parser.add_argument(
        "--rule-coverage", action="store_true",
        help="measure which model rules the search reached and where its"
        f" triggers fired (coverage.py over the interpreted model; {unit})")


def probe_for(args: argparse.Namespace, sc: Scenario,
              unit: str = "orderings") -> Probe | None:
    """A Probe when --rule-coverage was given (coverage.py is imported
    only then)."""
    if not getattr(args, "rule_coverage", False):
        return None
    from fuzzinit.reach.probe import Probe
    return Probe(sc, unit)
