"""How the explorer keeps its states: per-CPU interning, the visited set
(exact, or 64-bit hash compaction) and the parent links of a breadth-first
search, with their memory.

A search state is a CPU count's worth of per-CPU parts (the CPU's model
fields, its program progress, started/online, the budgets of its
triggers) plus the model's global fields. Each distinct per-CPU part is
stored once and a state holds the ids of its parts (SPIN's collapse
compression, -DCOLLAPSE: Holzmann, "State compression in SPIN", 1997), so
a step that changes one CPU adds at most one new part and a state costs 4
bytes a CPU (pack(): part ids and an interned id of the global fields),
not a copy of every CPU's fields.

With hash compaction (SPIN's -DHC; Wolper and Leroy, "Reliable hashing
without collision detection", CAV 1993) the visited set keeps a 64-bit
hash of each state instead of the state: two states with the same hash
count as one, so a state can be missed; with n states stored the
probability that any was is at most n(n-1)/2^65 (a union bound over
pairs, for a uniform hash: blake2b).
"""

from __future__ import annotations

import hashlib
import os
import resource
from array import array
from collections.abc import Sequence

from fuzzinit.model import machine as mc
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario

# A per-CPU part: (model fields, done row, started, online, budgets of the
# CPU's triggers in its trigger order).
Part = tuple[tuple[int, ...], tuple[bool, ...], int, bool, tuple[int, ...]]
# A search state: (global model fields, part ids by CPU, triggers used, a
# WARN seen).
State = tuple[tuple[int, ...], tuple[int, ...], int, bool]
Snapshot = tuple[object, ...]  # Schedule.snapshot()


class Parts:
    """The interned per-CPU parts of one search, and the conversions
    between a State and the model's state list plus a schedule snapshot."""

    def __init__(self, sc: Scenario, trigger_order: list[list[int]]) -> None:
        self.ncpu = sc.ncpu
        self.nf = mc.NF
        self.glob = sc.machine.glob
        self.order = trigger_order
        self.ntriggers = len(sc.triggers)
        self.table: list[Part] = []
        self._ids: dict[Part, int] = {}
        # The global fields, interned as parts are (pack()).
        self._globs: list[tuple[int, ...]] = []
        self._glob_ids: dict[tuple[int, ...], int] = {}
        # Per part, what Schedule.load() takes: the done row as a list,
        # the first slot not done, the number done.
        self._rows: list[list[bool]] = []
        self._first: list[int] = []
        self._ndone: list[int] = []

    def intern(self, part: Part) -> int:
        i = self._ids.get(part)
        if i is None:
            i = len(self.table)
            self._ids[part] = i
            self.table.append(part)
            row = part[1]
            self._rows.append(list(row))
            self._first.append(row.index(False) if False in row
                               else len(row))
            self._ndone.append(sum(row))
        return i

    def _part(self, st: Sequence[int], snap: Snapshot, k: int) -> int:
        done, started, online, left = snap
        assert isinstance(done, tuple) and isinstance(started, tuple)
        assert isinstance(online, tuple) and isinstance(left, tuple)
        lo = k * self.nf
        return self.intern((tuple(st[lo:lo + self.nf]), done[k], started[k],
                            online[k], tuple(left[i] for i in self.order[k])))

    def encode(self, st: Sequence[int], snap: Snapshot, used: int,
               warned: bool) -> State:
        return (tuple(st[self.glob:]),
                tuple(self._part(st, snap, k) for k in range(self.ncpu)),
                used, warned)

    def successor(self, parent: State, parent_st: list[int],
                  parent_snap: Snapshot, st: list[int], snap: Snapshot,
                  used: int, warned: bool, cpu: int) -> State:
        """encode(st, snap, ...) for the state after an event on `cpu`
        from `parent`: only the CPUs whose part changed are looked up
        again."""
        pglob, pids, _, _ = parent
        ids: list[int] | None = None
        nf = self.nf
        pdone, pstarted, ponline, pleft = parent_snap
        done, started, online, left = snap
        assert isinstance(done, tuple) and isinstance(pdone, tuple)
        assert isinstance(started, tuple) and isinstance(online, tuple)
        assert isinstance(pstarted, tuple) and isinstance(ponline, tuple)
        assert isinstance(left, tuple) and isinstance(pleft, tuple)
        g = self.glob
        glob = pglob
        for i in range(g, len(st)):
            if st[i] != parent_st[i]:
                glob = tuple(st[g:])
                break
        if self._only(cpu, parent_st, parent_snap, st, snap):
            # The common step: only `cpu` changed (its trigger budgets
            # are its own).
            ids = list(pids)
            ids[cpu] = self._part(st, snap, cpu)
            return (glob, tuple(ids), used, warned)
        for k in range(self.ncpu):
            lo = k * nf
            if st[lo:lo + nf] == parent_st[lo:lo + nf] and \
                    done[k] is pdone[k] and started[k] == pstarted[k] and \
                    online[k] == ponline[k] and \
                    (left is pleft or all(left[i] == pleft[i]
                                          for i in self.order[k])):
                continue
            if ids is None:
                ids = list(pids)
            ids[k] = self._part(st, snap, k)
        return (glob, pids if ids is None else tuple(ids), used, warned)

    def _only(self, cpu: int, parent_st: list[int], parent_snap: Snapshot,
              st: list[int], snap: Snapshot) -> bool:
        """Whether no CPU but `cpu` has other fields, progress or
        started/online than in the parent (element by element: no
        slices; Schedule.snapshot_after keeps unchanged rows and tuples,
        so most tests are identity)."""
        lo = cpu * self.nf
        hi = lo + self.nf
        for i in range(lo):
            if st[i] != parent_st[i]:
                return False
        for i in range(hi, self.glob):
            if st[i] != parent_st[i]:
                return False
        pdone, pstarted, ponline, _ = parent_snap
        done, started, online, _ = snap
        assert isinstance(done, tuple) and isinstance(pdone, tuple)
        assert isinstance(started, tuple) and isinstance(online, tuple)
        assert isinstance(pstarted, tuple) and isinstance(ponline, tuple)
        if started is not pstarted and started != pstarted:
            return False
        for k in range(self.ncpu):
            if k != cpu and ((online is not ponline
                              and online[k] != ponline[k])
                             or (done[k] is not pdone[k]
                                 and done[k] != pdone[k])):
                return False
        return True

    def load(self, state: State, sched: Schedule) -> tuple[list[int],
                                                           Snapshot]:
        """The model's state list and the schedule snapshot of a State,
        with `sched` set to its progress (Schedule.load: read-only until
        the next restore)."""
        glob, ids, _, _ = state
        st: list[int] = []
        done: list[tuple[bool, ...]] = []
        rows: list[list[bool]] = []
        first: list[int] = []
        ndone: list[int] = []
        started: list[int] = []
        online: list[bool] = []
        left = [0] * self.ntriggers
        table = self.table
        for k, i in enumerate(ids):
            fields, row, s, o, budgets = table[i]
            st.extend(fields)
            done.append(row)
            rows.append(self._rows[i])
            first.append(self._first[i])
            ndone.append(self._ndone[i])
            started.append(s)
            online.append(o)
            order = self.order[k]
            for j in range(len(order)):
                left[order[j]] = budgets[j]
        st.extend(glob)
        sched.load(rows, first, ndone, started, online, left)
        return st, (tuple(done), tuple(started), tuple(online), tuple(left))

    def pack(self, state: State) -> bytes:
        """A state as bytes: its global fields' id (interned like the
        parts), the triggers used, the WARN bit and the part ids, 4 bytes
        each - what the visited set and the queue keep."""
        glob, ids, used, warned = state
        g = self._glob_ids.get(glob)
        if g is None:
            g = len(self._globs)
            self._glob_ids[glob] = g
            self._globs.append(glob)
        packed = array("I", (g, used, warned))
        packed.extend(ids)
        return packed.tobytes()

    def unpack(self, packed: bytes) -> State:
        values = array("I")
        values.frombytes(packed)
        return (self._globs[values[0]], tuple(values[3:]), values[1],
                values[2] != 0)


