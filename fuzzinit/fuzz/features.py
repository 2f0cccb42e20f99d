"""Model-state coverage: what counts as new for the fuzzer.

Each executed event yields a feature: the event's op kind and whether it
ran on the boot CPU, with the acting CPU's abstract state after it (IDT
state, CR4.FRED/FSGSBASE/PCIDE, FRED_CONFIG set, GHCB state, online, user
mode, SS, an open frame, the loaded page table and its left-over global
TLB entries, its life and per-CPU variables), the global state (gone
kernel images, pinning key, per-CPU GHCBs, alternatives patched, the
feature flags the kernel cleared) and the event's outcome; the run's end
(its outcome, whether it WARNed) is one more. Features are hashed into
libFuzzer counters, so an input that reaches a new (state, event)
combination is new coverage - not an input that merely runs new Python
lines in the model.

The per-input loop - decode, run, hash - is fuzzinit/model/features.py,
compiled with the model; this module builds its tables for a scenario.
"""

from __future__ import annotations

from fuzzinit.fuzz.decode import decode
from fuzzinit.model import features as mf
from fuzzinit.model.features import Execution, Plan
from fuzzinit.orderings.schedule import PARKED_EVENTS, lives_of, trigger_lives
from fuzzinit.scenario.load import Scenario


def plan_of(sc: Scenario, memo_budget: int = 1 << 21) -> Plan | None:
    """The decoder tables of `sc`; None in permutation mode, which the
    compiled decoder does not do. `memo_budget`: see Plan."""
    if sc.mode != "interleave":
        return None
    programs = sc.programs
    lives = lives_of(sc)
    trig = sc.triggers
    needs: list[list[list[int]]] = [[[] for _ in p] for p in programs]
    for (ca, sa), (cb, sb) in sc.before:
        needs[cb][sb] += [ca, sa]
    return Plan(
        sc.machine, [list(p) for p in programs], lives,
        [t.cpu for t in trig], [t.op for t in trig], [t.count for t in trig],
        [max(t.after) + 1 if t.after else 0 for t in trig],
        [min(t.before) if t.before else len(programs[t.cpu]) for t in trig],
        trigger_lives(sc, lives), [t.kind in PARKED_EVENTS for t in trig],
        needs, memo_budget)


def run_input(sc: Scenario, plan: Plan | None, data: bytes) -> Execution:
    """Decode and run `data` (plan: plan_of(sc)), with its features."""
    if plan is not None:
        return mf.decode_run(plan, data)
    events, complete = decode(sc, data)
    return mf.run_features(sc.machine, [e.cpu for e in events],
                           [e.op for e in events], complete)
