"""Shrink pass for permutation mode: move displaced ops back home.

Hypothesis shrinks the choices that built an ordering, which usually - not
always - leaves the fewest ops out of program order. This pass finishes the
job deterministically: it moves an out-of-place op next to its program
neighbour (just after its predecessor, or just before its successor) while
the ordering stays allowed and fails with the same outcome and chain, until
no move lowers the number of displaced ops.
"""

from __future__ import annotations

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event, well_formed
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate


def displaced(ordering: list[Event]) -> int:
    """Ops out of program order: per CPU, program ops minus the longest
    subsequence already in program order."""
    total = 0
    for cpu in sorted({e.cpu for e in ordering}):
        tails: list[int] = []
        slots = [e.slot for e in ordering if e.cpu == cpu and e.slot >= 0]
        for slot in slots:
            i = next((k for k, t in enumerate(tails) if t >= slot), len(tails))
            tails[i:i + 1] = [slot]
        total += len(slots) - len(tails)
    return total


def _moves(ordering: list[Event], i: int) -> list[list[Event]]:
    ev = ordering[i]
    rest = ordering[:i] + ordering[i + 1:]
    out = []
    for j, other in enumerate(rest):
        if other.cpu != ev.cpu:
            continue
        if other.slot == ev.slot - 1:
            out.append(rest[:j + 1] + [ev] + rest[j + 1:])
        elif other.slot == ev.slot + 1:
            out.append(rest[:j] + [ev] + rest[j:])
    return out


def move_home(sc: Scenario, ordering: list[Event],
              target: Result) -> list[Event]:
    want = (target.outcome, target.chain)
    current = list(ordering)
    score = displaced(current)
    improved = True
    while improved and score:
        improved = False
        for i in range(len(current)):
            if current[i].slot < 0:
                continue
            for candidate in _moves(current, i):
                new_score = displaced(candidate)
                if new_score >= score or well_formed(sc, candidate):
                    continue
                r = evaluate(sc, candidate)
                if (r.outcome, r.chain) == want:
                    current, score, improved = candidate, new_score, True
                    break
            if improved:
                break
    return current
