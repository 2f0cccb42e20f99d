"""Hypothesis strategies over a scenario's orderings.

An example is drawn in two parts:

1. Triggers. With swarm testing (Groce et al., "Swarm Testing", ISSTA
   2012) each example first draws which trigger kinds are switched on; then,
   for every trigger an enabled kind allows (its `count` per CPU), whether
   it fires and at which point of its CPU's program (the number of that
   CPU's ops done). A trigger whose point is reached and whose window is open
   becomes pending and fires before its CPU's next op.
2. The interleaving (and, in permutation mode, the order): at each step an
   index into the events allowed next - pending triggers first, then each
   CPU's next program op, then ops displaced forward, nearest first.

Every draw shrinks towards "off", "earliest" or index 0, so Hypothesis
shrinks towards fewer triggers, earlier triggers, and the programs as
written.

Swarm is off by default: on the planted bugs (benchmarks/swarm.py) plain
generation - where every trigger already has its own on/off draw - found
each bug at least as often at the same budget.
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


def orderings(sc: Scenario, swarm: bool = False) -> st.SearchStrategy[Ordering]:
    """Orderings of `sc` in its mode (interleave or permute), with triggers
    in their windows; `swarm` draws the enabled trigger kinds first."""
    kinds = trigger_kinds(sc)

    @st.composite
    def draw_ordering(draw: st.DrawFn) -> Ordering:
        if swarm and kinds:
            enabled = {k for k in kinds if draw(st.booleans())}
        else:
            enabled = set(kinds)
        # (point, trigger index) of every trigger that will fire.
        planned: list[tuple[int, int]] = []
        for i, t in enumerate(sc.triggers):
            if t.kind not in enabled:
                continue
            for _ in range(t.count):
                if draw(st.booleans()):
                    n = len(sc.programs[t.cpu])
                    planned.append((draw(st.integers(0, n)), i))
        planned.sort()
        sched = Schedule(sc)
        out = Ordering()
        while True:
            pending = [p for p in planned
                       if sched.ndone[sc.triggers[p[1]].cpu] >= p[0]
                       and sched.window_open(p[1])]
            if pending:
                # Fire before the CPU's next op; other CPUs may go first.
                blocked = {sc.triggers[i].cpu for _, i in pending}
                fire = [Event(sc.triggers[i].cpu, sc.triggers[i].op, -1, i)
                        for _, i in pending]
            else:
                blocked = set()
                fire = []
            ready = [e for e in sched.program_candidates()
                     if e.cpu not in blocked]
            choices = fire + ready
            if not choices:
                break
            pick = choices[0] if len(choices) == 1 else \
                choices[draw(st.integers(0, len(choices) - 1))]
            if pick.slot < 0:
                planned.remove(pending[fire.index(pick)])
                sched.left[pick.trigger] -= 1
            else:
                sched.take(pick)
            out.append(pick)
        out.complete = sched.finished()
        return out

    return draw_ordering()
