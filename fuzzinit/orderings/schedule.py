"""Which events may come next: program order (or, in permutation mode, any
order between sync points), start/online synchronisation, `before`
constraints and trigger windows. Every generator (hypothesis, atheris, the
explorer) asks a Schedule and none of them knows x86."""

from __future__ import annotations

from typing import NamedTuple

from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.scenario.load import Scenario

# Ops that are synchronisation points: nothing moves across them.
SYNC_KINDS = frozenset((smp.START, smp.ONLINE_OP, smp.WAIT_ONLINE,
                        life.SEND_INIT, life.WAIT_OFFLINE,
                        life.KICK_PLAY_DEAD)) | life.PARKING
# Ops that wait for the CPU they name to be parked by `offline` or
# `stop_this_cpu`.
NEEDS_PARKED = frozenset((life.SEND_INIT, life.WAIT_OFFLINE,
                          life.KICK_PLAY_DEAD))

# Schedule.started[c]: where CPU c is. Waiting for a SIPI (never started,
# or INIT-ed) it runs nothing; parked (life.PARKING) it runs no program op
# but can take an event (an NMI); running, it runs both.
WAITING = 0
RUNNING = 1
PARKED = 2


# The events that reach a parked CPU (IF = 0 keeps out the
# rest: ops_life.py).
PARKED_EVENTS = frozenset(("nmi", "mce"))


def lives_of(sc: Scenario) -> list[list[int]]:
    """Per CPU, the life each program slot belongs to (0 until the first
    `offline`, which ends it), plus one entry for after the last slot."""
    out: list[list[int]] = []
    for program in sc.programs:
        row: list[int] = []
        k = 0
        for op in program:
            row.append(k)
            if sc.machine.op_kind[op] in life.PARKING:
                k += 1
        row.append(k)
        out.append(row)
    return out


def trigger_lives(sc: Scenario, lives: list[list[int]]) -> list[int]:
    """The life of each trigger's window: that of its `after` points. A
    window belongs to one life: a restarted CPU does not reopen it, and it
    stays open while the CPU is parked at the end of that life."""
    return [lives[t.cpu][max(t.after)] if t.after else 0
            for t in sc.triggers]


def in_life(where: int, at: int, life_of_slot: list[int], kind: str,
            window_life: int) -> bool:
    """Whether a trigger of `kind` whose window is in `window_life` may
    fire on a CPU that is `where` (WAITING/RUNNING/PARKED) with its next
    program slot `at`."""
    if where == RUNNING:
        return life_of_slot[at] == window_life
    return where == PARKED and kind in PARKED_EVENTS and \
        life_of_slot[at] == window_life + 1


def after_sync(kind: int, a: int, cpu: int, started: list[int]) -> None:
    """What a `start`, `offline`, `stop_this_cpu` or `send_init` does to
    `started`."""
    if kind == smp.START:
        started[a] = RUNNING
    elif kind in life.PARKING:
        started[cpu] = PARKED
    elif kind == life.SEND_INIT:
        started[a] = WAITING


class Event(NamedTuple):
    """One step of an ordering: `op` (a row of the scenario's op table) on
    `cpu`; `slot` is its index in that CPU's program, or -1 for a trigger,
    in which case `trigger` indexes scenario.triggers."""
    cpu: int
    op: int
    slot: int = -1
    trigger: int = -1


