"""One test per rule of shared SEMANTICS sections 1-7.

Each test builds a tiny scenario (TOML in tmp_path), runs one fixed ordering
through the reference model and asserts the exact outcome and chain lines;
pure architectural facts are checked on fuzzinit.model.arch directly. Tests
marked xfail(strict=True) record where the model departs from SEMANTICS.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fuzzinit.model import machine as mc
from fuzzinit.model.arch import (
    BENIGN,
    CONTRIBUTORY,
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_ALWAYS,
    CR4_BITS,
    CR4_CET,
    CR4_FRED,
    CR4_LA57,
    CR4_PAE,
    CR4_PCIDE,
    EFER_LMA,
    EFER_LME,
    MSRS,
    NMI,
    PAGE_FAULT_CLASS,
    VE,
    cr0_write_faults,
    cr4_write_faults,
    double_fault_pair,
    exception_class,
    fred_entry_page,
    fred_stack_level,
)
from fuzzinit.model.delivery import raise_event
from fuzzinit.model.outcome import NAMES, OK, Result
from fuzzinit.model.run import initial_state, run, step
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.scenario.ops import FRED_ENTRY, FRED_STKLVLS_LINUX
from fuzzinit.verdict import evaluate, fails

Ev = tuple[int, str]
TomlValue = bool | str | list[str]

LONG_MODE_EFER = EFER_LME | EFER_LMA
LONG_MODE_CR0 = CR0_PE | CR0_PG | CR0_WP
ALL_CR4 = sum(1 << b for b in CR4_BITS.values())
# Runtime IDT with the TSS loaded and every IST slot set: events go through.
FULL_IDT: list[Ev] = [(0, "ltr"), (0, "tss_setup_ist"), (0, "lidt full")]


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def scenario(tmp_path: Path, programs: Sequence[Sequence[str]], *,
             guest: str = "bare", features: Sequence[str] = (),
             console: str = "8250", intercepted: Sequence[str] | None = None,
             fail_on: Sequence[str] | None = None,
             extra: str = "", **kernel: TomlValue) -> Scenario:
    """Write a one-off scenario file and load it."""
    lines = ['[scenario]', 'name = "rule"']
    if fail_on is not None:
        lines.append(f"fail_on = {_toml(list(fail_on))}")
    lines += ["[platform]", f"guest = {_toml(guest)}",
              f"features = {_toml(list(features))}",
              f"console = {_toml(console)}"]
    if intercepted is not None:
        lines.append(f"intercepted_msrs = {_toml(list(intercepted))}")
    lines.append("[kernel]")
    lines += [f"{key} = {_toml(value)}" for key, value in kernel.items()]
    for program in programs:
        lines += ["[[cpu]]", f"program = {_toml(list(program))}"]
    path = tmp_path / f"rule{len(list(tmp_path.iterdir()))}.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return load(path)


@dataclass
class Trace:
    """One fixed ordering: run()'s verdict plus every chain line and the
    final state from stepping the model by hand."""
    result: Result
    lines: list[str]
    state: list[int]
    sc: Scenario

    @property
    def name(self) -> str:
        return self.result.name

    def cpu(self, cpu: int, field: int) -> int:
        return self.state[cpu * mc.NF + field]

    def glob(self, field: int) -> int:
        return self.state[self.sc.machine.glob + field]


def replay(sc: Scenario, events: Sequence[Ev]) -> Trace:
    """Run `events` ((cpu, op text) pairs) on a loaded scenario."""
    m = sc.machine
    cpus = [c for c, _ in events]
    ops = [sc.op_index[" ".join(text.split())] for _, text in events]
    result = run(m, cpus, ops)
    st = initial_state(m)
    lines: list[str] = []
    warnings: list[str] = []
    for cpu, op in zip(cpus, ops, strict=True):
        chain: list[str] = []
        outcome = step(m, st, cpu, op, chain, warnings)
        lines += chain
        if outcome != OK:
            break
    return Trace(result, lines, st, sc)


def go(tmp_path: Path, events: Sequence[Ev], **options: Any) -> Trace:
    """Build a scenario whose CPU programs are exactly `events` (in order
    per CPU) and run that ordering."""
    ncpu = max(c for c, _ in events) + 1
    programs = [[t for c, t in events if c == cpu] for cpu in range(ncpu)]
    sc = scenario(tmp_path, programs, **options)
    return replay(sc, events)


def tdx_state(tmp_path: Path, tss: int) -> tuple[Scenario, list[int]]:
    """A TDX boot CPU on the runtime IDT with the given TSS bits and a #VE
    whose info is still unread (no scenario op leaves it so: see gaps)."""
    sc = scenario(tmp_path, [["nop"]], guest="tdx", features=["fsgsbase"])
    st = initial_state(sc.machine)
    st[mc.F_IDT] = mc.IDT_FULL
    st[mc.F_TSS] = tss
    st[mc.F_FLAGS] |= mc.VE_PENDING
    return sc, st


# --- 1. Exception classes and escalation --------------------------------


def test_exception_class_benign_vectors() -> None:
    """SDM table 6-4: #DB NMI #BP #OF #BR #UD #NM #MF #AC #MC #XM benign."""
    for vector in (1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19):
        for cet in (False, True):
            assert exception_class(vector, cet) == BENIGN, vector


def test_exception_class_external_interrupts_benign() -> None:
    """SDM table 6-4: every external interrupt (vectors 32-255) is benign."""
    for vector in range(32, 256):
        assert exception_class(vector, True) == BENIGN, vector


def test_exception_class_vc_benign() -> None:
    """[derived] BX exception.cc, KVM, QEMU: #VC(29) is benign."""
    assert exception_class(29, False) == BENIGN
    assert exception_class(29, True) == BENIGN


def test_exception_class_contributory() -> None:
    """SDM table 6-4: #DE #TS #NP #SS #GP are contributory."""
    for vector in (0, 10, 11, 12, 13):
        for cet in (False, True):
            assert exception_class(vector, cet) == CONTRIBUTORY, vector


def test_exception_class_cp_contributory_only_with_cet() -> None:
    """SDM table 6-4: #CP(21) is contributory only when CET is enumerated."""
    assert exception_class(21, True) == CONTRIBUTORY
    assert exception_class(21, False) == BENIGN


def test_exception_class_page_fault_pf_and_ve() -> None:
    """SDM table 6-4: #PF(14) and #VE(20) are the page-fault class."""
    for cet in (False, True):
        assert exception_class(14, cet) == PAGE_FAULT_CLASS
        assert exception_class(20, cet) == PAGE_FAULT_CLASS


def test_df_pair_contributory_then_contributory(tmp_path: Path) -> None:
    """SDM table 6-5: contributory during contributory -> #DF."""
    assert double_fault_pair(CONTRIBUTORY, CONTRIBUTORY)
    # MOV CR4 #GP through the null IDT: the first #GP already makes #DF.
    tr = go(tmp_path, [(0, "lidt null"), (0, "mov_cr4 -pae")])
    assert tr.name == "triple_fault"
    assert "#GP while delivering #GP -> #DF (SDM table 6-5)" in tr.lines
    assert not any("serially" in line for line in tr.lines)


def test_df_pair_page_fault_then_contributory(tmp_path: Path) -> None:
    """SDM table 6-5: contributory during a page-fault-class event -> #DF."""
    assert double_fault_pair(PAGE_FAULT_CLASS, CONTRIBUTORY)
    tr = go(tmp_path, [(0, "lidt null"), (0, "pf")])
    assert tr.name == "triple_fault"
    assert "#GP while delivering #PF -> #DF (SDM table 6-5)" in tr.lines


