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

from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.orderings.schedule import (
    NEEDS_PARKED,
    PARKED,
    RUNNING,
    WAITING,
    Event,
    Schedule,
    after_sync,
    in_life,
    lives_of,
    trigger_lives,
)
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


def decode(sc: Scenario, data: bytes,
           fast: bool = True) -> tuple[list[Event], bool]:
    """The ordering `data` encodes, and whether every program finished.
    `fast` uses the interleave-mode shortcut where it applies; both paths
    give the same ordering (tests/test_fuzz_decode.py)."""
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
    if fast and sc.mode == "interleave" and not sc.before:
        return _interleave(sc, src, planned)
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


def _interleave(sc: Scenario, src: Bytes, planned: list[tuple[int, int]]
                ) -> tuple[list[Event], bool]:
    """decode() for interleave mode without `before` constraints: the same
    choices as the Schedule makes, without its generality (the fuzzer's
    hot loop)."""
    m = sc.machine
    kinds, arg = m.op_kind, m.op_a
    programs = sc.programs
    n = len(programs)
    pc = [0] * n
    started = [RUNNING if c == 0 else WAITING for c in range(n)]
    online = [c == 0 for c in range(n)]
    # Trigger windows as program counters: open once pc > lo-1, shut once
    # pc > hi (interleave mode runs each program in order).
    lo = [max(t.after) + 1 if t.after else 0 for t in sc.triggers]
    hi = [min(t.before) if t.before else len(programs[t.cpu])
          for t in sc.triggers]
    trig = sc.triggers
    lives = lives_of(sc)
    tlife = trigger_lives(sc, lives)
    out: list[Event] = []
    start_kind, online_kind = smp.START, smp.ONLINE_OP
    wait_kind = smp.WAIT_ONLINE
    parking = life.PARKING
    needs_parked = NEEDS_PARKED
    sync_kinds = frozenset((start_kind, life.SEND_INIT)) | parking
    while True:
        fire: list[tuple[int, int]] = []
        blocked = 0
        for p in planned:
            i = p[1]
            c = trig[i].cpu
            if pc[c] >= p[0] and lo[i] <= pc[c] <= hi[i] and in_life(
                    started[c], pc[c], lives[c], trig[i].kind, tlife[i]):
                fire.append(p)
                blocked |= 1 << c
        ready: list[int] = []
        for c in range(n):
            if started[c] != RUNNING or blocked >> c & 1:
                continue
            slot = pc[c]
            program = programs[c]
            if slot < len(program):
                op = program[slot]
                kind = kinds[op]
                if kind == wait_kind and not online[arg[op]]:
                    continue
                # Schedule._ready: a start waits for its CPU to be down, an
                # INIT for it to be parked.
                if kind == start_kind and started[arg[op]] == RUNNING or \
                        kind in needs_parked and started[arg[op]] != PARKED:
                    continue
                ready.append(c)
        total = len(fire) + len(ready)
        if not total:
            return out, all(pc[c] == len(programs[c]) for c in range(n))
        k = 0 if total == 1 else src.next() % total
        if k < len(fire):
            p = fire[k]
            planned.remove(p)
            t = trig[p[1]]
            out.append(Event(t.cpu, t.op, -1, p[1]))
            continue
        c = ready[k - len(fire)]
        slot = pc[c]
        op = programs[c][slot]
        pc[c] = slot + 1
        kind = kinds[op]
        if kind == online_kind:
            online[c] = True
        elif kind in sync_kinds:
            after_sync(kind, arg[op], c, started)
            if kind in parking:
                online[c] = False
        out.append(Event(c, op, slot))


def encode_choices(choices: list[int]) -> bytes:
    """Helper for tests and seeds: raw decision bytes."""
    return bytes(c & 0xFF for c in choices)
