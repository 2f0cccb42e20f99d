"""Symmetry reduction: application processors that run the same program
are interchangeable, so states that differ only by a permutation of them
are explored once (Ip and Dill, "Better verification through symmetry",
FMSD 9, 1996; canonical representatives by sorting).

The boot CPU starts and waits for the APs by number, so the permutation
group is not fixed; it depends on the state. Two APs i and j of the same
class (same program, same triggers, no `before` constraint, no program op
naming another CPU, no `clear_online`) may be swapped in a state when
every op still to run that names them is a `wait_online` in the same run
of consecutive waits (a "wait run") that no trigger window and no
`before` constraint points into - or when nothing still to run names
them. The waits only block (run.py: WAIT_ONLINE writes nothing) and the
online bits they test only grow without `clear_online`, so the run passes
when all of its CPUs are online, whatever their order. Swapped states
are not equivalent step for step (the boot CPU may pass `wait_online 1`
at once in one and not in the other), but a failing ordering from one
maps to one of the same length from the other (the waits it needs all
come after every CPU of the run is online, and can go there), and so do
complete runs: breadth-first counterexamples stay shortest.
An AP that a `start` still to run names is fixed (its fields are the
reset state anyway).

The canonical key sorts the swappable APs' parts - model fields,
schedule progress, online/started, trigger budgets, interned by store.py
- and the explorer keeps the first concrete state that reached a key, so
the orderings it returns are real.
"""

from __future__ import annotations

from fuzzinit.explore.store import Part, State
from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.scenario.load import Scenario

# A wait run: (cpu, first slot, 1); a wait that is not in one: (cpu, slot, 0).
Run = tuple[int, int, int]


class Symmetry:
    def __init__(self, sc: Scenario) -> None:
        m = sc.machine
        self.ncpu = sc.ncpu
        in_before = {c for pair in sc.before for c, _ in pair}
        excluded = set(in_before) | {0}
        for t in sc.triggers:
            if m.op_kind[t.op] == smp.CLEAR_ONLINE:
                excluded.add(t.cpu)
        # A CPU that goes offline leaves the online bits not monotone (and
        # may be restarted), one sending INIT writes another: fixed.
        names_cpu = frozenset((smp.START, smp.WAIT_ONLINE, smp.CLEAR_ONLINE,
                               life.SEND_INIT, life.WAIT_OFFLINE,
                               life.KICK_PLAY_DEAD)) | life.PARKING
        # A trigger's identity within its CPU: what it runs and where.
        self.trigger_order: list[list[int]] = []
        signatures: list[object] = []
        for c, program in enumerate(sc.programs):
            mine = [i for i, t in enumerate(sc.triggers) if t.cpu == c]

            def sig(i: int) -> tuple[object, ...]:
                t = sc.triggers[i]
                return (t.kind, m.op_kind[t.op], m.op_a[t.op], m.op_b[t.op],
                        t.count, t.after, t.before)
            mine.sort(key=sig)
            self.trigger_order.append(mine)
            if any(m.op_kind[op] in names_cpu for op in program):
                excluded.add(c)
            signatures.append((
                tuple((m.op_kind[op], m.op_a[op], m.op_b[op])
                      for op in program),
                tuple(sig(i) for i in mine)))
        classes: dict[object, list[int]] = {}
        for c in range(sc.ncpu):
            if c not in excluded:
                classes.setdefault(signatures[c], []).append(c)
        self.groups = [g for g in classes.values() if len(g) > 1]
        # Ops naming each CPU: (cpu, slot, is_start, wait run or None).
        runs = self._wait_runs(sc)
        self.refs: list[list[tuple[int, int, bool, Run]]] = \
            [[] for _ in range(sc.ncpu)]
        for p, program in enumerate(sc.programs):
            for s, op in enumerate(program):
                kind = m.op_kind[op]
                if kind == smp.START or kind == smp.WAIT_ONLINE:
                    run = runs.get((p, s))
                    self.refs[m.op_a[op]].append(
                        (p, s, kind == smp.START,
                         run if run is not None else (p, s, 0)))
        # The CPUs whose progress decides which APs are swappable.
        self.naming = sorted({p for g in self.groups for k in g
                              for p, _, _, _ in self.refs[k]})
        self._table: list[Part] | None = None
        self._layouts: dict[tuple[int, ...], list[list[int]]] = {}

    @staticmethod
    def _wait_runs(sc: Scenario) -> dict[tuple[int, int], Run]:
        """(cpu, slot) -> run id for waits in a run nothing points into."""
        m = sc.machine
        pointed = {pt for pair in sc.before for pt in pair}
        for t in sc.triggers:
            pointed |= {(t.cpu, s) for s in t.after + t.before}
        out: dict[tuple[int, int], Run] = {}
        for p, program in enumerate(sc.programs):
            s = 0
            while s < len(program):
                if m.op_kind[program[s]] != smp.WAIT_ONLINE:
                    s += 1
                    continue
                end = s
                while end < len(program) and \
                        m.op_kind[program[end]] == smp.WAIT_ONLINE:
                    end += 1
                slots = range(s, end)
                if not any((p, x) in pointed for x in slots):
                    for x in slots:
                        out[(p, x)] = (p, s, 1)
                s = end
        return out

    def _dynamic_key(self, cpu: int, ids: tuple[int, ...],
                     table: list[Part]) -> tuple[Run, ...] | None:
        """None if `cpu` is fixed in this state, else the runs that still
        name it (APs are swappable only with equal keys)."""
        runs: list[Run] = []
        for p, s, is_start, run in self.refs[cpu]:
            if table[ids[p]][1][s]:  # done
                continue
            if is_start:
                return None
            runs.append(run)
        return tuple(sorted(runs))

    def canonical(self, state: State, table: list[Part]) -> State:
        """The representative of `state`'s class: within each set of
        swappable APs, their parts sorted by id (store.py; a part holds the
        AP's model fields, progress, started/online and trigger budgets,
        so sorting ids permutes whole APs)."""
        if not self.groups:
            return state
        glob, ids, used, warned = state
        new: list[int] | None = None
        for members in self._swappable(ids, table):
            ordered = sorted(ids[k] for k in members)
            if new is None:
                new = list(ids)
            for k, i in zip(members, ordered, strict=True):
                new[k] = i
        return state if new is None else (glob, tuple(new), used, warned)

    def _swappable(self, ids: tuple[int, ...],
                   table: list[Part]) -> list[list[int]]:
        """The sets of APs that may be swapped in a state. They depend
        only on the progress of the CPUs whose ops name an AP (the boot
        CPU's starts and waits): cached by those CPUs' part ids, for one
        part table."""
        if table is not self._table:
            self._table = table
            self._layouts.clear()
        key = tuple(ids[p] for p in self.naming)
        layout = self._layouts.get(key)
        if layout is None:
            layout = []
            for group in self.groups:
                buckets: dict[tuple[Run, ...], list[int]] = {}
                for k in group:
                    runs = self._dynamic_key(k, ids, table)
                    if runs is not None:
                        buckets.setdefault(runs, []).append(k)
                layout += [m for m in buckets.values() if len(m) > 1]
            self._layouts[key] = layout
        return layout