def test_df_pair_page_fault_then_page_fault(tmp_path: Path) -> None:
    """SDM table 6-5: #PF during a page-fault-class event -> #DF."""
    assert double_fault_pair(PAGE_FAULT_CLASS, PAGE_FAULT_CLASS)
    # #PF at FRED stack level 1 with FRED_RSP1 = 0: the push #PFs.
    tr = go(tmp_path, [(0, "wrmsr FRED_CONFIG entry"),
                       (0, "wrmsr FRED_STKLVLS 0x10000000"),
                       (0, "wrmsr FRED_RSP3 stack"),
                       (0, "cr4_set fred"), (0, "pf")], features=["fred"])
    assert tr.name == "unhandled"
    assert "#PF while delivering #PF -> #DF (SDM table 6-5)" in tr.lines


def test_df_pair_every_other_pair_is_serial() -> None:
    """SDM table 6-5: every other pair is delivered serially."""
    serial = [(BENIGN, BENIGN), (BENIGN, CONTRIBUTORY),
              (BENIGN, PAGE_FAULT_CLASS), (CONTRIBUTORY, BENIGN),
              (CONTRIBUTORY, PAGE_FAULT_CLASS), (PAGE_FAULT_CLASS, BENIGN)]
    for first, second in serial:
        assert not double_fault_pair(first, second), (first, second)


