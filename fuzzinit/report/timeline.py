"""Per-step model state along an ordering, for reports."""

from __future__ import annotations

from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR4_BITS, CR4_FRED, CR4_PCIDE
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario


def describe(sc: Scenario, st: list[int], cpu: int) -> str:
    """The state that matters for FRED/pinning/#VC bugs, on one CPU."""
    m = sc.machine
    base = cpu * mc.NF
    cr4 = st[base + mc.F_CR4]
    shown = m.pinned_mask | CR4_FRED | CR4_PCIDE
    bits = [name for name, bit in CR4_BITS.items()
            if (1 << bit) & shown and cr4 >> bit & 1]
    g = st[m.glob + mc.G_FLAGS]
    parts = [
        "CR4=" + ("|".join(bits) if bits else "-"),
        f"FRED_CONFIG={'set' if st[base + mc.F_FRED_CONFIG] else '0'}",
        f"IDT={mc.IDT_NAMES[st[base + mc.F_IDT]]}",
    ]
    if m.sev:
        parts.append(f"GHCB={mc.GHCB_NAMES[st[base + mc.F_GHCB]]}")
        parts.append("per-cpu-GHCBs=" + ("yes" if g & mc.GHCBS_ALLOCATED
                                         else "no"))
    pinned = st[m.glob + mc.G_PINNED_BITS]
    pinned_names = [n for n, b in CR4_BITS.items() if pinned >> b & 1]
    parts.append("pinning=" + (("on:" + "|".join(pinned_names))
                               if st[m.glob + mc.G_KEY] else "off"))
    flags = st[base + mc.F_FLAGS]
    parts.append("online" if flags & mc.ONLINE else "offline")
    return " ".join(parts)


def states_after(sc: Scenario, events: list[Event]) -> list[str]:
    """describe() of the acting CPU after each event."""
    st = initial_state(sc.machine)
    out: list[str] = []
    for ev in events:
        chain: list[str] = []
        warnings: list[str] = []
        step(sc.machine, st, ev.cpu, ev.op, chain, warnings)
        out.append(describe(sc, st, ev.cpu))
    return out
