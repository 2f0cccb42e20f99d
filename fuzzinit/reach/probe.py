"""Measuring what a search reached, with coverage.py.

A search is measured unit by unit - an ordering for `run`, an expanded
state for `explore` (in both of its searches when a failure found with
partial-order reduction is searched again without it), a corpus input
for `fuzz` - each unit a coverage.py dynamic context, so that a rule's
count is the number of units in which one of its marked statements
(markers.py) ran. Only the interpreted model
in fuzzinit/model/ is measured; coverage.py cannot see into the mypyc
build.

Two ways in:
- `replay(events)`: runs one ordering through the model's `step()` with
  coverage on and a Schedule beside it, noting each trigger's firing and
  the states in which its window was open (run, verify-fix's searches,
  the fuzz corpus);
- `live()` with `unit()`, `offer()` and `fire()`: the explorer calls
  these from its own loop, which coverage watches throughout.

Contexts are folded into counts every CHUNK units and the coverage.py
object replaced, so memory stays flat however long the search runs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import coverage

from fuzzinit.errors import FuzzinitError
from fuzzinit.model import run as model_run
from fuzzinit.model.arch import CR4_FRED
from fuzzinit.model.idt_table import is_table
from fuzzinit.model.machine import (
    F_CR4,
    F_FLAGS,
    F_FRED_CONFIG,
    F_IDT,
    IDT_NAMES,
    NF,
    ONLINE,
    STARTED,
    USER,
)
from fuzzinit.model.outcome import INVALID, NAMES, OK
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.reach.markers import MODEL, Statement, scan
from fuzzinit.reach.result import (
    DIMENSIONS,
    Reach,
    RuleReach,
    TriggerReach,
    trigger_labels,
)
from fuzzinit.reach.rules import RULES
from fuzzinit.scenario.load import Scenario

CHUNK = 2048  # units per coverage.py object before its contexts are folded



def cpu_state(st: Sequence[int], cpu: int) -> tuple[str, str, str]:
    """The CPU's IDT, FRED and run state, as the trigger table names them."""
    base = cpu * NF
    idt = st[base + F_IDT]
    idt_name = "table" if is_table(idt) else IDT_NAMES[idt]
    if not st[base + F_CR4] & CR4_FRED:
        fred = "off"
    elif st[base + F_FRED_CONFIG]:
        fred = "on"
    else:
        fred = "on with FRED_CONFIG 0"
    flags = st[base + F_FLAGS]
    if not flags & STARTED:
        where = "parked"
    elif flags & USER:
        where = "in user mode"
    else:
        where = "online" if flags & ONLINE else "booting"
    return idt_name, fred, where