class Schedule:
    """The progress of one ordering being built.

    `permute` (default: the scenario's mode) lets a CPU run any not-yet-done
    op of its current segment - the ops between two sync points - instead of
    only the next one.

    Built event by event (take()), the schedule keeps each CPU's candidates
    and recomputes only those of the CPUs a step can change: the CPU that
    moved, the CPUs waiting on it through `before`, and every CPU after a
    sync op (it changes `started`/`online`, which others wait on). So a
    step costs the same at 8 CPUs as at 128. After restore()/load() the
    next program_candidates() scans every CPU.
    """

    def __init__(self, sc: Scenario, permute: bool | None = None) -> None:
        self.sc = sc
        self.permute = sc.mode == "permute" if permute is None else permute
        n = sc.ncpu
        self.ncpu = n
        # Every event the schedule can offer, made once: [cpu][slot] for
        # program ops, [i] for trigger i.
        self.events = [[Event(c, op, s) for s, op in enumerate(program)]
                       for c, program in enumerate(sc.programs)]
        self.trigger_events = [Event(t.cpu, t.op, -1, i)
                               for i, t in enumerate(sc.triggers)]
        self.done = [[False] * len(p) for p in sc.programs]
        self.first = [0] * n          # first slot not done, per CPU
        self.ndone = [0] * n
        self.started = [RUNNING if c == 0 else WAITING for c in range(n)]
        self.online = [c == 0 for c in range(n)]
        self.left = [t.count for t in sc.triggers]
        self.lives = lives_of(sc)
        self.trigger_life = trigger_lives(sc, self.lives)
        # (cpu, slot) -> program points that must be done first.
        self.needs: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for a, b in sc.before:
            self.needs.setdefault(b, []).append(a)
        m = sc.machine
        # Per CPU: the end of the segment each slot belongs to.
        self.segment_end: list[list[int]] = []
        for program in sc.programs:
            ends = [0] * len(program)
            end = len(program)
            for s in range(len(program) - 1, -1, -1):
                if m.op_kind[program[s]] in SYNC_KINDS:
                    end = s
                ends[s] = end
            self.segment_end.append(ends)
        # (cpu, slot) -> the CPUs with a slot that waits for it (`before`).
        self.waiters: dict[tuple[int, int], list[int]] = {}
        for a, b in sc.before:
            self.waiters.setdefault(a, []).append(b[0])
        # The candidates cache: per CPU its head event (or None) and its
        # displaced events as (distance, cpu, event); `_dirty` lists the
        # CPUs to recompute, `_all_dirty` says every CPU.
        self._heads: list[Event | None] = [None] * n
        self._displaced: list[list[tuple[int, int, Event]]] = \
            [[] for _ in range(n)]
        self._dirty: list[int] = []
        self._all_dirty = True

    def _ready(self, cpu: int, slot: int) -> bool:
        op = self.sc.programs[cpu][slot]
        m = self.sc.machine
        kind = m.op_kind[op]
        if kind == smp.WAIT_ONLINE and not self.online[m.op_a[op]]:
            return False
        # A start waits for its CPU to be down (after the first life), an
        # INIT for it to be parked.
        if kind == smp.START and self.started[m.op_a[op]] == RUNNING:
            return False
        if kind in NEEDS_PARKED and self.started[m.op_a[op]] != PARKED:
            return False
        for c, s in self.needs.get((cpu, slot), ()):
            if not self.done[c][s]:
                return False
        return True

    def _refresh(self, c: int) -> None:
        """Recompute CPU c's entries of the candidates cache."""
        events = self.events[c]
        slot = self.first[c]
        head: Event | None = None
        displaced: list[tuple[int, int, Event]] = []
        if self.started[c] == RUNNING and slot < len(events):
            if self._ready(c, slot):
                head = events[slot]
            if self.permute:
                done = self.done[c]
                for s in range(slot + 1, self.segment_end[c][slot]):
                    if not done[s] and self._ready(c, s):
                        displaced.append((s - slot, c, events[s]))
        self._heads[c] = head
        self._displaced[c] = displaced

    def program_candidates(self) -> list[Event]:
        """Program ops that may run next: each CPU's next op first (in CPU
        order), then ops displaced forward, nearest first."""
        if self._all_dirty:
            for c in range(self.ncpu):
                self._refresh(c)
            self._all_dirty = False
        else:
            for c in self._dirty:
                self._refresh(c)
        self._dirty = []
        out = [e for e in self._heads if e is not None]
        if self.permute:
            displaced = [d for row in self._displaced for d in row]
            if displaced:
                displaced.sort()
                out += [e for _, _, e in displaced]
        return out

    def window_open(self, i: int) -> bool:
        """Whether trigger i may fire now (budget aside): on a running or
        parked CPU."""
        t = self.sc.triggers[i]
        c = t.cpu
        if not in_life(self.started[c], self.first[c], self.lives[c], t.kind,
                       self.trigger_life[i]):
            return False
        done = self.done[t.cpu]
        return all(done[s] for s in t.after) and \
            not any(done[s] for s in t.before)

    def trigger_candidates(self) -> list[Event]:
        return [e for i, e in enumerate(self.trigger_events)
                if self.left[i] and self.window_open(i)]

    def take(self, ev: Event) -> None:
        if ev.trigger >= 0:
            self.left[ev.trigger] -= 1
            return
        c = ev.cpu
        done = self.done[c]
        done[ev.slot] = True
        self.ndone[c] += 1
        while self.first[c] < len(done) and done[self.first[c]]:
            self.first[c] += 1
        m = self.sc.machine
        kind = m.op_kind[ev.op]
        if kind in SYNC_KINDS:
            self._all_dirty = True
        else:
            self._dirty.append(c)
            self._dirty += self.waiters.get((c, ev.slot), ())
        if kind == smp.ONLINE_OP:
            self.online[c] = True
        elif kind in life.PARKING:
            self.online[c] = False
            self.started[c] = PARKED
        else:
            after_sync(kind, m.op_a[ev.op], c, self.started)

    def snapshot(self) -> tuple[object, ...]:
        """A hashable copy of the progress (for the explorer)."""
        return (tuple(tuple(d) for d in self.done), tuple(self.started),
                tuple(self.online), tuple(self.left))

    def snapshot_after(self, snap: tuple[object, ...],
                       ev: Event) -> tuple[object, ...]:
        """The snapshot `take(ev)` would leave after `restore(snap)`,
        built from `snap` directly (the explorer's hot path)."""
        done, started, online, left = snap
        assert isinstance(done, tuple) and isinstance(started, tuple)
        assert isinstance(online, tuple) and isinstance(left, tuple)
        if ev.trigger >= 0:
            i = ev.trigger
            return (done, started, online,
                    left[:i] + (left[i] - 1,) + left[i + 1:])
        c = ev.cpu
        row = done[c]
        done = done[:c] + (row[:ev.slot] + (True,) + row[ev.slot + 1:],) \
            + done[c + 1:]
        m = self.sc.machine
        kind = m.op_kind[ev.op]
        if kind == smp.ONLINE_OP:
            online = online[:c] + (True,) + online[c + 1:]
        elif kind == smp.START or kind in life.PARKING or \
                kind == life.SEND_INIT:
            moved = [x if isinstance(x, int) else 0 for x in started]
            after_sync(kind, m.op_a[ev.op], c, moved)
            started = tuple(moved)
            if kind in life.PARKING:
                online = online[:c] + (False,) + online[c + 1:]
        return (done, started, online, left)

    def load(self, done: list[list[bool]], first: list[int],
             ndone: list[int], started: list[int], online: list[bool],
             left: list[int]) -> None:
        """restore() from the parts of a snapshot the caller has already
        worked out (the explorer keeps them per CPU part). The lists are
        used as they are, not copied: the caller must not change them,
        and the schedule must not take() until the next restore()."""
        self.done = done
        self.first = first
        self.ndone = ndone
        self.started = started
        self.online = online
        self.left = left
        self._all_dirty = True

    def restore(self, snap: tuple[object, ...]) -> None:
        done, started, online, left = snap
        assert isinstance(done, tuple) and isinstance(started, tuple)
        assert isinstance(online, tuple) and isinstance(left, tuple)
        self.done = [list(d) for d in done]
        self.started = list(started)
        self.online = list(online)
        self.left = list(left)
        self.ndone = [sum(d) for d in done]
        self.first = [d.index(False) if False in d else len(d)
                      for d in done]
        self._all_dirty = True

    def finished(self) -> bool:
        return all(self.ndone[c] == len(p)
                   for c, p in enumerate(self.sc.programs))


def program_order(sc: Scenario) -> list[Event]:
    """The ordering that always runs the lowest ready CPU's next op: the
    programs as written, with no trigger."""
    sched = Schedule(sc, permute=False)
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
