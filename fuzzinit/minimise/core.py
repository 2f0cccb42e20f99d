"""The causal core: a 1-minimal subsequence that fails the same way.

Design rules for a pass: it only deletes events (so program order and the
trigger positions of the original ordering are kept), it accepts a candidate
only if the model gives the same outcome AND the same chain, and it is
deterministic (candidates are tried shortlex: bigger deletions first, then
earlier events first).

A trigger may fire only inside its window (scenario `after`/`before`,
schedule.Schedule.window_open). A core keeps a trigger inside it: with
the ops the core keeps and those program order implies were done before
them, the trigger's `after` ops must be done and its CPU started. So the
op that opens the window stays in the core when nothing later on that CPU
implies it - an NMI's `online` when the AP's failing state was built
before it - even if the model does not need it: without it the core would
be an ordering the scenario does not allow (an NMI on a CPU that is not
online yet), and a report built on it would place the failure where the
trigger cannot exist. 1-minimal thus means: removing any one event
changes the outcome or the chain, or leaves a trigger outside its window.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzzinit.model import ops_life as life
from fuzzinit.model import ops_smp as smp
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import (
    RUNNING,
    SYNC_KINDS,
    WAITING,
    Event,
    after_sync,
    in_life,
    lives_of,
    trigger_lives,
)
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate


def implied_prefix(sc: Scenario) -> list[list[int]]:
    """Per CPU and slot: how many of the CPU's first ops must be done once
    that op is done - all earlier ones in interleave mode; in permutation
    mode those up to the last sync point before it (schedule.SYNC_KINDS:
    nothing moves across one)."""
    out: list[list[int]] = []
    kinds = sc.machine.op_kind
    for program in sc.programs:
        row: list[int] = []
        sync = 0
        for s, op in enumerate(program):
            sync_op = kinds[op] in SYNC_KINDS
            if sc.mode != "permute" or sync_op:
                row.append(s + 1)
            else:
                row.append(sync)
            if sync_op:
                sync = s + 1
        out.append(row)
    return out


def in_windows(sc: Scenario, candidate: list[Event],
               implied: list[list[int]] | None = None) -> bool:
    """Whether every trigger of `candidate` fires with its window open,
    counting as done the ops before it in `candidate` and the ops program
    order implies were done before those (`implied`: implied_prefix())."""
    if implied is None:
        implied = implied_prefix(sc)
    m = sc.machine
    done: list[set[int]] = [set() for _ in sc.programs]
    prefix = [0] * sc.ncpu
    where = [RUNNING if c == 0 else WAITING for c in range(sc.ncpu)]
    lives = lives_of(sc)
    tlife = trigger_lives(sc, lives)
    for ev in candidate:
        if ev.trigger < 0:
            done[ev.cpu].add(ev.slot)
            prefix[ev.cpu] = max(prefix[ev.cpu], implied[ev.cpu][ev.slot])
            kind = m.op_kind[ev.op]
            if kind == smp.START or kind == life.SEND_INIT or \
                    kind in life.PARKING:
                after_sync(kind, m.op_a[ev.op], ev.cpu, where)
            continue
        t = sc.triggers[ev.trigger]
        c = t.cpu
        # Schedule.window_open, with the slots program order implies done
        at = max(prefix[c], max(done[c], default=-1) + 1)
        if not in_life(where[c], at, lives[c], t.kind, tlife[ev.trigger]) \
                or not all(s < prefix[c] or s in done[c] for s in t.after):
            return False
    return True


def causal_core(sc: Scenario, events: list[Event], target: Result,
                on_try: Callable[[], None] | None = None) -> list[Event]:
    """Shrink `events` to a subsequence that is 1-minimal for failing with
    `target`'s outcome and chain: removing any one event changes the
    verdict or puts a trigger outside its window."""
    want = (target.outcome, target.chain)
    implied = implied_prefix(sc)

    def same(candidate: list[Event]) -> bool:
        if not in_windows(sc, candidate, implied):
            return False
        if on_try is not None:
            on_try()
        r = evaluate(sc, candidate)
        return (r.outcome, r.chain) == want

    # The model stops at the failing event: nothing after it matters.
    if 0 <= target.at < len(events):
        events = events[:target.at + 1]
    current = list(events)
    # Delta debugging (Zeller, "Simplifying and Isolating Failure-Inducing
    # Input", 2002): delete chunks, halving the chunk size.
    chunk = max(1, len(current) // 2)
    while chunk >= 1:
        i = 0
        progressed = False
        while i < len(current):
            candidate = current[:i] + current[i + chunk:]
            if candidate and same(candidate):
                current = candidate
                progressed = True
            else:
                i += chunk
        if chunk == 1 and not progressed:
            break
        if not progressed:
            chunk //= 2
    return current
