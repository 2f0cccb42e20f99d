"""The CPU mode: 64-bit vs compatibility mode (`ljmp`), leaving and
re-entering IA-32e mode through CR0.PG, and delivery once EFER.LMA = 0
(SDM Vol. 2 MOV CR, Vol. 3A 10.8.5, 6.11, 21.1.4; Bochs SetCR0,
interrupt())."""

from pathlib import Path

import pytest
from one_cpu import run_ops, scenario

from fuzzinit.model.arch import EFER_LMA
from fuzzinit.model.machine import F_EFER
from fuzzinit.model.outcome import NAMES, Result
from fuzzinit.model.run import initial_state, step
from fuzzinit.scenario.load import Scenario

LEAVE = ["ljmp cs32", "mov_cr0 -pg"]


def _scenario(tmp_path: Path, ops: list[str],
              features: str = '["pcid"]') -> Scenario:
    return scenario(tmp_path, ops, features)


def _run(tmp_path: Path, ops: list[str], features: str = '["pcid"]'
         ) -> Result:
    return run_ops(tmp_path, ops, features)


def test_leaving_long_mode_clears_lma_and_coming_back_sets_it(
        tmp_path: Path) -> None:
    ops = [*LEAVE, "mov_cr0 +pg", "ljmp cs64"]
    sc = _scenario(tmp_path, ops)
    st = initial_state(sc.machine)
    lma = []
    for i in range(len(ops)):
        assert step(sc.machine, st, 0, i, [], []) == 0
        lma.append(bool(st[F_EFER] & EFER_LMA))
    assert lma == [True, False, True, True]


@pytest.mark.parametrize(("ops", "line"), [
    (["mov_cr0 -pg"], "MOV to CR0 clears CR0.PG in 64-bit mode -> #GP(0)"),
    (["ljmp cs32", "mov_cr4 +pcide", "mov_cr0 -pg"],
     "MOV to CR0 clears CR0.PG with CR4.PCIDE = 1 -> #GP(0)"),
    ([*LEAVE, "ljmp cs64", "mov_cr0 +pg"],
     "MOV to CR0 enables paging with EFER.LME = 1 from a CS with L = 1"
     " -> #GP(0)"),
    ([*LEAVE, "mov_cr4 -pae", "mov_cr0 +pg"],
     "MOV to CR0 enables paging with EFER.LME = 1 and CR4.PAE = 0 -> #GP(0)"),
    ([*LEAVE, "mov_cr4 +pcide"],
     "MOV to CR4 sets CR4.PCIDE outside long mode -> #GP(0)"),
    (["ljmp cs32", "rdgsbase"], "RDGSBASE outside 64-bit mode -> #UD"),
])
def test_mode_rules(tmp_path: Path, ops: list[str], line: str) -> None:
    if "mov_cr0 -pg" not in ops[:-1]:   # still in IA-32e mode: a probe
        r = _run(tmp_path, ["lidt gates 6,13", *ops])
        assert (NAMES[r.outcome], r.handled) == (
            "ok", [(0, 13 if "#GP" in line else 6)])
    r = _run(tmp_path, ops)
    assert NAMES[r.outcome] == "triple_fault"
    assert r.chain[1] == line


def test_efer_lme_can_be_cleared_once_paging_is_off(tmp_path: Path) -> None:
    r = _run(tmp_path, ["lidt gates 13", *LEAVE, "wrmsr EFER 0x800",
                        "mov_cr0 +pg"])
    assert (NAMES[r.outcome], r.handled) == ("ok", [])


