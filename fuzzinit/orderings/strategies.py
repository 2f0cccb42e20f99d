"""Hypothesis strategies over a scenario's orderings.

Every choice is an index into the list of events allowed next: each CPU's
next program op first, then ops displaced forward (permutation mode), then
triggers - so Hypothesis shrinks towards "lowest ready CPU first, programs
as written, no trigger".

Swarm testing (Groce et al., "Swarm Testing", ISSTA 2012): each example
first draws which trigger kinds are switched on, then where the enabled
ones fire, so examples with only one or two kinds - where a rare kind is
not crowded out by common ones - are drawn as often as examples with all.
"""

from __future__ import annotations

from hypothesis import strategies as st

from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario


class Ordering(list[Event]):
    """A drawn ordering; `complete` is False if it stopped with programs
    unfinished (no event was allowed: a CPU can never come online)."""
    complete: bool = True


def trigger_kinds(sc: Scenario) -> list[str]:
    """The scenario's trigger kinds, in a fixed order."""
    return sorted({t.kind for t in sc.triggers})


def orderings(sc: Scenario, swarm: bool = True) -> st.SearchStrategy[Ordering]:
    """Orderings of `sc` in its mode (interleave or permute), with triggers
    in their windows; `swarm` draws the enabled trigger kinds first."""
    kinds = trigger_kinds(sc)

    @st.composite
    def draw_ordering(draw: st.DrawFn) -> Ordering:
        if swarm and kinds:
            # Shrinks towards "kind off", so minimal examples carry only
            # the triggers they need.
            enabled = {k for k in kinds if draw(st.booleans())}
        else:
            enabled = set(kinds)
        sched = Schedule(sc)
        out = Ordering()
        while True:
            ready = sched.program_candidates()
            triggers = [e for e in sched.trigger_candidates()
                        if sc.triggers[e.trigger].kind in enabled]
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
