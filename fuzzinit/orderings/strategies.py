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

The interleaving's indices are drawn straight from Hypothesis's test case
(`ConjectureData.draw_integer`, see choose() for why), the trigger draws
through strategies.

Swarm is off by default: on the planted bugs (benchmarks/swarm.py) plain
generation - where every trigger already has its own on/off draw - found
each bug at least as often at the same budget.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from fuzzinit.orderings.schedule import SYNC_KINDS, Event, Schedule
from fuzzinit.scenario.load import Scenario


class Ordering(list[Event]):
    """A drawn ordering; `complete` is False if it stopped with programs
    unfinished (no event was allowed: a CPU can never come online)."""
    complete: bool = True


def trigger_kinds(sc: Scenario) -> list[str]:
    """The scenario's trigger kinds, in a fixed order."""
    return sorted({t.kind for t in sc.triggers})


# The span label of the k-th index an ordering draws is STEP_LABEL + k.
STEP_LABEL = 0xF0221A17 << 32


def choose(draw: st.DrawFn) -> Callable[[int], int]:
    """Draws of an index in range(n), n >= 2, one per step of an ordering.

    Each index is drawn in a span of its own label (the step's number),
    on the test case `draw` belongs to, not through draw(st.integers()):
    there, every index has the strategy's label, and Hypothesis's generator
    mutates a test case by copying a span over another of the same label.
    An ordering draws an index per step - 3,700 at 128 APs - and nearly
    every such copy changed the rest of the ordering so that it needed more
    indices than it held: 5 of every 6 orderings drawn at 128 APs were
    thrown away unfinished. The spans stay, for the shrinker's passes
    (without them, seed 2 of the permuted upstream fix shrank to two
    displaced ops instead of one). start_span/draw_integer/stop_span are
    Hypothesis's internal ConjectureData API (in 6.100 and since); under a
    Hypothesis without them the strategy is used, and
    tests/test_orderings.py notices the orderings thrown away."""
    data = getattr(draw, "__self__", None)
    start = getattr(data, "start_span", None)
    integer = getattr(data, "draw_integer", None)
    stop = getattr(data, "stop_span", None)
    if start is None or integer is None or stop is None:
        return lambda n: draw(st.integers(0, n - 1))
    step = [STEP_LABEL]

    def index(n: int) -> int:
        step[0] += 1
        start(step[0])
        value = int(integer(0, n - 1))
        stop()
        return value

    return index


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
        return build(sc, planned, choose(draw))

    return draw_ordering()


def build(sc: Scenario, planned: list[tuple[int, int]],
          index: Callable[[int], int]) -> Ordering:
    """The ordering that fires the `planned` triggers ((point, trigger),
    sorted: each fires before its CPU's next op once the CPU has done
    `point` ops and the window is open) and takes, at each step with more
    than one choice, choices[index(len(choices))] - pending triggers
    first, then Schedule.program_candidates()."""
    sched = Schedule(sc)
    # Per CPU, its planned triggers and those pending now (point
    # reached, window open). A step changes the pending triggers of the
    # CPU that moved only, or, after a sync op, of any CPU.
    plans: dict[int, list[tuple[int, int]]] = {}
    for p in planned:
        plans.setdefault(sc.triggers[p[1]].cpu, []).append(p)
    now: dict[int, list[tuple[int, int]]] = {}

    def recheck(c: int) -> None:
        mine = [p for p in plans.get(c, ())
                if sched.ndone[c] >= p[0] and sched.window_open(p[1])]
        if mine:
            now[c] = mine
        else:
            now.pop(c, None)

    for c in plans:
        recheck(c)
    out = Ordering()
    while True:
        if len(now) > 1:
            pending = sorted(p for mine in now.values() for p in mine)
        else:
            pending = next(iter(now.values()), [])
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
            choices[index(len(choices))]
        if pick.slot < 0:
            plans[pick.cpu].remove(pending[fire.index(pick)])
            sched.left[pick.trigger] -= 1
            recheck(pick.cpu)
        else:
            sched.take(pick)
            if sc.machine.op_kind[pick.op] in SYNC_KINDS:
                for c in plans:
                    recheck(c)
            elif pick.cpu in plans:
                recheck(pick.cpu)
        out.append(pick)
    out.complete = sched.finished()
    return out


def as_written(sc: Scenario, events: list[Event]) -> Ordering:
    """`events`' triggers, each after as many of its CPU's ops as it had in
    `events`, with the programs run as written around them (the lowest
    ready CPU first: every index 0, where Hypothesis shrinks to)."""
    done = [0] * sc.ncpu
    planned: list[tuple[int, int]] = []
    for ev in events:
        if ev.trigger >= 0:
            planned.append((done[ev.cpu], ev.trigger))
        else:
            done[ev.cpu] += 1
    return build(sc, sorted(planned), lambda n: 0)
