"""`fuzzinit explore`: breadth-first search over every ordering the
scenario allows (interleavings, and in permutation mode orders), with up
to `max_triggers` triggers in their windows.

A search state is the model's int state with the schedule's progress;
states seen before are not expanded again (state caching), so the count of
distinct states is the measure of work and is the same on every run.
Breadth-first order makes the first failing ordering found a shortest one.
The answer is exactly one of: a failing ordering; "complete" (every
reachable state expanded, none fails); "budget exhausted" (the state
budget ran out first, nothing failed so far).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

from fuzzinit.model.outcome import INVALID, NAMES, OK, Result
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate

COMPLETE = "complete"
BUDGET = "budget exhausted"
FAILED = "failing ordering"


@dataclass
class Exploration:
    verdict: str                  # COMPLETE, BUDGET or FAILED
    states: int                   # distinct states expanded
    transitions: int
    elapsed_s: float
    ordering: list[Event] | None  # the shortest failing ordering
    result: Result | None

    @property
    def states_per_s(self) -> float:
        return self.states / self.elapsed_s if self.elapsed_s else 0.0


def explore(sc: Scenario, max_triggers: int = 1,
            budget: int = 1_000_000) -> Exploration:
    start = time.monotonic()
    m = sc.machine
    sched = Schedule(sc)
    # (model state, schedule progress, triggers used, a WARN seen)
    root = (tuple(initial_state(m)), sched.snapshot(), 0, False)
    parent: dict[object, tuple[object, Event] | None] = {root: None}
    queue = deque([root])
    transitions = 0
    fail_on = sc.fail_on
    chain: list[str] = []
    warnings: list[str] = []
    while queue:
        if len(parent) > budget:
            return Exploration(BUDGET, len(parent), transitions,
                               time.monotonic() - start, None, None)
        state = queue.popleft()
        st_tuple, snap, used, warned = state
        sched.restore(snap)
        moves = sched.program_candidates()
        if used < max_triggers:
            moves += sched.trigger_candidates()
        if not moves:
            if not sched.finished() and "never_online" in fail_on:
                return _failed(sc, parent, state, None, transitions, start)
            if warned and "warn" in fail_on:
                # A run that ends OK with a WARN on the way is a warn.
                return _failed(sc, parent, state, None, transitions, start)
            continue
        for ev in moves:
            st = list(st_tuple)
            chain.clear()
            warnings.clear()
            outcome = step(m, st, ev.cpu, ev.op, chain, warnings)
            transitions += 1
            if outcome == INVALID:
                continue
            if outcome != OK and NAMES[outcome] in fail_on:
                return _failed(sc, parent, state, ev, transitions, start)
            if outcome != OK:
                continue  # the run ends here without failing the scenario
            sched.restore(snap)
            sched.take(ev)
            nxt = (tuple(st), sched.snapshot(),
                   used + (1 if ev.slot < 0 else 0),
                   warned or bool(warnings))
            if nxt not in parent:
                parent[nxt] = (state, ev)
                queue.append(nxt)
    return Exploration(COMPLETE, len(parent), transitions,
                       time.monotonic() - start, None, None)


def _finished(sc: Scenario, path: list[Event]) -> bool:
    sched = Schedule(sc)
    for ev in path:
        sched.take(ev)
    return sched.finished()


def _failed(sc: Scenario, parent: dict[object, tuple[object, Event] | None],
            state: object, last: Event | None, transitions: int,
            start: float) -> Exploration:
    path: list[Event] = [] if last is None else [last]
    node = parent[state]
    while node is not None:
        prev, ev = node
        path.append(ev)
        node = parent[prev]
    path.reverse()
    complete = last is not None or _finished(sc, path)
    result = evaluate(sc, path, complete=complete)
    return Exploration(FAILED, len(parent), transitions,
                       time.monotonic() - start, path, result)
