"""`fuzzinit explore`: breadth-first search over every ordering the
scenario allows (interleavings, and in permutation mode orders), with up
to `max_triggers` triggers in their windows.

A search state is the model's int state with the schedule's progress;
states seen before are not expanded again (state caching), so the count of
distinct states is the measure of work and is the same on every run.
Partial-order reduction (independence.py) and symmetry reduction
(symmetry.py) cut the states expanded. Breadth-first order makes the first
failing ordering found a shortest one; POR can lengthen it, so a failure
found after a reduction step is searched for again without POR.
The answer is exactly one of: a failing ordering; "complete" (every
reachable state expanded, none fails); "budget exhausted" (the state
budget ran out first, nothing failed so far).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fuzzinit.explore.independence import Independence, local_write
from fuzzinit.explore.symmetry import State, Symmetry
from fuzzinit.model.outcome import INVALID, NAMES, OK, Result
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event, Schedule
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate

if TYPE_CHECKING:
    from fuzzinit.reach.probe import Probe

COMPLETE = "complete"
BUDGET = "budget exhausted"
FAILED = "failing ordering"
INTERRUPTED = "interrupted"  # Ctrl-C: the counts so far, no verdict
PROGRESS_EVERY = 4096        # expanded states between progress reports


@dataclass
class Exploration:
    verdict: str                  # COMPLETE, BUDGET or FAILED
    states: int                   # distinct states expanded
    transitions: int
    elapsed_s: float
    ordering: list[Event] | None  # the failing ordering
    result: Result | None
    shortest: bool = True         # the ordering is a shortest one
    reduced: bool = False         # POR left out a successor somewhere
    reduced_states: int = 0       # states of the reduced search that
    #                               found the failure (0: not re-searched)

    @property
    def states_per_s(self) -> float:
        return self.states / self.elapsed_s if self.elapsed_s else 0.0


def explore(sc: Scenario, max_triggers: int = 1, budget: int = 1_000_000,
            por: bool = True, symmetry: bool = True,
            on_progress: Callable[[str], None] | None = None,
            interruptible: bool = False,
            probe: Probe | None = None) -> Exploration:
    """Breadth-first search with state caching, partial-order reduction
    (independence.py) and symmetry reduction (symmetry.py). A failure found
    with POR on is searched again without it, for a shortest ordering.
    `on_progress` gets a status line every PROGRESS_EVERY states. With
    `interruptible` (the CLI), Ctrl-C ends the search with INTERRUPTED and
    the counts so far; otherwise KeyboardInterrupt propagates. A `probe`
    measures every expanded state (rule coverage), in both searches."""
    start = time.monotonic()
    ex = _search(sc, max_triggers, budget, por, symmetry, start, on_progress,
                 interruptible, probe)
    if ex.verdict != FAILED or not ex.reduced:
        return ex  # without a reduction step, BFS order was not changed
    again = _search(sc, max_triggers, max(budget - ex.states, 1), False,
                    symmetry, start, on_progress, interruptible, probe)
    if again.verdict == COMPLETE:
        raise RuntimeError(f"{sc.name}: partial-order reduction found a"
                           " failure the full search does not: a bug in"
                           " fuzzinit/explore/independence.py")
    if again.verdict != FAILED:
        # The budget ran out or Ctrl-C came first: keep the reduced
        # search's ordering.
        ex.shortest = False
        ex.states += again.states
        ex.transitions += again.transitions
        ex.elapsed_s = time.monotonic() - start
        return ex
    again.reduced_states = ex.states
    again.states += ex.states
    again.transitions += ex.transitions
    return again


# (model state, schedule progress, triggers used, a WARN seen)
Key = State


def _search(sc: Scenario, max_triggers: int, budget: int, por: bool,
            symmetry: bool, start: float,
            on_progress: Callable[[str], None] | None,
            interruptible: bool, probe: Probe | None) -> Exploration:
    counts = [0, 0]  # states, transitions: kept up to date for Ctrl-C
    try:
        with probe.live() if probe is not None else nullcontext():
            return _bfs(sc, max_triggers, budget, por, symmetry, start,
                        on_progress, counts, probe)
    except KeyboardInterrupt:
        if not interruptible:
            raise
        return Exploration(INTERRUPTED, counts[0], counts[1],
                           time.monotonic() - start, None, None)


def _bfs(sc: Scenario, max_triggers: int, budget: int, por: bool,
         symmetry: bool, start: float,
         on_progress: Callable[[str], None] | None,
         counts: list[int], probe: Probe | None) -> Exploration:
    m = sc.machine
    sched = Schedule(sc)
    indep = Independence(sc) if por else None
    sym = Symmetry(sc) if symmetry else None
    # (model state, schedule progress, triggers used, a WARN seen)
    root: Key = (tuple(initial_state(m)), sched.snapshot(), 0, False)
    # canonical key -> (parent key, event from the parent's concrete state)
    parent: dict[Key, tuple[Key, Event] | None] = {
        sym.canonical(root) if sym else root: None}
    queue: deque[tuple[Key, Key]] = deque([(next(iter(parent)), root)])
    transitions = 0
    reduced = False
    fail_on = sc.fail_on
    chain: list[str] = []
    warnings: list[str] = []

    def failed(key: Key, ev: Event | None) -> Exploration:
        if probe is not None:
            probe.pause()  # the replay of the failing path is not a unit
        ex = _failed(sc, parent, key, ev, transitions, start)
        ex.reduced = reduced
        return ex

    def run(st_tuple: tuple[int, ...], ev: Event) -> tuple[int, list[int]]:
        st = list(st_tuple)
        chain.clear()
        warnings.clear()
        return step(m, st, ev.cpu, ev.op, chain, warnings), st

    expanded = 0
    while queue:
        counts[0] = len(parent)
        counts[1] = transitions
        expanded += 1
        if len(parent) > budget:
            return Exploration(BUDGET, len(parent), transitions,
                               time.monotonic() - start, None, None)
        if on_progress is not None and expanded % PROGRESS_EVERY == 0:
            elapsed = time.monotonic() - start
            on_progress(f"{sc.name}: {counts[0]:,} states, {len(queue):,}"
                        f" queued, {counts[0] / max(elapsed, 1e-9):,.0f}"
                        " states/s")
        key, state = queue.popleft()
        st_tuple, snap, used, warned = state
        sched.restore(snap)
        moves = sched.program_candidates()
        if used < max_triggers:
            moves += sched.trigger_candidates()
        if probe is not None:
            probe.unit()
            probe.offer(st_tuple, moves)
        successors: list[tuple[Event, list[int], bool]] = []
        if indep is not None:
            for ev in indep.candidates(sched, moves, used < max_triggers):
                outcome, st = run(st_tuple, ev)
                transitions += 1
                if outcome == OK and local_write(st_tuple, st, ev.cpu):
                    if probe is not None and ev.trigger >= 0:
                        probe.fire(st_tuple, ev, outcome)
                    successors.append((ev, st, bool(warnings)))
                    reduced = reduced or len(moves) > 1
                    break
                # Not reduced: the full loop below steps it again.
        if not successors:
            stuck = True
            for ev in moves:
                outcome, st = run(st_tuple, ev)
                transitions += 1
                if probe is not None and ev.trigger >= 0:
                    probe.fire(st_tuple, ev, outcome)
                if outcome == INVALID:
                    continue
                stuck = False
                if outcome != OK and NAMES[outcome] in fail_on:
                    return failed(key, ev)
                if outcome == OK:
                    successors.append((ev, st, bool(warnings)))
                # any other outcome ends the run without failing
            if stuck:
                # No move, or only moves the model rules out (a
                # wait_online whose CPU an attacker took offline).
                if not sched.finished() and "never_online" in fail_on:
                    return failed(key, None)
                if warned and "warn" in fail_on:
                    # A run that ends OK with a WARN on the way is a warn.
                    return failed(key, None)
                continue
        for ev, st, warned_now in successors:
            nxt: Key = (tuple(st), sched.snapshot_after(snap, ev),
                        used + (1 if ev.slot < 0 else 0),
                        warned or warned_now)
            nkey = sym.canonical(nxt) if sym else nxt
            if nkey not in parent:
                parent[nkey] = (key, ev)
                queue.append((nkey, nxt))
    return Exploration(COMPLETE, len(parent), transitions,
                       time.monotonic() - start, None, None, reduced=reduced)


def _finished(sc: Scenario, path: list[Event]) -> bool:
    sched = Schedule(sc)
    for ev in path:
        sched.take(ev)
    return sched.finished()


def _failed(sc: Scenario, parent: dict[Key, tuple[Key, Event] | None],
            state: Key, last: Event | None, transitions: int,
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