def test_fault_while_delivering_df_is_shutdown(tmp_path: Path) -> None:
    """SDM "Interrupt 8"; BX/QEMU/KVM: any fault delivering #DF -> SHUTDOWN."""
    tr = go(tmp_path, [(0, "lidt null"), (0, "pf")])
    assert tr.name == "triple_fault"
    assert tr.result.chain[-2:] == [
        "#DF through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def test_fault_after_delivery_is_a_new_event(tmp_path: Path) -> None:
    """[derived] BX exception.cc: a fault once RIP is loaded is a new event."""
    tr = go(tmp_path, [*FULL_IDT, (0, "patch_alternatives"), (0, "nmi")],
            features=["fsgsbase"])
    assert tr.name == "unhandled"
    assert tr.result.chain == [
        "cpu0: nmi", "NMI arrives",
        "NMI enters paranoid_entry, whose RDGSBASE (alternatives patched) is"
        " #UD with CR4.FSGSBASE = 0",
        "#UD in kernel code with no fixup: die()"]


def test_df_handler_fault_after_delivery_is_a_new_event(
        tmp_path: Path) -> None:
    """[derived] BX exception.cc; LX 05243d490bb7: #UD in #DF's entry."""
    sc, st = tdx_state(tmp_path, tss=0b111111)
    st[sc.machine.glob + mc.G_FLAGS] |= mc.ALT_PATCHED | mc.ALT_FSGSBASE
    chain: list[str] = []
    outcome = raise_event(sc.machine, st, 0, VE, False, mc.R_PORT_IO, chain)
    assert "#DF enters paranoid_entry, whose RDGSBASE (alternatives patched)" \
        " is #UD with CR4.FSGSBASE = 0" in chain
    assert NAMES[outcome] == "unhandled"


def test_nmi_is_never_first_exception_of_pair(tmp_path: Path) -> None:
    """SDM "Interrupt 8": a fault delivering an NMI is a benign first event."""
    # NMI with its IST2 gate and no TSS: the push #PFs, handled serially.
    tr = go(tmp_path, [(0, "lidt full"), (0, "nmi")])
    assert tr.name == "unhandled"
    assert tr.result.chain == [
        "cpu0: nmi", "NMI arrives",
        "NMI gate uses IST2, but no TSS is loaded (ltr): the frame push"
        " faults -> #PF",
        "#PF while delivering NMI is handled serially (SDM table 6-5)",
        "#PF reaches the kernel's handler, which cannot recover from it:"
        " oops/panic"]


# --- 2. IDT delivery (CR4.FRED = 0) -------------------------------------


def test_idt_none_has_no_valid_gate(tmp_path: Path) -> None:
    """[derived] BX init.cc + long_mode_int: the reset IDT has no gate."""
    tr = go(tmp_path, [(0, "pf")])
    assert tr.name == "triple_fault"
    assert tr.result.chain == [
        "cpu0: pf", "#PF raised",
        "#PF through the reset IDT (no LIDT yet): no valid gate -> #GP",
        "#GP while delivering #PF -> #DF (SDM table 6-5)",
        "#DF through the reset IDT (no LIDT yet): no valid gate -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def test_idt_bringup_only_vector_29(tmp_path: Path) -> None:
    """LX head64.c startup_64_load_idt: the bringup IDT holds only #VC."""
    ok = go(tmp_path, [(0, "lidt bringup"), (0, "cpuid")], guest="sev-es")
    assert ok.name == "ok"
    assert "CPUID: CPUID raises #VC in a sev-es guest" in ok.lines
    tr = go(tmp_path, [(0, "lidt bringup"), (0, "pf")], guest="sev-es")
    assert tr.name == "triple_fault"
    assert "#PF through the bringup IDT: no gate for vector 14 -> #GP" \
        in tr.lines


def test_idt_bringup_vc_handler_follows_initial_vc_handler(
        tmp_path: Path) -> None:
    """LX head_64.S early_setup_idt: vc_boot_ghcb -> *initial_vc_handler."""
    events: list[Ev] = [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                        (0, "start 1"), (1, "setup_ghcb"),
                        (1, "lidt bringup_ghcb"), (1, "port_io")]
    assert go(tmp_path, events, guest="sev-snp").name == "ok"
    late = events[:5] + [(0, "sev_es_init_vc_handling"), (0, "setup_ghcb"),
                         (1, "port_io")]
    tr = go(tmp_path, late, guest="sev-snp")
    assert tr.name == "guest_terminated"
    assert tr.result.chain[-1] == (
        "#VC on SEV-SNP uses this CPU's per-CPU GHCB before setup_ghcb()"
        " registered it: the hypervisor terminates the guest")


def test_idt_early_handles_low_vectors(tmp_path: Path) -> None:
    """LX idt.c idt_setup_early_handler: do_early_exception for 0-31."""
    tr = go(tmp_path, [(0, "lidt early"), (0, "pf"), (0, "nmi")])
    assert tr.name == "ok"
    gp = go(tmp_path, [(0, "lidt early"), (0, "mov_cr4 -pae")])
    assert gp.name == "unhandled"
    assert gp.result.chain[-1] == "#GP in kernel code with no fixup: die()"


def test_idt_full_delivers_runtime_events(tmp_path: Path) -> None:
    """LX idt.c def_idts: the runtime IDT handles #PF and NMI (on IST2)."""
    tr = go(tmp_path, [*FULL_IDT, (0, "pf"), (0, "nmi")])
    assert tr.name == "ok"
    assert tr.lines == ["#PF raised", "NMI arrives"]


def test_idt_null_benign_event_gp_gp_df_gp_shutdown(tmp_path: Path) -> None:
    """LX idt_invalidate; SDM table 6-5: benign -> #GP, #GP -> #DF -> stop."""
    tr = go(tmp_path, [(0, "lidt null"), (0, "rdgsbase")])
    assert tr.name == "triple_fault"
    assert tr.result.chain == [
        "cpu0: rdgsbase", "RDGSBASE with CR4.FSGSBASE = 0 -> #UD",
        "#UD through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #UD is handled serially (SDM table 6-5)",
        "#GP through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #GP -> #DF (SDM table 6-5)",
        "#DF through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def test_idt_null_pf_or_ve_first_gp_makes_df(tmp_path: Path) -> None:
    """LX idt_invalidate; SDM table 6-5: #PF/#VE then #GP is already #DF."""
    tr = go(tmp_path, [(0, "lidt null"), (0, "port_io")], guest="tdx")
    assert tr.name == "triple_fault"
    assert tr.result.chain == [
        "cpu0: port_io", "IN/OUT: port I/O raises #VE in a tdx guest",
        "#VE through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #VE -> #DF (SDM table 6-5)",
        "#DF through the invalidated IDT (limit 0) -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def test_ist_vector_without_tss_faults_during_delivery(
        tmp_path: Path) -> None:
    """BX long_mode_int: IST != 0 needs the loaded TSS's IST slot."""
    tr = go(tmp_path, [(0, "ltr"), (0, "lidt full"), (0, "nmi")])
    assert tr.name == "unhandled"
    assert "NMI gate uses IST2, but IST2 is not set up (tss_setup_ist): the" \
        " frame push faults -> #PF" in tr.lines
    # #DF on IST1 without a TSS: the fault during #DF delivery is SHUTDOWN.
    sc, st = tdx_state(tmp_path, tss=0)
    chain: list[str] = []
    outcome = raise_event(sc.machine, st, 0, VE, False, mc.R_PORT_IO, chain)
    assert NAMES[outcome] == "triple_fault"
    assert chain[-2:] == [
        "#DF gate uses IST1, but no TSS is loaded (ltr): the frame push"
        " faults -> #PF",
        "#PF while delivering #DF -> SHUTDOWN (triple fault)"]


# --- 3. FRED delivery ---------------------------------------------------


def test_fred_cr4_bit_and_msr_numbers(tmp_path: Path) -> None:
    """LX msr-index.h, BX init.cc: CR4.FRED bit 32, MSRs 0x1CC-0x1D4, 0."""
    assert CR4_BITS["fred"] == 32 and CR4_FRED == 1 << 32
    numbers = {"FRED_RSP0": 0x1CC, "FRED_RSP1": 0x1CD, "FRED_RSP2": 0x1CE,
               "FRED_RSP3": 0x1CF, "FRED_STKLVLS": 0x1D0,
               "FRED_SSP1": 0x1D1, "FRED_SSP2": 0x1D2, "FRED_SSP3": 0x1D3,
               "FRED_CONFIG": 0x1D4}
    for name, number in numbers.items():
        assert MSRS[name] == number, name
    tr = go(tmp_path, [(0, "start 1"), (1, "nop")], features=["fred"])
    for cpu in (0, 1):
        for field in (mc.F_FRED_CONFIG, mc.F_FRED_STKLVLS, mc.F_FRED_RSP0,
                      mc.F_FRED_RSP0 + 1, mc.F_FRED_RSP0 + 2,
                      mc.F_FRED_RSP0 + 3):
            assert tr.cpu(cpu, field) == 0


def test_fred_entry_rip_is_config_page() -> None:
    """LX entry_64_fred.S; BX fred.cc: entry page = FRED_CONFIG & ~0xFFF."""
    assert fred_entry_page(FRED_ENTRY) == 0xFFFFFFFF81000000
    assert fred_entry_page(0xFFF) == 0
    assert fred_entry_page(0) == 0


def test_fred_stack_level_from_stklvls() -> None:
    """FRED spec; BX FRED_EventDelivery: level = STKLVLS[2v+1:2v]."""
    assert fred_stack_level(FRED_STKLVLS_LINUX, 1) == 1    # #DB
    assert fred_stack_level(FRED_STKLVLS_LINUX, NMI) == 2
    assert fred_stack_level(FRED_STKLVLS_LINUX, 8) == 3    # #DF
    assert fred_stack_level(FRED_STKLVLS_LINUX, 18) == 2   # #MC
    assert fred_stack_level(FRED_STKLVLS_LINUX, 14) == 0   # #PF
    assert fred_stack_level(FRED_STKLVLS_LINUX, 29) == 0   # #VC


def test_fred_event_with_config_zero_is_triple_fault(tmp_path: Path) -> None:
    """[derived] BX HEAD fred.cc: no entry point (CONFIG = 0) -> SHUTDOWN."""
    tr = go(tmp_path, [(0, "cr4_set fred"), (0, "nmi")], features=["fred"])
    assert tr.name == "triple_fault"
    assert tr.result.chain == [
        "cpu0: nmi", "NMI arrives",
        "NMI delivered through FRED (CR4.FRED = 1) with FRED_CONFIG = 0: no"
        " entry point",
        "entry RIP 0x100 faults, #PF -> #DF through the same FRED setup ->"
        " SHUTDOWN (triple fault)"]


def test_fred_cr4_set_needs_no_msrs_first(tmp_path: Path) -> None:
    """BX check_CR4, KVM: nothing architectural orders MSRs before CR4."""
    tr = go(tmp_path, [(0, "cr4_set fred")], features=["fred"])
    assert tr.name == "ok"
    assert tr.cpu(0, mc.F_CR4) & CR4_FRED
    assert tr.cpu(0, mc.F_FRED_CONFIG) == 0


def test_fred_stack_level_rsp_zero_faults_during_delivery(
        tmp_path: Path) -> None:
    """[derived] BX FRED_EventDelivery: the push on FRED_RSPn = 0 faults.

    SEMANTICS section 3 shortcuts this to #DF -> SHUTDOWN; the model applies
    SDM table 6-5 instead: for a benign first event (NMI) the #PF is taken
    serially at #PF's own stack level (0, the current stack), reaches
    exc_page_fault on a kernel address and oopses. The shortcut's shutdown
    still follows when #PF's or #DF's level is broken too (next test)."""
    tr = go(tmp_path, [(0, "wrmsr FRED_CONFIG entry"),
                       (0, "wrmsr FRED_STKLVLS linux"),
                       (0, "cr4_set fred"), (0, "nmi")], features=["fred"])
    assert "NMI selects FRED stack level 2 but FRED_RSP2 = 0: the frame push" \
        " faults" in tr.lines
    assert "#PF while delivering NMI is handled serially (SDM table 6-5)" \
        in tr.lines
    assert tr.name == "unhandled"


def test_fred_df_stack_level_rsp_zero_is_shutdown(tmp_path: Path) -> None:
    """[derived] BX FRED_EventDelivery: #DF on a FRED_RSPn = 0 level."""
    tr = go(tmp_path, [(0, "wrmsr FRED_CONFIG entry"),
                       (0, "wrmsr FRED_STKLVLS 0x10030000"),
                       (0, "cr4_set fred"), (0, "pf")], features=["fred"])
    assert tr.name == "triple_fault"
    assert tr.result.chain == [
        "cpu0: pf", "#PF raised",
        "#PF selects FRED stack level 1 but FRED_RSP1 = 0: the frame push"
        " faults",
        "#PF while delivering #PF -> #DF (SDM table 6-5)",
        "#DF selects FRED stack level 3 but FRED_RSP3 = 0: the frame push"
        " faults",
        "#PF while delivering #DF -> SHUTDOWN (triple fault)"]


def test_cr4_fred_needs_fred_enumerated(tmp_path: Path) -> None:
    """BX check_CR4; KVM __cr4_reserved_bits: CR4.FRED without FRED -> #GP."""
    tr = go(tmp_path, [*FULL_IDT, (0, "cr4_set fred")])
    assert tr.name == "unhandled"
    assert tr.result.chain == [
        "cpu0: cr4_set fred",
        "MOV to CR4 sets a reserved or unenumerated CR4 bit -> #GP(0)",
        "#GP in kernel code with no fixup: die()"]
    assert tr.cpu(0, mc.F_CR4) & CR4_FRED == 0


def test_cr4_fred_needs_efer_lma() -> None:
    """BX crregs.cc check_CR4: CR4.FRED with EFER.LMA = 0 -> #GP."""
    assert cr4_write_faults(0, CR4_FRED, ALL_CR4, CR0_PE, 0, 0) == \
        "sets CR4.FRED with EFER.LMA = 0"
    assert cr4_write_faults(CR4_PAE, CR4_PAE | CR4_FRED, ALL_CR4,
                            LONG_MODE_CR0, 0, LONG_MODE_EFER) == ""


def test_iret_unblocks_nmi(tmp_path: Path) -> None:
    """SDM 6.7.1: IRET unblocks NMI, so a second NMI is delivered."""
    tr = go(tmp_path, [*FULL_IDT, (0, "nmi"), (0, "lidt null"), (0, "nmi")])
    assert tr.name == "triple_fault"
    assert tr.result.at == 5
    assert tr.result.chain[:3] == [
        "cpu0: nmi", "NMI arrives",
        "NMI through the invalidated IDT (limit 0) -> #GP"]


# --- 4. Control-register writes -----------------------------------------


def test_cr4_bit_positions() -> None:
    """SDM Vol. 3A 2.5; LX processor-flags.h: the CR4 bit numbers."""
    assert CR4_BITS == {
        "vme": 0, "pvi": 1, "tsd": 2, "de": 3, "pse": 4, "pae": 5, "mce": 6,
        "pge": 7, "pce": 8, "osfxsr": 9, "osxmmexcpt": 10, "umip": 11,
        "la57": 12, "vmxe": 13, "smxe": 14, "fsgsbase": 16, "pcide": 17,
        "osxsave": 18, "smep": 20, "smap": 21, "pke": 22, "cet": 23,
        "pks": 24, "lass": 27, "fred": 32}


def test_cr4_reserved_bit_is_gp() -> None:
    """BX get_cr4_allow_mask; KVM __cr4_reserved_bits: reserved -> #GP."""
    old = CR4_PAE
    for bit in (15, 19, 25, 26, 28, 29, 30, 31, 33, 40, 63):
        assert cr4_write_faults(old, old | 1 << bit, ALL_CR4, LONG_MODE_CR0,
                                0, LONG_MODE_EFER) == \
            "sets a reserved or unenumerated CR4 bit", bit


def test_cr4_unenumerated_feature_bit_is_gp(tmp_path: Path) -> None:
    """BX get_cr4_allow_mask; KVM __cr4_reserved_bits: no CPUID -> #GP."""
    pairs = {"smep": "smep", "smap": "smap", "umip": "umip",
             "fsgsbase": "fsgsbase", "pcid": "pcide", "la57": "la57",
             "vmx": "vmxe", "smx": "smxe", "xsave": "osxsave", "pku": "pke",
             "pks": "pks", "cet": "cet", "lass": "lass", "fred": "fred"}
    bare = scenario(tmp_path, [["nop"]]).machine.cr4_allowed
    assert bare == CR4_ALWAYS
    for feature, bit in pairs.items():
        allowed = scenario(tmp_path, [["nop"]],
                           features=[feature]).machine.cr4_allowed
        assert allowed == CR4_ALWAYS | 1 << CR4_BITS[bit], feature
        assert bare & 1 << CR4_BITS[bit] == 0, feature


def test_cr4_clear_pae_in_long_mode_is_gp() -> None:
    """SDM Vol. 2 MOV CR; KVM kvm_set_cr4: clearing PAE in long mode."""
    assert cr4_write_faults(CR4_PAE, 0, ALL_CR4, LONG_MODE_CR0, 0,
                            LONG_MODE_EFER) == "clears CR4.PAE in long mode"
    assert cr4_write_faults(CR4_PAE, 0, ALL_CR4, CR0_PE, 0, 0) == ""


def test_cr4_change_la57_in_long_mode_is_gp() -> None:
    """SDM Vol. 2 MOV CR; KVM kvm_set_cr4: changing LA57 in long mode."""
    for old, new in ((CR4_PAE, CR4_PAE | CR4_LA57),
                     (CR4_PAE | CR4_LA57, CR4_PAE)):
        assert cr4_write_faults(old, new, ALL_CR4, LONG_MODE_CR0, 0,
                                LONG_MODE_EFER) == \
            "changes CR4.LA57 in long mode"


def test_cr4_pcide_with_cr3_low_bits_is_gp(tmp_path: Path) -> None:
    """SDM Vol. 2 MOV CR; KVM kvm_set_cr4: PCIDE 0->1 with CR3[11:0] != 0."""
    assert cr4_write_faults(CR4_PAE, CR4_PAE | CR4_PCIDE, ALL_CR4,
                            LONG_MODE_CR0, 0x5, LONG_MODE_EFER) == \
        "sets CR4.PCIDE with CR3[11:0] != 0"
    assert cr4_write_faults(CR4_PAE, CR4_PAE | CR4_PCIDE, ALL_CR4,
                            LONG_MODE_CR0, 0, LONG_MODE_EFER) == ""
    tr = go(tmp_path, [*FULL_IDT, (0, "mov_cr3 0x5"),
                       (0, "mov_cr4 +pcide")], features=["pcid"])
    assert tr.name == "unhandled"
    assert "MOV to CR4 sets CR4.PCIDE with CR3[11:0] != 0 -> #GP(0)" \
        in tr.lines


def test_cr4_cet_with_cr0_wp_clear_is_gp() -> None:
    """SDM Vol. 2 MOV CR; KVM kvm_set_cr4: CR4.CET = 1 needs CR0.WP = 1."""
    assert cr4_write_faults(CR4_PAE, CR4_PAE | CR4_CET, ALL_CR4,
                            CR0_PE | CR0_PG, 0, LONG_MODE_EFER) == \
        "sets CR4.CET with CR0.WP = 0"
    assert cr4_write_faults(CR4_PAE, CR4_PAE | CR4_CET, ALL_CR4,
                            LONG_MODE_CR0, 0, LONG_MODE_EFER) == ""


def test_cr0_clear_wp_with_cet_is_gp(tmp_path: Path) -> None:
    """SDM Vol. 2 MOV CR; KVM kvm_set_cr0: clearing WP with CR4.CET = 1."""
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_PG,
                            CR4_PAE | CR4_CET, LONG_MODE_EFER, False) == \
        "clears CR0.WP with CR4.CET = 1"
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_PG, CR4_PAE,
                            LONG_MODE_EFER, False) == ""
    tr = go(tmp_path, [*FULL_IDT, (0, "cr4_set cet"), (0, "cr0_clear wp")],
            features=["cet"])
    assert tr.name == "unhandled"
    assert "MOV to CR0 clears CR0.WP with CR4.CET = 1 -> #GP(0)" in tr.lines


def test_cr0_clear_pg_in_long_mode_is_gp() -> None:
    """SDM Vol. 2 MOV CR, Vol. 3A 10.8.5.4; BX SetCR0: PG can be cleared
    in IA-32e mode only from compatibility mode and with PCIDE = 0."""
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_WP, CR4_PAE,
                            LONG_MODE_EFER, False) == \
        "clears CR0.PG in 64-bit mode"
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_WP,
                            CR4_PAE | CR4_PCIDE, LONG_MODE_EFER, True) == \
        "clears CR0.PG with CR4.PCIDE = 1"
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_WP, CR4_PAE,
                            LONG_MODE_EFER, True) == ""
    assert cr0_write_faults(LONG_MODE_CR0, CR0_PE | CR0_WP, CR4_PAE, 0,
                            False) == ""
    # Back in: PAE and a CS with L = 0 (SDM Vol. 3A 10.8.5; BX SetCR0).
    assert cr0_write_faults(CR0_PE, LONG_MODE_CR0, 0, EFER_LME, True) == \
        "enables paging with EFER.LME = 1 and CR4.PAE = 0"
    assert cr0_write_faults(CR0_PE, LONG_MODE_CR0, CR4_PAE, EFER_LME,
                            False) == \
        "enables paging with EFER.LME = 1 from a CS with L = 1"
    assert cr0_write_faults(CR0_PE, LONG_MODE_CR0, CR4_PAE, EFER_LME,
                            True) == ""


