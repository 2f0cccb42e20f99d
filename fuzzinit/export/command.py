"""`fuzzinit export --promela MODEL [-o FILE] [--max-triggers K]`."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import TypeVar

from fuzzinit.errors import FuzzinitError
from fuzzinit.export.promela import promela
from fuzzinit.report.files import write_atomic
from fuzzinit.scenario.load import Scenario, load

P = TypeVar("P", bound=argparse.ArgumentParser)


def add_parser(sub: argparse._SubParsersAction[P]) -> None:
    exp = sub.add_parser("export", help="write a scenario for another tool:"
                         " a Promela model that SPIN checks")
    exp.add_argument("--promela", required=True, metavar="MODEL",
                     help="scenario file (models/*.toml) to export as"
                     " Promela")
    exp.add_argument("-o", "--output", metavar="FILE",
                     help="write here (default: standard output)")
    exp.add_argument("--max-triggers", type=int, default=None, metavar="K",
                     help="bound on trigger events, as for explore"
                     " (default: every trigger the scenario allows)")
    exp.add_argument("--mode", choices=("interleave", "permute"),
                     help="override the scenario's [orderings] mode")


def default_max_triggers(sc: Scenario) -> int:
    """`fuzzinit explore`'s default bound: every trigger the scenario
    allows, so that SPIN's "no error" means the same complete answer."""
    return sum(t.count for t in sc.triggers)


def run_command(args: argparse.Namespace) -> int:
    if args.max_triggers is not None and args.max_triggers < 0:
        raise FuzzinitError(f"--max-triggers {args.max_triggers}: expected 0"
                            " or more")
    sc = load(args.promela)
    if args.mode:
        sc = dataclasses.replace(sc, mode=args.mode)
    k = default_max_triggers(sc) if args.max_triggers is None \
        else int(args.max_triggers)
    text = promela(sc, k)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise FuzzinitError(f"cannot write {path}: {exc.strerror}; fix: name"
                            " a file in a writable folder") from exc
    print(f"wrote {path}: {sc.name} as Promela, at most {k} trigger"
          f" event(s); check it: spin -a {path} && gcc -O2 -DSAFETY -DREACH"
          " -o pan pan.c && ./pan -b -n -m100000")
    return 0
