"""From an ordering to a verdict: run the model, name the outcome, decide
whether it fails the scenario, and give it a stable signature."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fuzzinit.model.outcome import NEVER_ONLINE, OK, WARN, Result
from fuzzinit.model.run import run
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario


def evaluate(sc: Scenario, events: Sequence[Event],
             complete: bool = True) -> Result:
    """The model's verdict on `events`; an ordering that could not finish
    every program (and did not fail first) is never_online - also when it
    WARNed on the way: the hang is what the run comes to."""
    result = run(sc.machine, [e.cpu for e in events], [e.op for e in events])
    if result.outcome in (OK, WARN) and not complete:
        return Result(NEVER_ONLINE, -1, ["a CPU's program can never finish:"
                                         " no event is allowed"],
                      result.warnings)
    return result


def fails(sc: Scenario, result: Result) -> bool:
    return result.name in sc.fail_on


def signature(result: Result) -> str:
    """Outcome and chain shape, hashed: the same failure reached by other
    orderings gets the same signature."""
    text = result.name + "\n" + "\n".join(result.chain)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