def test_cr4_security_bits_need_only_cpuid() -> None:
    """LX cpuid-deps.c: SMEP SMAP UMIP FSGSBASE LASS need only CPUID."""
    for name in ("smep", "smap", "umip", "fsgsbase", "lass"):
        bit = 1 << CR4_BITS[name]
        assert cr4_write_faults(CR4_PAE, CR4_PAE | bit, CR4_ALWAYS | bit,
                                LONG_MODE_CR0, 0xFFF, LONG_MODE_EFER) == "", \
            name


def test_rdgsbase_without_fsgsbase_is_ud(tmp_path: Path) -> None:
    """SDM Vol. 2 RDFSBASE/RDGSBASE: CR4.FSGSBASE = 0 -> #UD."""
    tr = go(tmp_path, [*FULL_IDT, (0, "rdgsbase")])
    assert tr.name == "unhandled"
    assert tr.result.chain == [
        "cpu0: rdgsbase", "RDGSBASE with CR4.FSGSBASE = 0 -> #UD",
        "#UD in kernel code with no fixup: die()"]
    ok = go(tmp_path, [*FULL_IDT, (0, "cr4_set fsgsbase"), (0, "rdgsbase")],
            features=["fsgsbase"])
    assert ok.name == "ok"


def test_paranoid_entry_rdgsbase_ud_after_patch_alternatives(
        tmp_path: Path) -> None:
    """LX commit 05243d490bb7: patched paranoid_entry RDGSBASE #UDs."""
    before = go(tmp_path, [*FULL_IDT, (0, "nmi"), (0, "patch_alternatives")],
                features=["fsgsbase"])
    assert before.name == "ok"
    tr = go(tmp_path, [*FULL_IDT, (0, "patch_alternatives"), (0, "nmi")],
            features=["fsgsbase"])
    assert tr.name == "unhandled"
    assert "NMI enters paranoid_entry, whose RDGSBASE (alternatives" \
        " patched) is #UD with CR4.FSGSBASE = 0" in tr.lines
    fixed = go(tmp_path, [*FULL_IDT, (0, "cr4_set fsgsbase"),
                          (0, "patch_alternatives"), (0, "nmi")],
               features=["fsgsbase"])
    assert fixed.name == "ok"