def packed_hash(packed: bytes) -> int:
    """A 64-bit hash of a packed state (blake2b)."""
    return int.from_bytes(hashlib.blake2b(packed, digest_size=8).digest(),
                          "little")


def miss_probability(states: int) -> float:
    """Upper bound on the probability that 64-bit hash compaction merged
    two of `states` distinct states (so one was never expanded)."""
    return states * (states - 1) / 2.0 ** 65


class Tree:
    """The visited set and, per state in discovery order, its parent and
    the event that reached it (for the failing ordering)."""

    def __init__(self, compact: bool) -> None:
        self.compact = compact
        self._seen: set[object] = set()
        self.parent = array("q")
        self.event = array("l")
        self._events: list[Event] = []
        self._event_ids: dict[Event, int] = {}

    def __len__(self) -> int:
        return len(self.parent)

    def add(self, key: bytes, parent: int, ev: Event | None) -> int:
        """The index of a new state (Parts.pack), -1 if it was seen
        before."""
        mark: object = packed_hash(key) if self.compact else key
        if mark in self._seen:
            return -1
        self._seen.add(mark)
        self.parent.append(parent)
        if ev is None:
            self.event.append(-1)
        else:
            e = self._event_ids.get(ev)
            if e is None:
                e = len(self._events)
                self._event_ids[ev] = e
                self._events.append(ev)
            self.event.append(e)
        return len(self.parent) - 1

    def path(self, index: int) -> list[Event]:
        """The events from the root to state `index`."""
        out: list[Event] = []
        while self.parent[index] >= 0:
            out.append(self._events[self.event[index]])
            index = self.parent[index]
        out.reverse()
        return out


def resident_bytes() -> int:
    """This process's resident memory now (Linux /proc), or its peak
    where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if os.uname().sysname == "Darwin" else peak * 1024
