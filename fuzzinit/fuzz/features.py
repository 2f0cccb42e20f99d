"""Model-state coverage: what counts as new for the fuzzer.

Each executed event yields a feature: the event's op kind and whether it
ran on the boot CPU, with the acting CPU's abstract state after it (IDT
state, CR4.FRED/FSGSBASE/PCIDE, FRED_CONFIG set, GHCB state, online, user
mode, SS, an open frame, the loaded page table and its left-over global
TLB entries) and the global flags (pinning key, per-CPU GHCBs, alternatives
patched, the feature flags the kernel cleared); the
run's outcome is one more. Features are hashed into libFuzzer counters, so
an input that reaches a new (state, event) combination is new coverage -
not an input that merely runs new Python lines in the model.
"""

from __future__ import annotations

from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR4_FRED, CR4_FSGSBASE, CR4_PCIDE
from fuzzinit.model.outcome import INVALID, OK, WARN
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

CR4_SEEN = CR4_FRED | CR4_FSGSBASE | CR4_PCIDE
FLAGS_SEEN = mc.ONLINE | mc.USER | mc.SS_KERNEL | mc.FRAME_OPEN \
    | mc.FRAME_FRED | mc.FRAME_SS_KERNEL | mc.APIC_EXTD | mc.APIC_OFF \
    | mc.STARTED | mc.TSC_AUX_GUEST


def run_with_features(sc: Scenario, events: list[Event]
                      ) -> tuple[int, list[int]]:
    """Run the model and return (outcome, feature hashes)."""
    m = sc.machine
    st = initial_state(m)
    features: list[int] = []
    chain: list[str] = []
    warnings: list[str] = []
    outcome = OK
    g = m.glob
    for ev in events:
        base = ev.cpu * mc.NF
        outcome = step(m, st, ev.cpu, ev.op, chain, warnings)
        features.append(hash((
            m.op_kind[ev.op], ev.cpu == 0, st[base + mc.F_IDT],
            st[base + mc.F_CR4] & CR4_SEEN, st[base + mc.F_FRED_CONFIG] != 0,
            st[base + mc.F_GHCB], st[base + mc.F_FLAGS] & FLAGS_SEEN,
            st[base + mc.F_MMU], st[base + mc.F_LIFE],
            st[base + mc.F_PERCPU], st[g + mc.G_GONE], st[g + mc.G_KEY],
            st[g + mc.G_FLAGS] & (
                mc.GHCBS_ALLOCATED | mc.ALT_PATCHED | mc.ALT_FSGSBASE)
            | st[g + mc.G_FLAGS] >> mc.CAP_CLEARED_SHIFT << 16, outcome)))
        if outcome != OK:
            break
        if chain:
            chain.clear()
    if outcome == INVALID:
        return INVALID, features
    features.append(hash((-1, outcome, len(warnings) > 0)))
    # A run that ends OK with a WARN on the way is a warn (as run() says).
    return (WARN if outcome == OK and warnings else outcome), features
