"""Hypothesis strategies over a scenario's orderings.

Every choice is an index into the list of events allowed next, CPUs before
triggers, so Hypothesis shrinks towards "lowest ready CPU first, no
trigger": the programs as written.
"""

from __future__ import annotations

from hypothesis import strategies as st

from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario


class Ordering(list[Event]):
    """A drawn ordering; `complete` is False if it stopped with programs
    unfinished (no event was allowed: a CPU can never come online)."""
    complete: bool = True


def orderings(sc: Scenario) -> st.SearchStrategy[Ordering]:
    """Interleavings of the CPUs' programs with triggers in their windows."""

    @st.composite
    def draw_ordering(draw: st.DrawFn) -> Ordering:
        sched = Schedule(sc)
        out = Ordering()
        while True:
            ready = sched.program_candidates()
            triggers = sched.trigger_candidates()
            if not ready and triggers:
                # Programs are done or blocked: further triggers are optional.
                if not draw(st.booleans()):
                    triggers = []
            choices = ready + triggers
            if not choices:
                break
            pick = choices[0] if len(choices) == 1 else \
                choices[draw(st.integers(0, len(choices) - 1))]
            sched.take(pick)
            out.append(pick)
        out.complete = sched.finished()
        return out

    return draw_ordering()