@pytest.mark.parametrize("guest, trigger, vector",
                         [("bare", "nmi", "NMI"), ("sev-es", "cpuid", "#VC")])
def test_paranoid_entry_rdgsbase_only_where_fsgsbase_is_enumerated(
        tmp_path: Path, guest: str, trigger: str, vector: str) -> None:
    """LX entry_64.S paranoid_entry: ALTERNATIVE "jmp
    .Lparanoid_entry_checkgs", "", X86_FEATURE_FSGSBASE."""
    events: list[Ev] = [(0, "setup_ghcb"), *FULL_IDT,
                        (0, "patch_alternatives"), (0, trigger)]
    absent = go(tmp_path, events, guest=guest)
    assert absent.name == "ok"
    assert not [x for x in absent.lines if "paranoid_entry" in x]
    present = go(tmp_path, events, guest=guest, features=["fsgsbase"])
    assert present.name == "unhandled"
    assert present.result.chain[-2:] == [
        f"{vector} enters paranoid_entry, whose RDGSBASE (alternatives"
        " patched) is #UD with CR4.FSGSBASE = 0",
        "#UD in kernel code with no fixup: die()"]


# --- 5. Linux CR pinning ------------------------------------------------

SMEP = 1 << CR4_BITS["smep"]
SMAP = 1 << CR4_BITS["smap"]


def test_cr4_pinned_mask_default(tmp_path: Path) -> None:
    """LX common.c cr4_pinned_mask (after 411df123c017: FRED not pinned)."""
    mask = sum(1 << CR4_BITS[n]
               for n in ("smep", "smap", "umip", "fsgsbase", "cet"))
    assert scenario(tmp_path, [["nop"]]).machine.pinned_mask == mask
    v69 = scenario(tmp_path, [["nop"]], pinned_cr4=[
        "smep", "smap", "umip", "fsgsbase", "cet", "fred"])
    assert v69.machine.pinned_mask == mask | CR4_FRED


def test_setup_cr_pinning_records_bits_and_enables_key(
        tmp_path: Path) -> None:
    """LX common.c setup_cr_pinning: pinned = CR4 & mask, key on."""
    off = go(tmp_path, [(0, "cr4_set smep")], features=["smep", "smap"])
    assert off.glob(mc.G_KEY) == 0
    tr = go(tmp_path, [(0, "cr4_set smep"), (0, "setup_cr_pinning")],
            features=["smep", "smap"])
    assert tr.glob(mc.G_KEY) == 1
    assert tr.glob(mc.G_PINNED_BITS) == SMEP


def test_native_write_cr4_forces_pinned_bits_back_and_warns(
        tmp_path: Path) -> None:
    """LX common.c native_write_cr4: pinned bits forced back, WARN_ONCE."""
    tr = go(tmp_path, [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                       (0, "cr4_clear smep")], features=["smep"])
    assert tr.name == "warn"
    assert tr.result.warnings == ["pinned CR4 bits changed: 0x100000!?"]
    assert tr.result.chain == ["WARN: pinned CR4 bits changed: 0x100000!?"]
    assert tr.result.at == 2
    assert tr.cpu(0, mc.F_CR4) & SMEP


def test_native_write_cr4_forces_pinned_clear_bit_back_clear(
        tmp_path: Path) -> None:
    """LX common.c native_write_cr4: a pinned-clear bit is forced clear."""
    tr = go(tmp_path, [(0, "setup_cr_pinning"), (0, "cr4_set smap")],
            features=["smap"])
    assert tr.name == "warn"
    assert tr.result.warnings == ["pinned CR4 bits changed: 0x200000!?"]
    assert tr.cpu(0, mc.F_CR4) & SMAP == 0


def test_native_write_cr4_warns_once(tmp_path: Path) -> None:
    """LX common.c native_write_cr4: WARN_ONCE prints one warning."""
    tr = go(tmp_path, [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                       (0, "cr4_clear smep"), (0, "cr4_clear smep")],
            features=["smep"])
    assert tr.result.warnings == ["pinned CR4 bits changed: 0x100000!?"]


def test_cr4_helpers_skip_unchanged_writes(tmp_path: Path) -> None:
    """LX arch/x86/mm/tlb.c cr4_update_irqsoff: no change, no write - so no
    pinning fix-up and no WARN for a bit that is already as asked."""
    events: list[Ev] = [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                        (0, "mov_cr4 -smep"), (0, "cr4_clear vme")]
    tr = go(tmp_path, events, features=["smep"])
    assert tr.name == "ok"
    assert tr.result.warnings == []
    assert not tr.cpu(0, mc.F_CR4) & (1 << CR4_BITS["smep"])
    # A write that does change CR4 gets the fix-up and the WARN.
    tr = go(tmp_path, events[:3] + [(0, "cr4_set vme")], features=["smep"])
    assert tr.name == "warn"
    assert tr.result.warnings == ["pinned CR4 bits changed: 0x100000!?"]


def test_native_write_cr4_warn_prints_to_console(tmp_path: Path) -> None:
    """LX common.c WARN_ONCE -> printk: on SEV-ES the console #VCs."""
    tr = go(tmp_path, [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                       (0, "cr4_clear smep")], guest="sev-es",
            features=["smep"])
    assert tr.name == "triple_fault"
    assert tr.result.chain[:2] == [
        "cpu0: cr4_clear smep",
        "WARN_ONCE(pinned CR4 bits changed): port I/O raises #VC in a sev-es"
        " guest"]


