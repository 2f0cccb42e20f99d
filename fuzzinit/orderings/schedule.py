"""Which events may come next: program order, start/online synchronisation,
`before` constraints and trigger windows. Every generator (hypothesis,
atheris, the explorer) asks a Schedule and none of them knows x86."""

from __future__ import annotations

from typing import NamedTuple

from fuzzinit.model import machine as mc
from fuzzinit.scenario.load import Scenario


class Event(NamedTuple):
    """One step of an ordering: `op` (a row of the scenario's op table) on
    `cpu`; `slot` is its index in that CPU's program, or -1 for a trigger,
    in which case `trigger` indexes scenario.triggers."""
    cpu: int
    op: int
    slot: int = -1
    trigger: int = -1


class Schedule:
    """The progress of one ordering being built."""

    def __init__(self, sc: Scenario) -> None:
        self.sc = sc
        n = sc.ncpu
        self.pc = [0] * n
        self.started = [c == 0 for c in range(n)]
        self.online = [c == 0 for c in range(n)]
        self.left = [t.count for t in sc.triggers]
        # (cpu, slot) -> program points that must be done first.
        self.needs: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for a, b in sc.before:
            self.needs.setdefault(b, []).append(a)

    def _program_ready(self, cpu: int) -> bool:
        slot = self.pc[cpu]
        program = self.sc.programs[cpu]
        if not self.started[cpu] or slot >= len(program):
            return False
        op = program[slot]
        m = self.sc.machine
        if m.op_kind[op] == mc.WAIT_ONLINE and not self.online[m.op_a[op]]:
            return False
        for c, s in self.needs.get((cpu, slot), ()):
            if self.pc[c] <= s:
                return False
        return True

    def program_candidates(self) -> list[Event]:
        return [Event(c, self.sc.programs[c][self.pc[c]], self.pc[c])
                for c in range(self.sc.ncpu) if self._program_ready(c)]

    def trigger_candidates(self) -> list[Event]:
        out = []
        for i, t in enumerate(self.sc.triggers):
            if self.left[i] and self.started[t.cpu] and \
                    t.lo <= self.pc[t.cpu] <= t.hi:
                out.append(Event(t.cpu, t.op, -1, i))
        return out

    def take(self, ev: Event) -> None:
        if ev.trigger >= 0:
            self.left[ev.trigger] -= 1
            return
        self.pc[ev.cpu] += 1
        m = self.sc.machine
        kind = m.op_kind[ev.op]
        if kind == mc.START:
            self.started[m.op_a[ev.op]] = True
        elif kind == mc.ONLINE_OP:
            self.online[ev.cpu] = True

    def finished(self) -> bool:
        return all(self.pc[c] == len(p) for c, p in enumerate(self.sc.programs))


def program_order(sc: Scenario) -> list[Event]:
    """The ordering that always runs the lowest ready CPU: the programs as
    written, with no trigger."""
    sched = Schedule(sc)
    out: list[Event] = []
    while True:
        ready = sched.program_candidates()
        if not ready:
            return out
        sched.take(ready[0])
        out.append(ready[0])


def well_formed(sc: Scenario, events: list[Event]) -> str:
    """"" if `events` is an ordering the scenario allows (complete or a
    prefix), else why not. Subsequences (causal cores) are not checked."""
    sched = Schedule(sc)
    for i, ev in enumerate(events):
        allowed = sched.program_candidates() + sched.trigger_candidates()
        if ev not in allowed:
            return f"event {i} (cpu{ev.cpu}: {sc.op_text(ev.op)}) is not" \
                " allowed at that point"
        sched.take(ev)
    return ""
