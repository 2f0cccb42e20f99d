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

Each draw is made straight on Hypothesis's test case, in a span of its own
(Draws says why).

Swarm is off by default: on the planted bugs (benchmarks/swarm.py) plain
generation - where every trigger already has its own on/off draw - found
each bug at least as often at the same budget.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st

from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario


class Ordering(list[Event]):
    """A drawn ordering; `complete` is False if it stopped with programs
    unfinished (no event was allowed: a CPU can never come online)."""
    complete: bool = True


def trigger_kinds(sc: Scenario) -> list[str]:
    """The scenario's trigger kinds, in a fixed order."""
    return sorted({t.kind for t in sc.triggers})


# The span label of an ordering's k-th draw is DRAW_LABEL + k.
DRAW_LABEL = 0xF0221A17 << 32


class Draws:
    """An ordering's draws - trigger on/off, trigger points, interleaving
    indices - each in a span of its own label (its number in the ordering),
    made on the test case `draw` belongs to, not through draw(strategy).

    Through strategies, every index shared st.integers' label, and
    Hypothesis's generator mutates a test case by copying a span over
    another of the same label. An ordering draws an index per step - 3,700
    at 128 APs - and nearly every such copy changed the rest of the
    ordering so that it needed more draws than it held: 5 of every 6
    orderings drawn at 128 APs were thrown away unfinished (at 8 APs with
    triggers, 43 of 93). The spans stay, for the shrinker's passes
    (without them, seed 2 of the permuted upstream fix shrank to two
    displaced ops instead of one). The values are drawn as st.booleans()
    and st.integers() draw them, except that st.integers weights the
    ends of ranges over 127 values and this does not.
    start_span/draw_boolean/draw_integer/stop_span are Hypothesis's
    internal ConjectureData API (in 6.100 and since); under a Hypothesis
    without them the strategies are used, and tests/test_orderings.py
    notices the orderings thrown away."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        data = getattr(draw, "__self__", None)
        self._start = getattr(data, "start_span", None)
        self._boolean = getattr(data, "draw_boolean", None)
        self._integer = getattr(data, "draw_integer", None)
        self._stop = getattr(data, "stop_span", None)
        self.direct = None not in (self._start, self._boolean,
                                   self._integer, self._stop)
        self._label = DRAW_LABEL

    def _open(self) -> None:
        assert self._start is not None
        self._label += 1
        self._start(self._label)

    def boolean(self) -> bool:
        if not self.direct:
            return self.draw(st.booleans())
        assert self._boolean is not None and self._stop is not None
        self._open()
        value = bool(self._boolean())
        self._stop()
        return value

    def integer(self, top: int) -> int:
        """An integer in [0, top]."""
        if not self.direct:
            return self.draw(st.integers(0, top))
        assert self._integer is not None and self._stop is not None
        self._open()
        value = int(self._integer(0, top))
        self._stop()
        return value

    def index(self, n: int) -> int:
        """An index into n >= 2 choices."""
        return self.integer(n - 1)


def orderings(sc: Scenario, swarm: bool = False) -> st.SearchStrategy[Ordering]:
    """Orderings of `sc` in its mode (interleave or permute), with triggers
    in their windows; `swarm` draws the enabled trigger kinds first."""
    kinds = trigger_kinds(sc)

    @st.composite
    def draw_ordering(draw: st.DrawFn) -> Ordering:
        draws = Draws(draw)
        if swarm and kinds:
            enabled = {k for k in kinds if draws.boolean()}
        else:
            enabled = set(kinds)
        # (point, trigger index) of every trigger that will fire.
        planned: list[tuple[int, int]] = []
        for i, t in enumerate(sc.triggers):
            if t.kind not in enabled:
                continue
            for _ in range(t.count):
                if draws.boolean():
                    n = len(sc.programs[t.cpu])
                    planned.append((draws.integer(n), i))
        planned.sort()
        return build(sc, planned, draws.index)

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
    # reached, window open), rechecked when that CPU moves or is started.
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
            recheck(pick.cpu)
            # A window depends on its own CPU's progress and on whether
            # that CPU is started (schedule.in_life): a `start` or an INIT
            # changes that of the CPU it names.
            kind = sc.machine.op_kind[pick.op]
            if kind == smp.START or kind == life.SEND_INIT:
                recheck(sc.machine.op_a[pick.op])
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
