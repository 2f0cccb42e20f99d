"""Per-step model state along an ordering, for reports."""

from __future__ import annotations

from fuzzinit.model import life
from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR4_BITS, CR4_FRED, FEATURES
from fuzzinit.model.idt_table import idt_name
from fuzzinit.model.paging import REGIONS, STALE_SHIFT, TABLE_MASK, TABLES
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

# CR4 bits a report shows besides FRED: the ones bring-up bugs involve.
SHOWN_CR4 = ("pcide", "fsgsbase", "smep", "smap", "umip", "cet", "lass")


def state_of(sc: Scenario, st: list[int], cpu: int) -> dict[str, object]:
    """The state that matters for FRED / pinning / #VC bugs, on one CPU."""
    m = sc.machine
    base = cpu * mc.NF
    cr4 = st[base + mc.F_CR4]
    g = st[m.glob + mc.G_FLAGS]
    pinned = st[m.glob + mc.G_PINNED_BITS]
    out: dict[str, object] = {
        "cpu": cpu,
        "cr4_fred": 1 if cr4 & CR4_FRED else 0,
        "fred_config": st[base + mc.F_FRED_CONFIG],
        "fred_stklvls": st[base + mc.F_FRED_STKLVLS],
        "fred_rsp": [st[base + mc.F_FRED_RSP0 + i] for i in range(4)],
        "cr4": [n for n in SHOWN_CR4 if cr4 >> CR4_BITS[n] & 1],
        "cr3_pcid": st[base + mc.F_CR3],
        "idt": idt_name(st[base + mc.F_IDT]),
        "pinning": bool(st[m.glob + mc.G_KEY]),
        "pinned": [n for n, b in CR4_BITS.items() if pinned >> b & 1],
        "online": bool(st[base + mc.F_FLAGS] & mc.ONLINE),
    }
    # The kernel's feature flags, apart from CPUID: those it cleared.
    cleared = g >> mc.CAP_CLEARED_SHIFT
    if cleared:
        out["caps_cleared"] = [n for i, n in enumerate(FEATURES)
                               if cleared >> i & 1]
    if m.paging:   # the loaded table, and the global TLB entries left over
        mmu = st[base + mc.F_MMU]
        out["cr3"] = TABLES[mmu & TABLE_MASK]
        out["tlb_global"] = [r for i, r in enumerate(REGIONS)
                             if mmu >> (STALE_SHIFT + 4 * i) & 0xF]
    if m.sev:
        out["ghcb"] = mc.GHCB_NAMES[st[base + mc.F_GHCB]]
        out["percpu_ghcbs"] = bool(g & mc.GHCBS_ALLOCATED)
    # A kernel cache next to the register it caches (fe85ee391966).
    if st[base + mc.F_PERCPU] & mc.PERCPU_FRED_RSP0:
        out["fred_rsp0_cache"] = "task-stack"
    # A KVM guest's value in IA32_TSC_AUX (README rule 34).
    if st[base + mc.F_FLAGS] & mc.TSC_AUX_GUEST:
        out["tsc_aux"] = "guest"
    out.update(life.state_words(m, st, base))
    if m.images:
        gone = st[m.glob + mc.G_GONE]
        out["images_gone"] = [n for i, n in enumerate(life.IMAGES)
                              if gone >> i & 1]
    return out


def describe(state: dict[str, object]) -> str:
    """One line of a state: CR4.FRED and FRED_CONFIG first."""
    config = state["fred_config"]
    parts = [f"CR4.FRED={state['cr4_fred']}",
             "FRED_CONFIG=" + (f"{config:#x}" if config else "0")]
    cr4 = state["cr4"]
    assert isinstance(cr4, list)
    parts.append("CR4:" + ("|".join(cr4) if cr4 else "-"))
    pcid = state.get("cr3_pcid")
    if pcid:   # shown only when set: a PCIDE write then #GPs (SDM 4.10.1)
        parts.append(f"CR3.PCID={pcid:#x}")
    if "fred_rsp0_cache" in state:   # the cache beside the MSR
        rsp0 = state["fred_rsp"]
        assert isinstance(rsp0, list)
        parts.append(f"FRED_RSP0={rsp0[0]:#x}" if rsp0[0] else "FRED_RSP0=0")
        parts.append(f"fred_rsp0-cache={state['fred_rsp0_cache']}")
    if "code" in state:   # each value with the image it belongs to
        parts.append(f"code={state['code']}")
        parts.append(f"IDT={state['idt']}@{state['idt_image']}")
        if state["cr4_fred"]:
            parts.append(f"FRED-entry@{state['fred_image']}")
        gone = state["images_gone"]
        assert isinstance(gone, list)
        if gone:
            parts.append("gone:" + "|".join(gone))
    else:
        parts.append(f"IDT={state['idt']}")
    if "cr3" in state:
        stale = state["tlb_global"]
        assert isinstance(stale, list)
        parts.append(f"CR3={state['cr3']}" + (
            " TLB-global:" + "|".join(stale) if stale else ""))
    if "ghcb" in state:
        parts.append(f"GHCB={state['ghcb']}")
    if "tsc_aux" in state:
        parts.append(f"TSC_AUX={state['tsc_aux']}")
    cleared = state.get("caps_cleared")
    if isinstance(cleared, list):   # kernel flags next to the CPU's CR4
        parts.append("cleared-caps:" + "|".join(cleared))
    pinned = state["pinned"]
    assert isinstance(pinned, list)
    parts.append("pinning=" + ("on:" + "|".join(pinned)
                               if state["pinning"] else "off"))
    parts.append("online" if state["online"] else "offline")
    if "parked" in state:
        parts.append(f"parked:{state['parked']}")
    return " ".join(parts)


def positions(ordering: list[Event], core: list[Event]) -> list[int]:
    """Where each event of `core` (a subsequence) stands in `ordering`."""
    out: list[int] = []
    i = -1
    for ev in core:
        i = ordering.index(ev, i + 1)
        out.append(i)
    return out


def states_after(sc: Scenario, events: list[Event],
                 within: list[Event] | None = None) -> list[dict[str, object]]:
    """state_of() the acting CPU after each of `events`. With `within` (an
    ordering `events` is a subsequence of - the shrunk ordering of a causal
    core), the states are those of running `within`: what the machine
    really held at each core event, not what the core alone would build."""
    ordering = events if within is None else within
    wanted = set(positions(ordering, events)) if within is not None \
        else set(range(len(events)))
    st = initial_state(sc.machine)
    out: list[dict[str, object]] = []
    for i, ev in enumerate(ordering):
        chain: list[str] = []
        warnings: list[str] = []
        step(sc.machine, st, ev.cpu, ev.op, chain, warnings)
        if i in wanted:
            out.append(state_of(sc, st, ev.cpu))
        if len(out) == len(events):
            break
    return out
