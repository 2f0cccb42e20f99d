"""The fault window: where on the timeline the failing event fails the
same way.

The failing event F (the core's last) is tried at every point of the
shrunk ordering with the rest of the ordering up to that point; the
window is the contiguous stretch around F's own position where the model
gives the same outcome and chain. Its ends name the events that open it
(e.g. the AP's cr4_init turning CR4.FRED on) and close it (the
FRED_CONFIG write that was still to come).
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report.timeline import positions
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate


@dataclass(frozen=True)
class Window:
    opens: Event | None     # the event after which F first fails so
    closes: Event | None    # the first event after which it no longer does
    start: int              # insertion points into `base`, inclusive
    end: int
    base: tuple[Event, ...]  # the shrunk ordering without F


def fault_window(sc: Scenario, shrunk: list[Event], core: list[Event],
                 result: Result) -> Window:
    want = (result.outcome, result.chain)
    k = positions(shrunk, core)[-1]
    failing = shrunk[k]
    base = shrunk[:k] + shrunk[k + 1:]

    def same(j: int) -> bool:
        r = evaluate(sc, base[:j] + [failing])
        return (r.outcome, r.chain) == want

    start = k
    while start > 0 and same(start - 1):
        start -= 1
    end = k
    while end < len(base) and same(end + 1):
        end += 1
    opens = base[start - 1] if start > 0 else None
    closes = base[end] if end < len(base) else None
    return Window(opens, closes, start, end, tuple(base))
