"""RDMSR and WRMSR: the FRED MSRs checked as Bochs checks them, EFER, the
rest as plain registers; in a guest, intercepted MSRs exit first."""

from typing import Final

from .arch import (
    CR0_PG,
    EFER_LMA,
    EFER_LME,
    GP,
    MSR_EFER,
    MSR_FRED_CONFIG,
    MSR_FRED_RSP0,
    MSR_FRED_STKLVLS,
    MSRS,
    fred_msr_write_faults,
    is_fred_msr,
)
from .delivery import raise_event
from .grammar import OpSyntaxError, number, suggest
from .machine import (
    F_CR0,
    F_EFER,
    F_FRED_CONFIG,
    F_FRED_RSP0,
    F_FRED_STKLVLS,
    FEATURE_FRED,
    R_MSR,
    R_NONE,
    Machine,
)
from .op import Example, Op
from .outcome import OK
from .platform import intercepted

WRMSR: Final = 9
RDMSR: Final = 10

# Symbolic values for WRMSR, the ones Linux writes (LX arch/x86/kernel/fred.c).
FRED_ENTRY: Final = 0xFFFFFFFF81000000 | (1 << 6)   # entry page | REDZONE(1)
FRED_STACK: Final = 0xFFFFFE0000010000              # a 64-byte aligned stack top
# cpu_init_fred_rsps(): #DB level 1, NMI 2, #MC 2, #DF 3 (FRED_STKLVL(v, l)).
FRED_STKLVLS_LINUX: Final = (1 << 2) | (2 << 4) | (2 << 36) | (3 << 16)
MSR_VALUE_SYMBOLS: Final[dict[str, int]] = {
    "entry": FRED_ENTRY, "stack": FRED_STACK, "linux": FRED_STKLVLS_LINUX,
}


def _msr(name: str, text: str) -> int:
    msr = text.upper()
    if msr not in MSRS:
        raise OpSyntaxError(f"unknown MSR {text!r}",
                            f"one of {', '.join(MSRS)}",
                            suggest(msr, list(MSRS)))
    return MSRS[msr]


class Wrmsr(Op):
    def __init__(self) -> None:
        super().__init__(
            WRMSR, "wrmsr", "wrmsr MSR VALUE",
            "FRED MSRs checked as Bochs does (#GP if FRED is not enumerated"
            " or the value is bad), EFER (LME is fixed while paging is on),"
            " other MSRs stored nowhere; an intercepted MSR raises #VC/#VE"
            " first",
            "SDM Vol. 2 WRMSR; FRED spec 7.2; SDM Vol. 3A 10.8.5;"
            " Bochs cpu/msr.cc",
            samples=("wrmsr FRED_CONFIG entry", "wrmsr FRED_CONFIG 0x834",
                     "wrmsr FRED_STKLVLS linux", "wrmsr FRED_RSP1 stack",
                     "wrmsr FRED_RSP2 0x7", "wrmsr FRED_SSP1 0x10",
                     "wrmsr FRED_RSP3 0x800000000000", "wrmsr EFER 0x500"),
            examples=(
                Example(("wrmsr FRED_CONFIG entry",), "triple_fault", (
                    "cpu0: wrmsr FRED_CONFIG entry",
                    "WRMSR 0x1d4: FRED is not enumerated -> #GP",
                    "#GP through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
                Example(("wrmsr FRED_CONFIG entry",), "ok",
                        features=("fred",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 2:
            raise OpSyntaxError("wrmsr takes 2 arguments", "wrmsr MSR VALUE",
                                "e.g. 'wrmsr FRED_CONFIG entry'")
        msr = _msr("wrmsr", args[0])
        text = args[1].lower()
        value = MSR_VALUE_SYMBOLS[text] if text in MSR_VALUE_SYMBOLS else \
            number(args[1], f"wrmsr {args[0].upper()}", (1 << 64) - 1)
        return msr, value

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if a in m.intercepted_msrs:
            outcome = intercepted(m, st, base, R_MSR, "WRMSR", chain)
            if outcome != OK:
                return outcome
        if is_fred_msr(a):
            why = ("FRED is not enumerated" if not m.features & FEATURE_FRED
                   else fred_msr_write_faults(a, b))
            if why:
                # WRMSR to a missing MSR or with a bad value: #GP (BX msr.cc).
                chain.append(f"WRMSR 0x{a:x}: {why} -> #GP")
                return raise_event(m, st, base, GP, False, R_NONE, chain)
            if a == MSR_FRED_CONFIG:
                st[base + F_FRED_CONFIG] = b
            elif a == MSR_FRED_STKLVLS:
                st[base + F_FRED_STKLVLS] = b
            elif a < MSR_FRED_STKLVLS:
                st[base + F_FRED_RSP0 + a - MSR_FRED_RSP0] = b
            return OK
        if a == MSR_EFER:
            old = st[base + F_EFER]
            new = (b & ~EFER_LMA) | (old & EFER_LMA)  # LMA is read-only
            if (old ^ new) & EFER_LME and st[base + F_CR0] & CR0_PG:
                # Changing LME with paging on: #GP (SDM Vol. 3A 10.8.5).
                chain.append("WRMSR EFER changes LME with paging on -> #GP")
                return raise_event(m, st, base, GP, False, R_NONE, chain)
            st[base + F_EFER] = new
        return OK


class Rdmsr(Op):
    def __init__(self) -> None:
        super().__init__(
            RDMSR, "rdmsr", "rdmsr MSR",
            "#GP for a FRED MSR when FRED is not enumerated; an intercepted"
            " MSR raises #VC/#VE first",
            "SDM Vol. 2 RDMSR; Bochs cpu/msr.cc",
            samples=("rdmsr FRED_CONFIG", "rdmsr APIC_BASE"),
            trigger_words=(2, 2),
            examples=(
                Example(("rdmsr APIC_BASE",), "triple_fault", (
                    "cpu0: rdmsr APIC_BASE",
                    "RDMSR: MSR access raises #VC in a sev-es guest",
                    "#VC through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #VC is handled serially (SDM table"
                    " 6-5)",
                    "#GP through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
                    guest="sev-es"),
                Example(("rdmsr FRED_CONFIG",), "ok", features=("fred",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1:
            raise OpSyntaxError("rdmsr takes 1 argument", "rdmsr MSR",
                                "e.g. 'wrmsr FRED_CONFIG entry'")
        return _msr("rdmsr", args[0]), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if a in m.intercepted_msrs:
            outcome = intercepted(m, st, base, R_MSR, "RDMSR", chain)
            if outcome != OK:
                return outcome
        if is_fred_msr(a) and not m.features & FEATURE_FRED:
            chain.append(f"RDMSR 0x{a:x}: FRED is not enumerated -> #GP")
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        return OK


def msr_ops() -> list[Op]:
    return [Wrmsr(), Rdmsr()]