def test_native_write_cr0_forces_wp_and_warns(tmp_path: Path) -> None:
    """LX common.c native_write_cr0: CR0.WP forced on, WARN_ONCE."""
    tr = go(tmp_path, [(0, "setup_cr_pinning"), (0, "cr0_clear wp")])
    assert tr.name == "warn"
    assert tr.result.warnings == ["CR0 WP bit went missing!?"]
    assert tr.cpu(0, mc.F_CR0) & CR0_WP
    unpinned = go(tmp_path, [(0, "cr0_clear wp")])
    assert unpinned.name == "ok"
    assert unpinned.cpu(0, mc.F_CR0) & CR0_WP == 0


def test_cr4_init_applies_pinned_bits(tmp_path: Path) -> None:
    """LX common.c cr4_init: PCIDE if PCID, then the pinned bits."""
    tr = go(tmp_path, [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                       (0, "start 1"), (1, "cr4_init")],
            features=["smep", "pcid"])
    assert tr.name == "ok"
    assert tr.cpu(1, mc.F_CR4) & (SMEP | CR4_PCIDE) == SMEP | CR4_PCIDE
    unpinned = go(tmp_path, [(0, "cr4_set smep"), (0, "start 1"),
                             (1, "cr4_init")], features=["smep"])
    assert unpinned.cpu(1, mc.F_CR4) & (SMEP | CR4_PCIDE) == 0


def test_cr4_init_pins_fred_onto_ap_before_its_msrs(tmp_path: Path) -> None:
    """LX common.c cr4_init (v6.9 mask with FRED, before 411df123c017)."""
    tr = go(tmp_path, [(0, "wrmsr FRED_CONFIG entry"), (0, "cr4_set fred"),
                       (0, "setup_cr_pinning"), (0, "start 1"),
                       (1, "cr4_init"), (1, "nmi")], features=["fred"],
            pinned_cr4=["smep", "smap", "umip", "fsgsbase", "cet", "fred"])
    assert tr.name == "triple_fault"
    assert tr.result.chain[0] == "cpu1: nmi"
    assert "NMI delivered through FRED (CR4.FRED = 1) with FRED_CONFIG = 0:" \
        " no entry point" in tr.result.chain


CR4_INIT_WARN = ("cr4_init() with CR pinning in force:"
                 " WARN_ON_ONCE(cr_pinning_enabled())")


def test_online_gated_cr4_init_warns_where_pinning_is_in_force(
        tmp_path: Path) -> None:
    """tip cccc0c8ff0a9 cr4_init: WARN_ON_ONCE(cr_pinning_enabled())."""
    events: list[Ev] = [(0, "setup_cr_pinning"), (0, "cr4_init")]
    tr = go(tmp_path, events, pinning="online")
    assert tr.name == "warn"
    assert tr.result.chain == [f"WARN: {CR4_INIT_WARN}"]
    assert tr.result.at == 1
    assert tr.glob(mc.G_FLAGS) & mc.WARNED_CR4_INIT
    twice = go(tmp_path, [*events, (0, "cr4_init")], pinning="online")
    assert twice.result.warnings == [CR4_INIT_WARN]
    assert go(tmp_path, events).name == "ok"
    offline = go(tmp_path, [(0, "setup_cr_pinning"), (0, "start 1"),
                            (1, "cr4_init")], pinning="online")
    assert offline.name == "ok"
    assert go(tmp_path, [(0, "cr4_init")], pinning="online").name == "ok"


def test_online_gated_cr4_init_warn_is_console_output_before_the_write(
        tmp_path: Path) -> None:
    """tip cccc0c8ff0a9 cr4_init: the WARN prints before __write_cr4()."""
    tr = go(tmp_path, [(0, "lidt bringup"), (0, "setup_cr_pinning"),
                       (0, "cr4_init")], guest="sev-es", features=["pcid"],
            pinning="online")
    assert tr.name == "guest_terminated"
    assert tr.result.chain == [
        "cpu0: cr4_init",
        "WARN_ON_ONCE(cr_pinning_enabled()): port I/O raises #VC in a sev-es"
        " guest",
        "#VC (port I/O) reaches vc_no_ghcb, which serves CPUID only:"
        " sev_es_terminate()"]
    assert tr.result.warnings == [CR4_INIT_WARN]
    assert tr.cpu(0, mc.F_CR4) & CR4_PCIDE == 0


def test_online_gated_pinning_is_bypassed_offline(tmp_path: Path) -> None:
    """Rejected tip cccc0c8ff0a9: a CPU not online escapes pinning."""
    events: list[Ev] = [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                        (0, "start 1"), (1, "cr4_init"),
                        (1, "cr4_clear smep"), (1, "online")]
    gated = go(tmp_path, events, features=["smep"], pinning="online")
    assert gated.name == "ok"
    assert gated.cpu(1, mc.F_CR4) & SMEP == 0
    keyed = go(tmp_path, events, features=["smep"])
    assert keyed.name == "warn"
    assert keyed.cpu(1, mc.F_CR4) & SMEP


# --- 6. Platforms: #VC and #VE ------------------------------------------


@pytest.mark.parametrize("guest", ["sev-es", "sev-snp"])
def test_vc_sources_on_sev_es_and_snp(tmp_path: Path, guest: str) -> None:
    """LX vc_handle_exitcode: port I/O, MMIO, CPUID, MSRs, console #VC."""
    tr = go(tmp_path, [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                       (0, "port_io"), (0, "mmio"),
                       (0, "cpuid"), (0, "rdmsr APIC_BASE"),
                       (0, "wrmsr APIC_BASE 0"), (0, "printk")], guest=guest)
    assert tr.name == "ok"
    assert tr.lines == [
        f"IN/OUT: port I/O raises #VC in a {guest} guest",
        f"MMIO access: MMIO raises #VC in a {guest} guest",
        f"CPUID: CPUID raises #VC in a {guest} guest",
        f"RDMSR: MSR access raises #VC in a {guest} guest",
        f"WRMSR: MSR access raises #VC in a {guest} guest",
        f"console output: port I/O raises #VC in a {guest} guest"]


def test_vc_no_ghcb_serves_cpuid_only(tmp_path: Path) -> None:
    """LX sev-shared.c do_vc_no_ghcb: CPUID only, else sev_es_terminate."""
    assert MSRS["SEV_ES_GHCB"] == 0xC0010130
    ok = go(tmp_path, [(0, "lidt bringup"), (0, "cpuid")], guest="sev-es")
    assert ok.name == "ok"
    for op in ("port_io", "mmio", "rdmsr APIC_BASE"):
        tr = go(tmp_path, [(0, "lidt bringup"), (0, op)], guest="sev-es")
        assert tr.name == "guest_terminated", op
        assert tr.result.chain[-1].startswith("#VC (")
        assert tr.result.chain[-1].endswith(
            ") reaches vc_no_ghcb, which serves CPUID only:"
            " sev_es_terminate()")


def test_ignored_terminate_request_is_a_hang(tmp_path: Path) -> None:
    """LX sev-shared.c sev_es_terminate: if the VMM returns, HLT forever."""
    events: list[Ev] = [(0, "lidt bringup"), (0, "port_io")]
    sc = scenario(tmp_path, [[t for _, t in events]], guest="sev-es",
                  extra="")
    assert replay(sc, events).name == "guest_terminated"
    path = Path(sc.path)
    path.write_text(path.read_text().replace(
        'console = "8250"', 'console = "8250"\nterminate = "hangs"'))
    tr = replay(load(path), events)
    assert tr.name == "hang"
    assert tr.result.chain[-1] == ("the hypervisor ignores the termination"
                                   " request: sev_es_terminate() HLTs forever")


