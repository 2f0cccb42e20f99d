"""Bytes to orderings: a structure-aware decoder for coverage-guided
fuzzing, making the same kind of orderings as the Hypothesis strategy.

The input is read as a stream of bytes, 0 once it runs out (so every input,
even the empty one, decodes to an allowed ordering): first, for each
trigger a scenario allows, one byte whose low bit says whether it fires and
one whose value picks its point in the CPU's program; then one byte per
step picking among the events allowed next (pending triggers, each CPU's
next op, displaced ops). Mutating a byte changes one decision.
"""

from __future__ import annotations

from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario


class Bytes:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def next(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b


def decode(sc: Scenario, data: bytes) -> tuple[list[Event], bool]:
    """The ordering `data` encodes, and whether every program finished."""
    src = Bytes(data)
    planned: list[tuple[int, int]] = []
    for i, t in enumerate(sc.triggers):
        n = len(sc.programs[t.cpu]) + 1
        for _ in range(t.count):
            fires = src.next() & 1
            point = src.next() % n
            if fires:
                planned.append((point, i))
    planned.sort()
    sched = Schedule(sc)
    out: list[Event] = []
    triggers = sc.triggers
    while True:
        fire: list[Event] = []
        pending: list[tuple[int, int]] = []
        blocked: set[int] = set()
        for p in planned:
            t = triggers[p[1]]
            if sched.ndone[t.cpu] >= p[0] and sched.window_open(p[1]):
                pending.append(p)
                fire.append(Event(t.cpu, t.op, -1, p[1]))
                blocked.add(t.cpu)
        ready = sched.program_candidates()
        if blocked:
            ready = [e for e in ready if e.cpu not in blocked]
        choices = fire + ready
        if not choices:
            return out, sched.finished()
        k = 0 if len(choices) == 1 else src.next() % len(choices)
        pick = choices[k]
        if pick.slot < 0:
            planned.remove(pending[k])
            sched.left[pick.trigger] -= 1
        else:
            sched.take(pick)
        out.append(pick)


def encode_choices(choices: list[int]) -> bytes:
    """Helper for tests and seeds: raw decision bytes."""
    return bytes(c & 0xFF for c in choices)
