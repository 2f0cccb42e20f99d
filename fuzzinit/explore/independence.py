"""Partial-order reduction: when one CPU's next op commutes with everything
the other CPUs can still do, explore only that op from the state.

This is a persistent-set reduction with singleton sets (Godefroid,
"Partial-Order Methods for the Verification of Concurrent Systems", LNCS
1032, ch. 4). The explorer's state graph is acyclic (every event finishes a
program op or spends trigger budget), so no cycle proviso is needed. An op
`t` of CPU c is explored alone from state s when

1. it is c's only enabled event (in permutation mode: the last op left in
   c's segment), it is a program op, and no trigger of c is enabled;
2. it ends OK at s and writes nothing outside c's per-CPU fields, and not
   c's online bit (checked by running it: the actual write set);
3. nothing any other CPU can still run (its remaining program ops, its
   triggers with budget left) may write what `t` may read (static, per op
   kind: WRITES and reads() below).

Then every failing ordering from s can be rearranged to run `t` first:
t's result depends only on c's fields and on resources nobody else can
change any more, and no other CPU reads c's fields while c runs (only
`wait_online` reads the online bit, which `t` leaves alone; `start`,
`send_init`, `kick_play_dead` and `wait_offline` read or write c's fields
only while c is parked or waiting for a SIPI, so never between s and t).
The WARN_ONCE flags are covered by (2): a write that warns with the flag
still clear changes a global and is not reduced; once a flag is set
nobody can change it.

POR shortens some failing orderings by forcing independent ops first, so
it does not by itself give a shortest counterexample; the explorer
re-searches without it when it has found a failure (bfs.explore).
"""

from __future__ import annotations

from fuzzinit.model import machine as mc
from fuzzinit.model import op as opdef
from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.model.vocabulary import OPS
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario

# Shared resources an op kind may read or write: each op's `reads` and
# `writes` (fuzzinit/model/op.py), where the op is defined.
PIN = opdef.PIN
ONLINE = opdef.ONLINE
WRITES: dict[int, int] = {op.kind: op.writes for op in OPS if op.writes}
# Never reduced: they write what other CPUs read.
NEVER = frozenset(op.kind for op in OPS if op.writes & ONLINE)


def reads(kind: int, pin_property: bool) -> int:
    base = OPS[kind].reads
    # step() checks the pin property after every op (run.py).
    return base | PIN if pin_property else base


class Independence:
    """Static tables for the check; `candidates` applies conditions 1 and
    3, the explorer applies 2 by running the op."""

    def __init__(self, sc: Scenario) -> None:
        m = sc.machine
        self.sc = sc
        self.ncpu = sc.ncpu
        self.pin_property = m.pin_property
        # suffix[c][i]: what CPU c's program may still write from slot i on.
        self.suffix: list[list[int]] = []
        for program in sc.programs:
            acc = [0] * (len(program) + 1)
            for s in range(len(program) - 1, -1, -1):
                acc[s] = acc[s + 1] | WRITES.get(m.op_kind[program[s]], 0)
            self.suffix.append(acc)
        self.trigger_writes = [WRITES.get(m.op_kind[t.op], 0)
                               for t in sc.triggers]
        self.triggers_of: list[list[int]] = [[] for _ in sc.programs]
        for i, t in enumerate(sc.triggers):
            self.triggers_of[t.cpu].append(i)
        # An op that reads every CPU's fields (a broadcast machine check)
        # commutes with nothing: with one in the scenario, reduce nothing.
        self.broadcast = any(
            OPS[m.op_kind[op]].reads & opdef.CPUS
            for op in [*(o for p in sc.programs for o in p),
                       *(t.op for t in sc.triggers)])
        # CPUs whose online bit can be cleared after it was set.
        self.clearable = {t.cpu for t in sc.triggers
                          if m.op_kind[t.op] == smp.CLEAR_ONLINE}
        for c, program in enumerate(sc.programs):
            if any(m.op_kind[op] == smp.CLEAR_ONLINE
                   or m.op_kind[op] in life.PARKING for op in program):
                self.clearable.add(c)

    def _future_writes(self, sched: Schedule, cpu: int,
                       triggers_left: bool) -> int:
        acc = self.suffix[cpu][sched.first[cpu]]
        if triggers_left:
            for i in self.triggers_of[cpu]:
                if sched.left[i]:
                    acc |= self.trigger_writes[i]
        return acc

    def candidates(self, sched: Schedule, moves: list[Event],
                   triggers_left: bool) -> list[Event]:
        """Program ops that meet conditions 1 and 3, in CPU order."""
        if self.broadcast:
            return []
        per_cpu = [0] * self.ncpu
        for ev in moves:
            per_cpu[ev.cpu] += 1
        m = self.sc.machine
        writes = [self._future_writes(sched, c, triggers_left)
                  for c in range(self.ncpu)]
        out: list[Event] = []
        for ev in moves:
            c = ev.cpu
            if ev.slot < 0 or per_cpu[c] != 1 or ev.slot != sched.first[c]:
                continue
            kind = m.op_kind[ev.op]
            if kind in NEVER:
                continue
            if kind == smp.WAIT_ONLINE and m.op_a[ev.op] in self.clearable:
                continue
            if sched.permute and not self._last_in_segment(sched, c,
                                                           ev.slot):
                continue
            others = 0
            for d in range(self.ncpu):
                if d != c:
                    others |= writes[d]
            if reads(kind, self.pin_property) & others:
                continue
            out.append(ev)
        return out

    @staticmethod
    def _last_in_segment(sched: Schedule, cpu: int, slot: int) -> bool:
        done = sched.done[cpu]
        return all(done[s] for s in range(slot + 1,
                                          sched.segment_end[cpu][slot]))


def local_write(st_before: list[int], st_after: list[int], cpu: int,
                ) -> bool:
    """Condition 2: the step changed only `cpu`'s fields, not its online
    bit."""
    lo = cpu * mc.NF
    hi = lo + mc.NF
    if st_before[:lo] != st_after[:lo] or st_before[hi:] != st_after[hi:]:
        return False
    flags = lo + mc.F_FLAGS
    return not (st_before[flags] ^ st_after[flags]) & mc.ONLINE