def test_snp_unregistered_ghcb_terminates_even_if_terminate_hangs(
        tmp_path: Path) -> None:
    """The SNP hypervisor ends the guest itself (LX coco/sev/core.c)."""
    events: list[Ev] = [(0, "sev_es_init_vc_handling"), *FULL_IDT,
                        (0, "port_io")]
    sc = scenario(tmp_path, [[t for _, t in events]], guest="sev-snp",
                  boot_ghcb_fallback=False)
    path = Path(sc.path)
    path.write_text(path.read_text().replace(
        'console = "8250"', 'console = "8250"\nterminate = "hangs"'))
    assert replay(load(path), events).name == "guest_terminated"


def test_boot_ghcb_handles_all_before_trap_init(tmp_path: Path) -> None:
    """LX coco/sev handle_vc_boot_ghcb: every #VC once setup_ghcb() ran."""
    tr = go(tmp_path, [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"), (0, "lidt early"),
                       (0, "port_io"), (0, "mmio"), (0, "cpuid")],
            guest="sev-es")
    assert tr.name == "ok"


NULL_BOOT_GHCB = ("#VC reaches handle_vc_boot_ghcb() before setup_ghcb():"
                  " it writes through the NULL boot_ghcb -> #PF")


def test_boot_ghcb_handler_before_setup_ghcb_dereferences_null(
        tmp_path: Path) -> None:
    """LX coco/sev/vc-handle.c handle_vc_boot_ghcb: vc_ghcb_invalidate(
    boot_ghcb) with no lazy set-up since the SNP series (v5.19)."""
    early = go(tmp_path, [(0, "lidt early"), (0, "cpuid")], guest="sev-es")
    assert early.name == "unhandled"
    assert early.result.chain == [
        "cpu0: cpuid", "CPUID: CPUID raises #VC in a sev-es guest",
        NULL_BOOT_GHCB,
        "#PF in the early handler: early_make_pgtable() cannot map it,"
        " early_fixup_exception() halts"]
    events: list[Ev] = [(0, "lidt bringup_ghcb"), (0, "port_io")]
    bringup = go(tmp_path, events, guest="sev-snp")
    assert bringup.name == "triple_fault"
    assert bringup.result.chain == [
        "cpu0: port_io", "IN/OUT: port I/O raises #VC in a sev-snp guest",
        NULL_BOOT_GHCB,
        "#PF through the bringup IDT: no gate for vector 14 -> #GP",
        "#GP while delivering #PF -> #DF (SDM table 6-5)",
        "#DF through the bringup IDT: no gate for vector 8 -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]
    # No termination request is made: a hypervisor that ignores one
    # changes nothing.
    path = Path(bringup.sc.path)
    path.write_text(path.read_text().replace(
        'console = "8250"', 'console = "8250"\nterminate = "hangs"'))
    assert replay(load(path), events).name == "triple_fault"


def test_snp_unregistered_per_cpu_ghcb_is_guest_terminated(
        tmp_path: Path) -> None:
    """LX coco/sev/core.c setup_ghcb, snp_register_per_cpu_ghcb."""
    base: list[Ev] = [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                      (0, "sev_es_init_vc_handling"), (0, "setup_ghcb"),
                      (0, "start 1"), (1, "ltr"), (1, "tss_setup_ist"),
                      (1, "lidt full")]
    tr = go(tmp_path, [*base, (1, "port_io")], guest="sev-snp")
    assert tr.name == "guest_terminated"
    assert tr.result.chain == [
        "cpu1: port_io", "IN/OUT: port I/O raises #VC in a sev-snp guest",
        "#VC on SEV-SNP uses this CPU's per-CPU GHCB before setup_ghcb()"
        " registered it: the hypervisor terminates the guest"]
    assert go(tmp_path, [*base, (1, "port_io")], guest="sev-es").name == "ok"
    registered = go(tmp_path, [*base, (1, "setup_ghcb"), (1, "port_io")],
                    guest="sev-snp")
    assert registered.name == "ok"


def test_boot_ghcb_fallback_until_ghcbs_initialized(tmp_path: Path) -> None:
    """LX 3645eb7e3915: __sev_get_ghcb uses boot_ghcb until a setup_ghcb()
    after sev_es_init_vc_handling() sets sev_cfg.ghcbs_initialized."""
    window: list[Ev] = [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                        (0, "sev_es_init_vc_handling"), *FULL_IDT,
                        (0, "port_io")]
    assert go(tmp_path, window, guest="sev-snp").name == "ok"
    old = go(tmp_path, window, guest="sev-snp", boot_ghcb_fallback=False)
    assert old.name == "guest_terminated"


def test_fred_vc_before_3645eb7e3915_is_unhandled(tmp_path: Path) -> None:
    """LX entry_fred.c fred_hwexc: no #VC case before 3645eb7e3915."""
    events: list[Ev] = [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                        (0, "wrmsr FRED_CONFIG entry"),
                        (0, "cr4_set fred"), (0, "cpuid")]
    tr = go(tmp_path, events, guest="sev-es", features=["fred"],
            fred_vc_dispatch=False)
    assert tr.name == "unhandled"
    assert tr.result.chain[-1] == (
        "FRED dispatcher fred_hwexc() has no #VC case (before 3645eb7e3915):"
        " fred_bad_type() oopses")
    fixed = go(tmp_path, events, guest="sev-es", features=["fred"])
    assert fixed.name == "ok"


def test_boot_ghcb_fallback(tmp_path: Path) -> None:
    """LX 3645eb7e3915 __sev_get_ghcb: boot_ghcb until GHCBs exist."""
    events: list[Ev] = [(0, "setup_ghcb"), (0, "lidt bringup_ghcb"),
                        *FULL_IDT, (0, "port_io")]
    assert go(tmp_path, events, guest="sev-es").name == "ok"
    old = go(tmp_path, events, guest="sev-es", boot_ghcb_fallback=False)
    assert old.name == "unhandled"
    assert old.result.chain[-1] == (
        "kernel #VC handler runs before sev_es_init_vc_handling() allocated"
        " the per-CPU GHCBs: __sev_get_ghcb() dereferences unallocated"
        " runtime_data (before 3645eb7e3915)")
    none = go(tmp_path, [*FULL_IDT, (0, "port_io")], guest="sev-es")
    assert none.name == "guest_terminated"
    assert none.result.chain[-1] == (
        "#VC falls back to the boot GHCB, which is not set up:"
        " sev_es_terminate()")


def test_tdx_ve_sources(tmp_path: Path) -> None:
    """LX Documentation/arch/x86/tdx.rst: port I/O, MMIO, MSRs raise #VE."""
    tr = go(tmp_path, [*FULL_IDT, (0, "port_io"), (0, "mmio"),
                       (0, "rdmsr APIC_BASE"), (0, "printk"), (0, "cpuid")],
            guest="tdx", intercepted=["APIC_BASE"])
    assert tr.name == "ok"
    assert tr.lines == [
        "IN/OUT: port I/O raises #VE in a tdx guest",
        "MMIO access: MMIO raises #VE in a tdx guest",
        "RDMSR: MSR access raises #VE in a tdx guest",
        "console output: port I/O raises #VE in a tdx guest"]


def test_ve_while_previous_ve_info_pending_is_df(tmp_path: Path) -> None:
    """TDXM tdx_inject_ve: a #VE before VEINFO.GET is injected as #DF."""
    sc, st = tdx_state(tmp_path, tss=0b111111)
    chain: list[str] = []
    outcome = raise_event(sc.machine, st, 0, VE, False, mc.R_PORT_IO, chain)
    assert NAMES[outcome] == "unhandled"
    assert chain == [
        "#VE while the previous #VE's info is unread: the TDX module injects"
        " #DF",
        "#DF reaches the kernel's handler, which cannot recover from it:"
        " oops/panic"]
    st[mc.F_FLAGS] &= ~mc.VE_PENDING
    chain = []
    assert raise_event(sc.machine, st, 0, VE, False, mc.R_PORT_IO,
                       chain) == OK
    assert st[mc.F_FLAGS] & mc.VE_PENDING == 0


def test_tdx_early_handle_ve_port_io_only(tmp_path: Path) -> None:
    """LX coco/tdx/tdx.c tdx_early_handle_ve: port I/O only."""
    ok = go(tmp_path, [(0, "lidt early"), (0, "port_io"), (0, "printk")],
            guest="tdx")
    assert ok.name == "ok"
    tr = go(tmp_path, [(0, "lidt early"), (0, "mmio")], guest="tdx")
    assert tr.name == "unhandled"
    assert tr.result.chain[-1] == (
        "#VE (MMIO) in the early handler: tdx_early_handle_ve() handles port"
        " I/O only")


def test_bare_metal_console_raises_nothing(tmp_path: Path) -> None:
    """SEMANTICS 6: on bare metal console output and CPUID raise nothing."""
    # The reset IDT would triple-fault on any event.
    tr = go(tmp_path, [(0, "printk"), (0, "port_io"), (0, "cpuid"),
                       (0, "mmio"), (0, "rdmsr APIC_BASE")])
    assert tr.name == "ok"
    assert tr.lines == []


def test_console_is_usable_con_anytime(tmp_path: Path) -> None:
    """LX printk console_is_usable: offline CPUs need CON_ANYTIME."""
    events: list[Ev] = [(0, "start 1"), (1, "printk"), (1, "online")]
    anytime = go(tmp_path, events, guest="sev-es")  # 8250: CON_ANYTIME
    assert anytime.name == "triple_fault"
    assert anytime.result.chain[:2] == [
        "cpu1: printk", "console output: port I/O raises #VC in a sev-es"
        " guest"]
    early = go(tmp_path, events, guest="sev-es", console="early_serial")
    assert early.name == "ok"
    assert early.lines == []
    online = go(tmp_path, [(0, "start 1"), (1, "online"), (1, "printk")],
                guest="sev-es", console="early_serial")
    assert online.name == "triple_fault"


def test_nmi_trigger_default_window_is_after_online(tmp_path: Path) -> None:
    """SDM Vol. 3A LVT masked after INIT; LX apic_use_ipi_shorthand."""
    sc = scenario(tmp_path, [["start 1", "start 2"],
                             ["cr4_init", "online", "printk"], ["cr4_init"]],
                  extra="[orderings]\ntriggers = { nmi = 1 }\n")
    windows = {(t.cpu, t.after, t.before) for t in sc.triggers
               if t.kind == "nmi"}
    # Boot CPU: online from boot, so from the start to the end; cpu1: once
    # its `online` (slot 1) is done; cpu2 has no `online`: no NMI.
    assert windows == {(0, (), ()), (1, (1,), ())}


# --- 7. Outcomes ----------------------------------------------------------


def test_outcome_names() -> None:
    """SEMANTICS 7: the outcomes the oracle reports."""
    assert NAMES[:7] == ("ok", "warn", "triple_fault", "guest_terminated",
                         "hang", "unhandled", "never_online")


def test_only_triple_fault_fails_by_default(tmp_path: Path) -> None:
    """SEMANTICS 7: by default only triple_fault fails a run."""
    events: list[Ev] = [(0, "cr4_set smep"), (0, "setup_cr_pinning"),
                        (0, "cr4_clear smep")]
    warn = go(tmp_path, events, features=["smep"])
    assert warn.name == "warn"
    assert not fails(warn.sc, warn.result)
    triple = go(tmp_path, [(0, "pf")])
    assert fails(triple.sc, triple.result)
    strict = go(tmp_path, events, features=["smep"],
                fail_on=["triple_fault", "warn", "guest_terminated"])
    assert fails(strict.sc, strict.result)
    term = go(tmp_path, [(0, "lidt bringup"), (0, "port_io")],
              guest="sev-es", fail_on=["guest_terminated"])
    assert term.name == "guest_terminated"
    assert fails(term.sc, term.result)


def test_never_online_when_a_program_cannot_finish(tmp_path: Path) -> None:
    """SEMANTICS 7: a CPU's program that cannot finish is never_online."""
    sc = scenario(tmp_path, [["start 1", "wait_online 1"], ["online"]])
    first = [Event(0, sc.programs[0][0], 0)]
    assert evaluate(sc, first, complete=False).name == "never_online"
    assert evaluate(sc, first, complete=True).name == "ok"


MCE_READY: list[Ev] = [(0, "cr4_set mce"), *FULL_IDT]


def test_mce_broadcast_reaches_a_cpu_that_was_never_started(
        tmp_path: Path) -> None:
    """SDM Vol. 3A 6.15 Interrupt 18: CR4.MCE = 0 -> shutdown. A CPU left
    in wait-for-SIPI (CR4 = 0) takes the broadcast too (LX kernel/cpu.c
    cpu_bootable; 0cc3cd21657b) [assumed]."""
    sc = scenario(tmp_path, [[t for _, t in MCE_READY] + ["mce"], []])
    tr = replay(sc, [*MCE_READY, (0, "mce")])
    assert (tr.name, tr.result.chain) == ("triple_fault", [
        "cpu0: mce", "machine check broadcast: cpu1 has CR4.MCE = 0 ->"
        " shutdown (SDM 6.15 Interrupt 18)"])


def test_mce_is_taken_on_every_cpu_once_each_has_cr4_mce(
        tmp_path: Path) -> None:
    """Every CPU with CR4.MCE takes #MC through its own IDT: an AP still on
    the early handler halts there even when the boot CPU is ready."""
    ap = ["cr4_set mce", "lidt early", "online"]
    sc = scenario(tmp_path, [[t for _, t in MCE_READY]
                             + ["start 1", "wait_online 1", "mce"], ap])
    events = [*MCE_READY, (0, "start 1"), *((1, t) for t in ap),
              (0, "wait_online 1"), (0, "mce")]
    tr = replay(sc, events)
    assert (tr.name, tr.result.chain) == ("unhandled", [
        "cpu0: mce", "machine check broadcast: #MC on cpu0",
        "machine check broadcast: #MC on cpu1",
        "#MC in the early handler: early_fixup_exception() prints PANIC"
        " and halts"])
    ap[1] = "lidt full"
    sc = scenario(tmp_path, [[t for _, t in MCE_READY]
                             + ["start 1", "wait_online 1", "mce"],
                             ["cr4_set mce", "lidt full", "ltr",
                              "tss_setup_ist", "online"]])
    events = [*MCE_READY, (0, "start 1"),
              *((1, t) for t in ("cr4_set mce", "lidt full", "ltr",
                                 "tss_setup_ist", "online")),
              (0, "wait_online 1"), (0, "mce")]
    assert replay(sc, events).name == "ok"


def test_explore_does_not_reduce_orders_around_a_broadcast(
        tmp_path: Path) -> None:
    """The mce trigger reads every CPU, so no op commutes with it: explore
    must find the AP that has not yet set CR4.MCE."""
    from fuzzinit.explore.bfs import FAILED, explore
    sc = scenario(tmp_path, [
        [t for _, t in MCE_READY] + ["start 1", "wait_online 1", "nop end"],
        ["cr4_set mce", "lidt full", "ltr", "tss_setup_ist", "online"]],
        extra='[[orderings.trigger]]\nkind = "mce"\ncpus = [0]\n'
              'after = "start 1"\n')
    ex = explore(sc, 1, 100_000)
    assert ex.verdict == FAILED and ex.result is not None
    assert (ex.result.name, ex.result.chain[-1]) == (
        "triple_fault", "machine check broadcast: cpu1 has CR4.MCE = 0 ->"
        " shutdown (SDM 6.15 Interrupt 18)")