@pytest.mark.parametrize(("ops", "outcome", "last"), [
    # Protected mode, the invalidated IDT: every read is beyond limit 0.
    (["lidt null", *LEAVE, "nmi"], "triple_fault",
     "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
    # Protected mode through the IVT at 0: no gate in it.
    (["lidt real", *LEAVE, "int3"], "triple_fault",
     "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
    # A 64-bit IDT read with 8-byte gates: an even slot is a gate's first
    # half, a 32-bit interrupt gate - the model stops there.
    (["lidt full", *LEAVE, "nmi"], "unhandled",
     "NMI in protected mode through a 64-bit IDT (full): slot 2 is gate"
     " 1's first half, read as a 32-bit interrupt gate; where it leads is"
     " not modelled"),
    (["lidt gates 4,6", *LEAVE, "int3"], "unhandled",
     "#DF in protected mode through a 64-bit IDT (gates 4,6 limit 0xfff):"
     " slot 8 is gate 4's first half, read as a 32-bit interrupt gate;"
     " where it leads is not modelled"),
    (["lidt gates 1 np 1", *LEAVE, "int 2"], "triple_fault",
     "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
    # Real mode: the IVT entry is taken, the model does not follow it.
    (["lidt real", *LEAVE, "mov_cr0 -pe", "int3"], "unhandled",
     "#BP in real mode: the IVT entry at the IDT base (real) is taken;"
     " where it leads is not modelled"),
    (["lidt null", *LEAVE, "mov_cr0 -pe", "int3"], "triple_fault",
     "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
])
def test_delivery_outside_ia32e_mode(tmp_path: Path, ops: list[str],
                                     outcome: str, last: str) -> None:
    r = _run(tmp_path, ops)
    assert (NAMES[r.outcome], r.chain[-1]) == (outcome, last)


def test_legacy_gates_read_their_selector_from_the_gdt(
        tmp_path: Path) -> None:
    """An even slot of a 64-bit IDT is a present 32-bit gate, but its
    __KERNEL_CS lies beyond GDT limit 0: #GP (BX protected_mode_int)."""
    r = _run(tmp_path, ["lidt full", "lgdt null", *LEAVE, "nmi"])
    assert (NAMES[r.outcome], r.chain[2]) == (
        "triple_fault", "NMI: the gate's code segment (__KERNEL_CS) lies"
        " beyond the GDT limit 0 -> #GP")


def test_fred_is_ignored_outside_ia32e_mode(tmp_path: Path) -> None:
    """BX interrupt(): FRED delivery only in long mode."""
    r = _run(tmp_path, ["lidt null", "wrmsr FRED_CONFIG entry",
                        "cr4_set fred", *LEAVE, "nmi"], '["fred", "pcid"]')
    assert r.chain[2] == "NMI in protected mode: entry 2 lies beyond the" \
        " IDT limit 0x0 -> #GP"


@pytest.mark.parametrize(("ops", "outcome", "handled"), [
    # A valid GDT: the load is fine, nothing raised.
    (["lidt gates 13", "loadsegment ss"], "ok", []),
    # Limit 0: the load #GPs and the gate's __KERNEL_CS cannot be read
    # either: #DF, whose gate needs it too - shutdown.
    (["lidt gates 8,13", "lgdt null", "loadsegment ds"], "triple_fault", []),
    # The GDT back: the fixed-up load (Linux's handler) goes on.
    (["lidt full", "lgdt null", "lgdt saved", "loadsegment ss"], "ok", []),
    # Linux's handler with a valid GDT fixes the load up (EX_TYPE_ZERO_REG)
    # - reachable only through FRED here, which reads no GDT.
    (["wrmsr FRED_CONFIG entry", "cr4_set fred", "lgdt null",
      "loadsegment ss"], "ok", []),
])
def test_gdt_limit_zero(tmp_path: Path, ops: list[str], outcome: str,
                        handled: list[tuple[int, int]]) -> None:
    r = _run(tmp_path, ops, '["fred"]')
    assert (NAMES[r.outcome], r.handled) == (outcome, handled)


def test_the_gdt_is_read_after_the_gate_and_before_the_ist(
        tmp_path: Path) -> None:
    """SDM Vol. 3A 6.14.1; Bochs long_mode_int: gate checks, then the
    code segment, then the IST stack."""
    r = _run(tmp_path, ["lidt gates 13 np 13", "lgdt null", "raise 13"])
    assert r.chain[2] == "#GP: gate 13 is not present (P = 0) -> #NP"
    r = _run(tmp_path, ["lidt gates 3 ist 3:1", "lgdt null", "int3"])
    assert r.chain[2] == "#BP: the gate's code segment (__KERNEL_CS) lies" \
        " beyond the GDT limit 0 -> #GP"
