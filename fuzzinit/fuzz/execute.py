"""One fuzz input, end to end: decode, run the model with features, name
the outcome - shared by the campaign harness and the fuzz/ targets.

The per-input path is one call into fuzzinit/model/features.py (compiled
with the model), which returns an Execution: the outcome's `name`, the
`features` (counters) and key(), what the failure's signature is made of.
The ordering itself is decoded again (decode.py) only for a failure to
triage (`ordering`).
"""

from __future__ import annotations

from fuzzinit.fuzz.decode import decode
from fuzzinit.fuzz.features import plan_of, run_input
from fuzzinit.model.features import COUNTERS, Execution, Plan, decode_run
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

__all__ = ["COUNTERS", "Execution", "cover", "execute", "ordering",
           "reserve_counters", "run_every_event"]

# The last scenario's decoder tables (and memo): a process fuzzes one.
_plan: tuple[Scenario, Plan | None] | None = None
_memo = True


def run_every_event() -> None:
    """Turn the memo (fuzzinit.model.features.Plan) off: for line coverage
    of the model, which must run every event of every input."""
    global _memo, _plan
    _memo = False
    _plan = None


def execute(sc: Scenario, data: bytes) -> Execution:
    """Decode and run one input. The Execution may be shared with other
    inputs: read it, do not change it."""
    global _plan
    if _plan is None or _plan[0] is not sc:
        _plan = (sc, plan_of(sc) if _memo else plan_of(sc, memo_budget=0))
    plan = _plan[1]
    if plan is not None:
        return decode_run(plan, data)
    return run_input(sc, plan, data)


def ordering(sc: Scenario, data: bytes) -> tuple[list[Event], bool]:
    """The events `data` decodes to, and whether every program finished:
    for triage, which needs them only for a failure."""
    return decode(sc, data)


def reserve_counters() -> list[int]:
    """libFuzzer counters for model-state features (before atheris.Setup)."""
    import atheris

    return [atheris._reserve_counter() for _ in range(COUNTERS)]


def cover(counters: list[int], features: list[int]) -> None:
    """Report the features to libFuzzer as coverage."""
    import atheris

    # Looked up per call: atheris.Setup() swaps in libFuzzer's version.
    trace_branch = atheris._trace_branch
    for f in features:
        trace_branch(counters[f])
