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

import gc
import time
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fuzzinit.explore.independence import Independence, local_write
from fuzzinit.explore.store import (
    Parts,
    Tree,
    miss_probability,
    resident_bytes,
)
from fuzzinit.explore.symmetry import Symmetry
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
MEMORY_EVERY = 1024          # expanded states between memory checks


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
    limit: str = ""               # BUDGET: "states" or "memory" ran out
    hash_compact: bool = False    # states kept as 64-bit hashes
    miss_probability: float = 0.0  # hash compaction: P(a state was missed)

    @property
    def states_per_s(self) -> float:
        return self.states / self.elapsed_s if self.elapsed_s else 0.0


@dataclass(frozen=True)
class Limits:
    states: int          # stop after this many distinct states
    memory: int = 0      # ... or when the process grew by this many bytes
    hash_compact: bool = False  # keep 64-bit hashes, not states (store.py)


def explore(sc: Scenario, max_triggers: int = 1, budget: int = 1_000_000,
            por: bool = True, symmetry: bool = True,
            on_progress: Callable[[str], None] | None = None,
            interruptible: bool = False,
            probe: Probe | None = None, memory: int = 0,
            hash_compact: bool = False) -> Exploration:
    """Breadth-first search with state caching, partial-order reduction
    (independence.py) and symmetry reduction (symmetry.py). A failure found
    with POR on is searched again without it, for a shortest ordering.
    `on_progress` gets a status line every PROGRESS_EVERY states. With
    `interruptible` (the CLI), Ctrl-C ends the search with INTERRUPTED and
    the counts so far; otherwise KeyboardInterrupt propagates. A `probe`
    measures every expanded state (rule coverage), in both searches.
    `memory` (bytes, 0: none) bounds the growth of the process's resident
    memory like `budget` bounds the states; `hash_compact` stores 64-bit
    hashes of states instead of the states (store.py)."""
    start = time.monotonic()
    limits = Limits(budget, memory, hash_compact)
    ex = _search(sc, max_triggers, limits, por, symmetry, start, on_progress,
                 interruptible, probe)
    if ex.verdict != FAILED or not ex.reduced:
        return ex  # without a reduction step, BFS order was not changed
    again = _search(sc, max_triggers,
                    Limits(max(budget - ex.states, 1), memory, hash_compact),
                    False, symmetry, start, on_progress, interruptible, probe)
    if again.verdict == COMPLETE:
        raise RuntimeError(f"{sc.name}: partial-order reduction found a"
                           " failure the full search does not: a bug in"
                           " fuzzinit/explore/independence.py")
    if again.verdict != FAILED:
        # The budget ran out or Ctrl-C came first: keep the reduced
        # search's ordering.
        ex.shortest = False
        ex.limit = again.limit
        ex.states += again.states
        ex.transitions += again.transitions
        ex.elapsed_s = time.monotonic() - start
        return ex
    again.reduced_states = ex.states
    again.states += ex.states
    again.transitions += ex.transitions
    return again


def _search(sc: Scenario, max_triggers: int, limits: Limits,
            por: bool, symmetry: bool, start: float,
            on_progress: Callable[[str], None] | None,
            interruptible: bool, probe: Probe | None) -> Exploration:
    counts = [0, 0]  # states, transitions: kept up to date for Ctrl-C
    # The search makes millions of tuples and no cycles: the cyclic
    # collector would only walk the growing visited set again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with probe.live() if probe is not None else nullcontext():
            return _bfs(sc, max_triggers, limits, por, symmetry, start,
                        on_progress, counts, probe)
    except KeyboardInterrupt:
        if not interruptible:
            raise
        return Exploration(INTERRUPTED, counts[0], counts[1],
                           time.monotonic() - start, None, None,
                           hash_compact=limits.hash_compact)
    finally:
        if collecting:
            gc.enable()


