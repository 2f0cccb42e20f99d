"""The fault window: where on the timeline the failing event fails the
same way.

The failing event F (the core's last) is tried at every point of the
shrunk ordering with the rest of the ordering up to that point; the
window is the contiguous stretch around F's own position where the model
gives the same outcome and chain. Its ends name the events that open it
(e.g. the AP's cr4_init turning CR4.FRED on) and close it (the
FRED_CONFIG write that was still to come).

When F is a trigger, the window is clipped to the points where the
scenario lets that trigger fire (its `after`/`before` window,
schedule.Schedule.window_open): an NMI that may only reach an online CPU
is never placed before that CPU's `online`, however fatal it would be
there. `by_trigger` says which ends the trigger's window set.
"""

from __future__ import annotations

from dataclasses import dataclass

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event, Schedule
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
    # (opens, closes): that end is where the trigger's own window ends,
    # not where the model stops failing.
    by_trigger: tuple[bool, bool] = (False, False)


def trigger_open(sc: Scenario, base: list[Event], trigger: int) -> list[bool]:
    """For each insertion point j into `base` (0..len), whether trigger
    `trigger` may fire after base[:j]."""
    sched = Schedule(sc)
    out = [sched.window_open(trigger)]
    for ev in base:
        sched.take(ev)
        out.append(sched.window_open(trigger))
    return out


def fault_window(sc: Scenario, shrunk: list[Event], core: list[Event],
                 result: Result) -> Window:
    want = (result.outcome, result.chain)
    k = positions(shrunk, core)[-1]
    failing = shrunk[k]
    base = shrunk[:k] + shrunk[k + 1:]
    allowed = trigger_open(sc, base, failing.trigger) \
        if failing.trigger >= 0 else [True] * (len(base) + 1)

    def same(j: int) -> bool:
        r = evaluate(sc, base[:j] + [failing])
        return (r.outcome, r.chain) == want

    start = k
    while start > 0 and allowed[start - 1] and same(start - 1):
        start -= 1
    end = k
    while end < len(base) and allowed[end + 1] and same(end + 1):
        end += 1
    by_trigger = (start > 0 and not allowed[start - 1] and same(start - 1),
                  end < len(base) and not allowed[end + 1] and same(end + 1))
    opens = base[start - 1] if start > 0 else None
    closes = base[end] if end < len(base) else None
    return Window(opens, closes, start, end, tuple(base), by_trigger)
