"""The causal core: a 1-minimal subsequence that fails the same way.

Design rules for a pass: it only deletes events (so program order and the
trigger positions of the original ordering are kept), it accepts a candidate
only if the model gives the same outcome AND the same chain, and it is
deterministic (candidates are tried shortlex: bigger deletions first, then
earlier events first).
"""

from __future__ import annotations

from collections.abc import Callable

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate


def causal_core(sc: Scenario, events: list[Event], target: Result,
                on_try: Callable[[], None] | None = None) -> list[Event]:
    """Shrink `events` to a subsequence that is 1-minimal for failing with
    `target`'s outcome and chain: removing any one event changes the
    verdict."""
    want = (target.outcome, target.chain)

    def same(candidate: list[Event]) -> bool:
        if on_try is not None:
            on_try()
        r = evaluate(sc, candidate)
        return (r.outcome, r.chain) == want

    # The model stops at the failing event: nothing after it matters.
    if 0 <= target.at < len(events):
        events = events[:target.at + 1]
    current = list(events)
    # Delta debugging (Zeller, "Simplifying and Isolating Failure-Inducing
    # Input", 2002): delete chunks, halving the chunk size.
    chunk = max(1, len(current) // 2)
    while chunk >= 1:
        i = 0
        progressed = False
        while i < len(current):
            candidate = current[:i] + current[i + chunk:]
            if candidate and same(candidate):
                current = candidate
                progressed = True
            else:
                i += chunk
        if chunk == 1 and not progressed:
            break
        if not progressed:
            chunk //= 2
    return current