def _bfs(sc: Scenario, max_triggers: int, limits: Limits, por: bool,
         symmetry: bool, start: float,
         on_progress: Callable[[str], None] | None,
         counts: list[int], probe: Probe | None) -> Exploration:
    m = sc.machine
    sched = Schedule(sc)
    indep = Independence(sc) if por else None
    sym = Symmetry(sc) if symmetry else None
    order = sym.trigger_order if sym is not None else [
        [i for i, t in enumerate(sc.triggers) if t.cpu == c]
        for c in range(sc.ncpu)]
    parts = Parts(sc, order)
    table = parts.table
    tree = Tree(limits.hash_compact)
    root = parts.encode(initial_state(m), sched.snapshot(), 0, False)
    tree.add(parts.pack(sym.canonical(root, table) if sym else root), -1,
             None)
    # (index in the tree, the first concrete state that reached its key,
    # packed)
    queue: deque[tuple[int, bytes]] = deque([(0, parts.pack(root))])
    transitions = 0
    reduced = False
    fail_on = sc.fail_on
    chain: list[str] = []
    warnings: list[str] = []
    baseline = resident_bytes()

    def result(verdict: str, ordering: list[Event] | None = None,
               res: Result | None = None, limit: str = "") -> Exploration:
        n = len(tree)
        return Exploration(
            verdict, n, transitions, time.monotonic() - start, ordering,
            res, reduced=reduced, limit=limit,
            hash_compact=limits.hash_compact,
            miss_probability=miss_probability(n) if limits.hash_compact
            else 0.0)

    def failed(index: int, ev: Event | None) -> Exploration:
        if probe is not None:
            probe.pause()  # the replay of the failing path is not a unit
        path = tree.path(index) + ([] if ev is None else [ev])
        complete = ev is not None or _finished(sc, path)
        return result(FAILED, path, evaluate(sc, path, complete=complete))

    def run(st0: list[int], ev: Event) -> tuple[int, list[int]]:
        st = st0.copy()
        chain.clear()
        warnings.clear()
        return step(m, st, ev.cpu, ev.op, chain, warnings), st

    expanded = 0
    while queue:
        counts[0] = len(tree)
        counts[1] = transitions
        expanded += 1
        if len(tree) > limits.states:
            return result(BUDGET, limit="states")
        if expanded % MEMORY_EVERY == 0 and limits.memory and \
                resident_bytes() - baseline > limits.memory:
            return result(BUDGET, limit="memory")
        if on_progress is not None and expanded % PROGRESS_EVERY == 0:
            elapsed = time.monotonic() - start
            on_progress(f"{sc.name}: {counts[0]:,} states, {len(queue):,}"
                        f" queued, {counts[0] / max(elapsed, 1e-9):,.0f}"
                        " states/s")
        index, packed = queue.popleft()
        state = parts.unpack(packed)
        st0, snap = parts.load(state, sched)
        used, warned = state[2], state[3]
        moves = sched.program_candidates()
        if used < max_triggers:
            moves += sched.trigger_candidates()
        if probe is not None:
            probe.unit()
            probe.offer(tuple(st0), moves)
        successors: list[tuple[Event, list[int], bool]] = []
        if indep is not None:
            for ev in indep.candidates(sched, moves, used < max_triggers):
                outcome, st = run(st0, ev)
                transitions += 1
                if outcome == OK and local_write(st0, st, ev.cpu):
                    if probe is not None and ev.trigger >= 0:
                        probe.fire(tuple(st0), ev, outcome)
                    successors.append((ev, st, bool(warnings)))
                    reduced = reduced or len(moves) > 1
                    break
                # Not reduced: the full loop below steps it again.
        if not successors:
            stuck = True
            for ev in moves:
                outcome, st = run(st0, ev)
                transitions += 1
                if probe is not None and ev.trigger >= 0:
                    probe.fire(tuple(st0), ev, outcome)
                if outcome == INVALID:
                    continue
                stuck = False
                if outcome != OK and NAMES[outcome] in fail_on:
                    return failed(index, ev)
                if outcome == OK:
                    successors.append((ev, st, bool(warnings)))
                # any other outcome ends the run without failing
            if stuck:
                # No move, or only moves the model rules out (a
                # wait_online whose CPU an attacker took offline).
                if not sched.finished() and "never_online" in fail_on:
                    return failed(index, None)
                if warned and "warn" in fail_on:
                    # A run that ends OK with a WARN on the way is a warn.
                    return failed(index, None)
                continue
        for ev, st, warned_now in successors:
            nxt = parts.successor(state, st0, snap, st,
                                  sched.snapshot_after(snap, ev),
                                  used + (1 if ev.slot < 0 else 0),
                                  warned or warned_now, ev.cpu)
            new = tree.add(parts.pack(sym.canonical(nxt, table) if sym
                                      else nxt), index, ev)
            if new >= 0:
                queue.append((new, parts.pack(nxt)))
    return result(COMPLETE)


def _finished(sc: Scenario, path: list[Event]) -> bool:
    sched = Schedule(sc)
    for ev in path:
        sched.take(ev)
    return sched.finished()
