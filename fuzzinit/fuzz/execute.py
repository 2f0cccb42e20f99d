"""One fuzz input, end to end: decode, run the model with features, name
the outcome - shared by the campaign harness and the fuzz/ targets."""

from __future__ import annotations

from fuzzinit.fuzz.decode import decode
from fuzzinit.fuzz.features import run_with_features
from fuzzinit.model.outcome import INVALID, NAMES, OK, WARN
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

COUNTERS = 4096


def execute(sc: Scenario, data: bytes
            ) -> tuple[str, list[Event], bool, list[int]]:
    """(outcome name, ordering, complete, features) of one input."""
    events, complete = decode(sc, data)
    outcome, features = run_with_features(sc, events)
    if outcome == INVALID:
        name = "invalid"
    elif outcome in (OK, WARN) and not complete:
        name = "never_online"
    else:
        name = NAMES[outcome]
    return name, events, complete, features


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
        trace_branch(counters[f % COUNTERS])