class Probe:
    """Rule and trigger coverage of one scenario's search."""

    def __init__(self, sc: Scenario, unit: str = "orderings") -> None:
        if not str(model_run.__file__).endswith(".py"):
            raise FuzzinitError("rule coverage measures the interpreted"
                                f" model; {model_run.__file__} is compiled"
                                " (set FUZZINIT_MODEL=interpreted before"
                                " importing fuzzinit)")
        self.sc = sc
        self.unit_name = unit
        self.units = 0
        self._spans = scan()
        # real path -> [(rule id, statement)]
        self._by_path: dict[str, list[tuple[str, Statement]]] = {}
        for rid, span in self._spans.items():
            for s in span.statements:
                self._by_path.setdefault(os.path.realpath(s.path),
                                         []).append((rid, s))
        self._rule_units: Counter[str] = Counter()
        self._hit: dict[str, set[Statement]] = {r.id: set() for r in RULES}
        self._triggers = [TriggerReach(i, label) for i, label
                          in enumerate(trigger_labels(sc))]
        # One coverage.py object, its data erased after each fold.
        self._cov = coverage.Coverage(
            data_file=None, branch=False, config_file=False,
            include=[str(Path(MODEL) / "*.py")])
        # The C tracer: it records every line in every context (sys.monitoring,
        # the default on Python 3.14, records a line once and cannot switch
        # contexts); coverage.py falls back to its Python tracer without it.
        self._cov.set_option("run:core", "ctrace")
        # A chunk whose units ran no model code is not a problem to warn of.
        self._cov.set_option("run:disable_warnings", ["no-data-collected"])
        self._in_chunk = 0
        self._running = False

    def _start(self) -> None:
        self._running = True
        self._cov.start()

    def _stop(self) -> None:
        if self._running:
            self._cov.stop()
        self._running = False

    def pause(self) -> None:
        """Stop measuring (the explorer, before it replays a failure)."""
        self._stop()

    def _begin_unit(self) -> None:
        if self._in_chunk >= CHUNK:
            running = self._running
            self._fold()
            if running:
                self._start()
        self.units += 1
        self._in_chunk += 1
        self._cov.switch_context(str(self.units))

    def _fold(self) -> None:
        """Add the current coverage.py object's contexts to the counts."""
        self._stop()
        if not self._in_chunk:
            return
        self._in_chunk = 0
        data = self._cov.get_data()
        units: dict[str, set[str]] = {}
        for path in data.measured_files():
            marked = self._by_path.get(os.path.realpath(path))
            if not marked:
                continue
            by_line = data.contexts_by_lineno(path)
            for rid, stmt in marked:
                ran: set[str] = set()
                for line in stmt.lines:
                    ran.update(by_line.get(line, ()))
                ran.discard("")
                if ran:
                    self._hit[rid].add(stmt)
                    units.setdefault(rid, set()).update(ran)
        for rid, ctxs in units.items():
            self._rule_units[rid] += len(ctxs)
        self._cov.erase()  # the contexts are counted: memory stays flat

    # the explorer's way in

    @contextmanager
    def live(self) -> Iterator[Probe]:
        """Coverage on for the block (the explorer's loop)."""
        self._start()
        try:
            yield self
        finally:
            self._stop()

    def unit(self) -> None:
        self._begin_unit()

    def offer(self, st: Sequence[int], events: Sequence[Event]) -> None:
        """Triggers whose windows are open in state `st`."""
        for ev in events:
            if ev.trigger >= 0:
                t = self._triggers[ev.trigger]
                for dim, value in zip(DIMENSIONS, cpu_state(st, ev.cpu),
                                      strict=True):
                    t.open_states.setdefault(dim, set()).add(value)

    def fire(self, st: Sequence[int], ev: Event, outcome: int) -> None:
        """Trigger `ev` fired in state `st` (before it) with `outcome`; an
        INVALID outcome is a firing that cannot happen there (rule 16)."""
        t = self._triggers[ev.trigger]
        if outcome == INVALID:
            t.ruled_out += 1
            return
        t.fired += 1
        if t.last_unit != self.units:
            t.units += 1
            t.last_unit = self.units
        for dim, value in zip(DIMENSIONS, cpu_state(st, ev.cpu), strict=True):
            t.states.setdefault(dim, Counter())[value] += 1
        t.outcomes["handled" if outcome == OK else NAMES[outcome]] += 1

    # run, verify-fix and the fuzz corpus

    def replay(self, events: Sequence[Event]) -> None:
        """Run one ordering with coverage on, as one unit."""
        m = self.sc.machine
        sched = Schedule(self.sc)
        st = model_run.initial_state(m)
        chain: list[str] = []
        warnings: list[str] = []
        self._start()
        try:
            self._begin_unit()
            for ev in events:
                self.offer(st, sched.trigger_candidates())
                before = list(st) if ev.trigger >= 0 else st
                outcome = model_run.step(m, st, ev.cpu, ev.op, chain,
                                         warnings)
                if ev.trigger >= 0:
                    self.fire(before, ev, outcome)
                if outcome != OK:
                    break
                sched.take(ev)
                chain.clear()
        finally:
            self._stop()

    def result(self) -> Reach:
        self._fold()
        rules = [RuleReach(r, self._rule_units[r.id],
                           len(self._spans[r.id].statements),
                           len(self._hit[r.id])) for r in RULES]
        return Reach(self.sc.name, self.unit_name, self.units, rules,
                     self._triggers)
