"""RDMSR and WRMSR: the FRED MSRs checked as Bochs checks them, EFER,
APIC_BASE and the x2APIC MSRs (apic.py), the rest as plain registers; in a
guest, intercepted MSRs exit first."""

from typing import Final

from .apic import (
    MSR_APIC_BASE,
    apic_base_write,
    is_x2apic_msr,
    tdx_exit,
    x2apic_fault,
)
from .arch import (
    CR0_PG,
    EFER_LMA,
    EFER_LME,
    EFER_RESERVED,
    GP,
    MSR_EFER,
    MSR_FRED_CONFIG,
    MSR_FRED_RSP0,
    MSR_FRED_STKLVLS,
    MSR_S_CET,
    MSR_TSC_AUX,
    MSRS,
    S_CET_ENDBR_EN,
    S_CET_RESERVED,
    fred_msr_write_faults,
    is_fred_msr,
)
from .delivery import raise_event, stub_delivery
from .grammar import OpSyntaxError, number, suggest
from .machine import (
    F_CR0,
    F_EFER,
    F_FLAGS,
    F_FRED_CONFIG,
    F_FRED_RSP0,
    F_FRED_STKLVLS,
    FEATURE_FRED,
    G_FLAGS,
    IBT_ON,
    R_MSR,
    TDX,
    TSC_AUX_GUEST,
    UCODE,
    WARNED_RDMSR,
    WARNED_WRMSR,
    Machine,
)
from .op import Example, Op, no_gate
from .outcome import OK
from .platform import intercepted, printk

WRMSR: Final = 9
RDMSR: Final = 10
LOAD_MICROCODE: Final = 34
RDMSR_SAFE: Final = 40
WRMSR_SAFE: Final = 41

# Symbolic values for WRMSR, the ones Linux writes (LX arch/x86/kernel/fred.c).
FRED_ENTRY: Final = 0xFFFFFFFF81000000 | (1 << 6)   # entry page | REDZONE(1)
FRED_STACK: Final = 0xFFFFFE0000010000              # a 64-byte aligned stack top
# cpu_init_fred_rsps(): #DB level 1, NMI 2, #MC 2, #DF 3 (FRED_STKLVL(v, l)).
FRED_STKLVLS_LINUX: Final = (1 << 2) | (2 << 4) | (2 << 36) | (3 << 16)
MSR_VALUE_SYMBOLS: Final[dict[str, int]] = {
    "entry": FRED_ENTRY, "stack": FRED_STACK, "linux": FRED_STKLVLS_LINUX,
}
# IA32_TSC_AUX takes two symbolic values: this CPU's number (setup_getcpu,
# KVM's restore of the host value) or a KVM guest's value.
TSC_AUX_VALUES: Final[tuple[str, ...]] = ("cpu", "guest")
TSC_AUX_REFUSAL: Final = "IA32_TSC_AUX and RDPID are not in runtime.pml"


def msr_number(text: str) -> int:
    """An MSR by name (arch.MSRS) or by number, 0 to 0xffffffff."""
    msr = text.upper()
    if msr in MSRS:
        return MSRS[msr]
    if text[:1].isdigit():
        return number(text, "MSR", 0xFFFFFFFF)
    raise OpSyntaxError(f"unknown MSR {text!r}",
                        f"one of {', '.join(MSRS)}, or a number",
                        suggest(msr, list(MSRS)))


def missing(m: Machine, st: list[int], base: int, msr: int) -> bool:
    """The CPU does not implement `msr` (yet): the scenario says it is
    absent, or it comes with a microcode update this CPU has not loaded."""
    # Empty lists are the common case: test them before boxing `msr` for
    # the membership test (a measurable cost in the compiled model).
    if m.absent_msrs and msr in m.absent_msrs:
        return True
    return bool(m.microcode_msrs) and msr in m.microcode_msrs and \
        not st[base + F_FLAGS] & UCODE


GO_ON: Final = -1   # the access reaches the MSR's own rules


def enter(m: Machine, st: list[int], base: int, msr: int, write: bool,
          value: int, safe: bool, chain: list[str],
          warnings: list[str]) -> int:
    """What every RDMSR/WRMSR meets first: the hypervisor's intercept, then
    the MSR's existence, then for an x2APIC MSR its own rules (apic.py).
    An outcome, or GO_ON."""
    what = "WRMSR" if write else "RDMSR"
    x2apic = is_x2apic_msr(msr)
    exits = msr in m.intercepted_msrs
    # rule: apic-mode
    if x2apic and m.sev:
        # [assumed] every x2APIC MSR is intercepted: "AMD-SEV-ES intercepts
        # the RDMSR to read the X2APIC ID" (LX arch/x86/mm/mem_encrypt_amd.c
        # sme_early_init; kernel/apic/x2apic_savic.c, Secure AVIC off).
        exits = True
    # rule: apic-mode
    elif x2apic and m.platform == TDX:
        how = tdx_exit(msr, write)
        if how == "gp":
            return msr_gp(m, st, base, msr, write, safe,
                          "the TDX module injects #GP(0)", chain, warnings)
        exits = how == "ve"
    # rule: intercepted-msrs, vc-ve-sources
    if exits:
        # A handled exit is the hypervisor's emulation, which applies the
        # rules below: an error it reports comes back as #GP (LX
        # coco/sev/vc-shared.c verify_exception_info; coco/tdx/tdx.c
        # read_msr/write_msr -> ve_raise_fault).
        outcome = intercepted(m, st, base, R_MSR, what, chain)
        if outcome != OK:
            return outcome
    # rule: msrs
    if missing(m, st, base, msr):
        return msr_gp(m, st, base, msr, write, safe, "not implemented",
                      chain, warnings)
    # rule: apic-mode
    if x2apic:
        why = x2apic_fault(st, base, msr, write, value)
        if why:
            return msr_gp(m, st, base, msr, write, safe, why, chain,
                          warnings)
    return GO_ON


# rule: msrs
def msr_gp(m: Machine, st: list[int], base: int, msr: int, write: bool,
           safe: bool, why: str, chain: list[str],
           warnings: list[str]) -> int:
    """RDMSR/WRMSR #GP(0) (SDM Vol. 2 RDMSR, WRMSR) at a kernel rdmsr()/
    wrmsr() site. Once a handler fixed it up, ex_handler_msr() reports
    the first of each kind with pr_warn_once("unchecked MSR access error"),
    except at a rdmsr_safe()/wrmsr_safe() site, whose caller gets -EIO
    instead (LX arch/x86/mm/extable.c ex_handler_msr)."""
    what = "WRMSR" if write else "RDMSR"
    chain.append(f"{what} 0x{msr:x}: {why} -> #GP")
    outcome = raise_event(m, st, base, GP, False, R_MSR, chain)
    if outcome != OK or safe or stub_delivery(st, base):
        return outcome
    flag = WARNED_WRMSR if write else WARNED_RDMSR
    g = st[m.glob + G_FLAGS]
    if g & flag:
        return OK
    st[m.glob + G_FLAGS] = g | flag
    warnings.append(f"unchecked MSR access error: {what} 0x{msr:x}"
                    " (fixed up)")
    return printk(m, st, base, "the unchecked MSR access report", chain)


class Wrmsr(Op):
    def __init__(self) -> None:
        self.safe = False
        super().__init__(
            WRMSR, "wrmsr", "wrmsr MSR VALUE",
            "FRED MSRs checked as Bochs does (#GP if FRED is not enumerated"
            " or the value is bad), EFER (LME is fixed while paging is on),"
            " APIC_BASE (its EN/EXTD mode transitions) and the x2APIC MSRs"
            " 0x800-0xbff (README rule 28), TSC_AUX as `cpu` or `guest`"
            " (rule 34), other MSRs stored nowhere; an intercepted MSR"
            " raises #VC/#VE first",
            "SDM Vol. 2 WRMSR; FRED spec 7.2; SDM Vol. 3A 10.8.5, x2APIC"
            " State Transitions; Bochs cpu/msr.cc",
            samples=("wrmsr FRED_CONFIG entry", "wrmsr FRED_CONFIG 0x834",
                     "wrmsr FRED_STKLVLS linux", "wrmsr FRED_RSP1 stack",
                     "wrmsr FRED_RSP2 0x7", "wrmsr FRED_SSP1 0x10",
                     "wrmsr FRED_RSP3 0x800000000000", "wrmsr EFER 0x500",
                     "wrmsr EFER 0x8000000000000d01", "wrmsr EFER 0xd03",
                     "wrmsr S_CET 4", "wrmsr S_CET 0", "wrmsr S_CET 0x44",
                     "wrmsr TSX_FORCE_ABORT 1", "wrmsr 0x122 3",
                     "wrmsr APIC_BASE 0xfee00c00", "wrmsr APIC_BASE 0xfee00800",
                     "wrmsr APIC_BASE 0xfee00000", "wrmsr APIC_BASE 0xfee00400",
                     "wrmsr APIC_BASE 0xfee00801", "wrmsr 0x80b 0",
                     "wrmsr 0x80b 1", "wrmsr 0x802 0", "wrmsr 0x830 0x100000000",
                     "wrmsr 0x832 0x100000000", "wrmsr 0x83f 0x102",
                     "wrmsr 0x83a 0"),
            examples=(
                Example(("wrmsr FRED_CONFIG entry",), "triple_fault", (
                    "cpu0: wrmsr FRED_CONFIG entry",
                    "WRMSR 0x1d4: FRED is not enumerated -> #GP",
                    *no_gate("#GP", "none"))),
                Example(("wrmsr FRED_CONFIG entry",), "ok",
                        features=("fred",)),
                Example(("lidt full", "wrmsr FRED_CONFIG entry",
                         "wrmsr FRED_CONFIG entry"), "warn", (
                    "WARN: unchecked MSR access error: WRMSR 0x1d4 (fixed"
                    " up)",)),
                Example(("lidt full", "rdmsr TSX_CTRL", "wrmsr TSX_CTRL 2"),
                        "warn", (
                    "WARN: unchecked MSR access error: WRMSR 0x122 (fixed"
                    " up)",),
                    platform=(("readonly_msrs", '["TSX_CTRL"]'),)),
                Example(("wrmsr APIC_BASE 0xfee00800",), "triple_fault", (
                    "cpu0: wrmsr APIC_BASE 0xfee00800",
                    "WRMSR 0x1b: x2APIC -> xAPIC is not a valid transition"
                    " -> #GP",
                    *no_gate("#GP", "none")),
                    platform=(("apic", '"x2apic"'),)),
                Example(("lidt full", "wrmsr APIC_BASE 0xfee00c00",
                         "wrmsr 0x80b 0"), "ok"),
                # KVM's guest TSC_AUX meets RDPID in paranoid_entry
                # (eaad981291ee3; README rule 34)
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "cr4_set fsgsbase", "patch_alternatives",
                         "wrmsr TSC_AUX guest", "nmi"), "unhandled", (
                    "cpu0: nmi", "NMI arrives",
                    "NMI enters paranoid_entry, which takes the CPU number"
                    " from RDPID: IA32_TSC_AUX still holds a KVM guest's"
                    " value, so GSBASE points at another CPU's per-CPU area"
                    " -> taken as an oops [derived]"),
                    features=("fsgsbase", "rdpid"),
                    kernel=(("paranoid_rdpid", "true"),)),
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "cr4_set fsgsbase", "patch_alternatives",
                         "wrmsr TSC_AUX guest", "wrmsr TSC_AUX cpu", "nmi"),
                        "ok", features=("fsgsbase", "rdpid"),
                        kernel=(("paranoid_rdpid", "true"),)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 2:
            raise OpSyntaxError(f"{self.name} takes 2 arguments",
                                f"{self.name} MSR VALUE",
                                f"e.g. '{self.name} FRED_CONFIG entry'")
        msr = msr_number(args[0])
        text = args[1].lower()
        if msr == MSR_TSC_AUX:
            if text not in TSC_AUX_VALUES:
                raise OpSyntaxError(
                    f"{self.name} TSC_AUX takes a symbolic value",
                    "cpu (this CPU's number) or guest (a KVM guest's)",
                    f"write '{self.name} TSC_AUX guest' for KVM's"
                    " kvm_set_user_return_msr()")
            return msr, TSC_AUX_VALUES.index(text)
        value = MSR_VALUE_SYMBOLS[text] if text in MSR_VALUE_SYMBOLS else \
            number(args[1], f"wrmsr {args[0].upper()}", (1 << 64) - 1)
        return msr, value

    def refusal(self, a: int, b: int) -> str:
        return TSC_AUX_REFUSAL if a == MSR_TSC_AUX else self.promela

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        outcome = enter(m, st, base, a, True, b, self.safe, chain, warnings)
        if outcome != GO_ON:
            return outcome
        # rule: msrs
        if m.readonly_msrs and a in m.readonly_msrs:
            return msr_gp(m, st, base, a, True, self.safe,
                          "the MSR is read-only here", chain, warnings)
        # rule: apic-mode
        if a == MSR_APIC_BASE:
            why = apic_base_write(m, st, base, b)
            return msr_gp(m, st, base, a, True, self.safe, why, chain,
                          warnings) if why else OK
        # rule: fred-delivery
        if is_fred_msr(a):
            why = ("FRED is not enumerated" if not m.features & FEATURE_FRED
                   else fred_msr_write_faults(a, b))
            if why:
                # WRMSR to a missing MSR or with a bad value: #GP (BX msr.cc).
                return msr_gp(m, st, base, a, True, self.safe, why, chain,
                              warnings)
            if a == MSR_FRED_CONFIG:
                st[base + F_FRED_CONFIG] = b
            elif a == MSR_FRED_STKLVLS:
                st[base + F_FRED_STKLVLS] = b
            elif a < MSR_FRED_STKLVLS:
                st[base + F_FRED_RSP0 + a - MSR_FRED_RSP0] = b
            return OK
        # rule: cet-ibt
        if a == MSR_S_CET:
            why = ("CET is not enumerated" if not m.cet_enumerated else
                   "sets a reserved S_CET bit" if b & S_CET_RESERVED else "")
            if why:
                return msr_gp(m, st, base, a, True, self.safe, why, chain,
                              warnings)
            # Of S_CET only ENDBR_EN is kept: supervisor IBT (SDM Vol. 1
            # 18.3; LX arch/x86/kernel/cet.c setup_cet, ibt_save/restore).
            flags = st[base + F_FLAGS]
            st[base + F_FLAGS] = flags | IBT_ON if b & S_CET_ENDBR_EN else \
                flags & ~IBT_ON
            return OK
        # rule: lazy-msr
        if a == MSR_TSC_AUX:
            # Only whether it holds this CPU's number is kept (README rule
            # 34): RDPID in paranoid_entry reads it (SDM Vol. 2 RDPID).
            flags = st[base + F_FLAGS]
            st[base + F_FLAGS] = flags | TSC_AUX_GUEST if b else \
                flags & ~TSC_AUX_GUEST
            return OK
        if a == MSR_EFER:
            # rule: msrs
            if b & EFER_RESERVED:
                # WRMSR setting a reserved EFER bit: #GP (SDM Vol. 2 WRMSR).
                return msr_gp(m, st, base, a, True, self.safe,
                              "sets a reserved EFER bit", chain, warnings)
            old = st[base + F_EFER]
            new = (b & ~EFER_LMA) | (old & EFER_LMA)  # LMA is read-only
            # rule: msrs, cpu-mode
            if (old ^ new) & EFER_LME and st[base + F_CR0] & CR0_PG:
                # Changing LME with paging on: #GP (SDM Vol. 3A 10.8.5).
                return msr_gp(m, st, base, a, True, self.safe,
                              "changes EFER.LME with paging on", chain,
                              warnings)
            st[base + F_EFER] = new
        return OK


class Rdmsr(Op):
    def __init__(self) -> None:
        self.safe = False
        super().__init__(
            RDMSR, "rdmsr", "rdmsr MSR",
            "#GP for a FRED MSR when FRED is not enumerated, and for an"
            " x2APIC MSR outside x2APIC mode, reserved or write-only (README"
            " rule 28); an intercepted MSR raises #VC/#VE first",
            "SDM Vol. 2 RDMSR; SDM Vol. 3A x2APIC Register Availability;"
            " Bochs cpu/msr.cc",
            samples=("rdmsr FRED_CONFIG", "rdmsr APIC_BASE",
                     "rdmsr AMD64_SEV", "rdmsr 0x10f", "rdmsr S_CET",
                     "rdmsr 0x802", "rdmsr 0x808", "rdmsr 0x80b",
                     "rdmsr 0x831", "rdmsr 0x839", "rdmsr 0x900"),
            trigger_words=(2, 2),
            examples=(
                Example(("rdmsr APIC_BASE",), "triple_fault", (
                    "cpu0: rdmsr APIC_BASE",
                    "RDMSR: MSR access raises #VC in a sev-es guest",
                    *no_gate("#VC", "none")),
                    guest="sev-es"),
                Example(("rdmsr FRED_CONFIG",), "ok", features=("fred",)),
                Example(("lidt bringup", "rdmsr AMD64_SEV"), "triple_fault", (
                    "cpu0: rdmsr AMD64_SEV",
                    "RDMSR 0xc0010131: not implemented -> #GP",
                    "#GP through the bringup IDT: no gate for vector 13"
                    " -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the bringup IDT: no gate for vector 8"
                    " -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)"),
                    platform=(("absent_msrs", '["AMD64_SEV"]'),)),
                Example(("lidt early", "rdmsr 0x10f"), "warn", (
                    "WARN: unchecked MSR access error: RDMSR 0x10f (fixed"
                    " up)",),
                    platform=(("microcode_msrs", '["TSX_FORCE_ABORT"]'),)),
                Example(("rdmsr 0x802",), "triple_fault", (
                    "cpu0: rdmsr 0x802",
                    "RDMSR 0x802: the local APIC is not in x2APIC mode -> #GP",
                    *no_gate("#GP", "none"))),
                Example(("lidt full", "rdmsr 0x802"), "ok", guest="tdx"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1:
            raise OpSyntaxError(f"{self.name} takes 1 argument",
                                f"{self.name} MSR",
                                f"e.g. '{self.name} APIC_BASE'")
        return msr_number(args[0]), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        outcome = enter(m, st, base, a, False, 0, self.safe, chain,
                        warnings)
        if outcome != GO_ON:
            return outcome
        # rule: fred-delivery, msrs
        if is_fred_msr(a) and not m.features & FEATURE_FRED:
            return msr_gp(m, st, base, a, False, self.safe,
                          "FRED is not enumerated", chain, warnings)
        # rule: cet-ibt
        if a == MSR_S_CET and not m.cet_enumerated:
            return msr_gp(m, st, base, a, False, self.safe,
                          "CET is not enumerated", chain, warnings)
        return OK


class LoadMicrocode(Op):
    def __init__(self) -> None:
        super().__init__(
            LOAD_MICROCODE, "load_microcode", "load_microcode",
            "`load_ucode_bsp()`, `load_ucode_ap()`, the resume reload: this"
            " CPU runs the updated microcode, and the MSRs in"
            " `platform.microcode_msrs` exist on it from now on (a CPU"
            " starts without the update - a reset clears it - and keeps it"
            " across INIT: SDM 10.11.6.1)",
            "SDM Vol. 3A 10.11 (microcode update facilities); LX"
            " arch/x86/kernel/cpu/microcode/core.c",
            reads=0, samples=("load_microcode",),
            examples=(
                Example(("lidt full", "load_microcode",
                         "wrmsr TSX_FORCE_ABORT 1"), "ok",
                        platform=(("microcode_msrs",
                                   '["TSX_FORCE_ABORT"]'),)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: msrs
        st[base + F_FLAGS] |= UCODE
        return OK


class RdmsrSafe(Rdmsr):
    def __init__(self) -> None:
        self.safe = True
        Op.__init__(
            self, RDMSR_SAFE, "rdmsr_safe", "rdmsr_safe MSR",
            "`rdmsr_safe()`: RDMSR whose #GP, once delivered, the exception"
            " table turns into -EIO for the caller, with no report",
            "LX arch/x86/include/asm/msr.h, arch/x86/mm/extable.c"
            " ex_handler_msr (EX_TYPE_RDMSR_SAFE)",
            samples=("rdmsr_safe AMD64_SEV", "rdmsr_safe 0x10f",
                     "rdmsr_safe 0x803"),
            trigger_words=(2, 2),
            examples=(
                Example(("lidt early", "rdmsr_safe 0x10f"), "ok", (),
                        platform=(("absent_msrs", '["0x10f"]'),)),
                Example(("lidt early", "rdmsr_safe 0x80b"), "ok", (),
                        platform=(("apic", '"x2apic"'),)),
                Example(("rdmsr_safe 0x10f",), "triple_fault", (
                    "cpu0: rdmsr_safe 0x10f",
                    "RDMSR 0x10f: not implemented -> #GP",
                    *no_gate("#GP", "none")),
                    platform=(("absent_msrs", '["0x10f"]'),)),
            ))


class WrmsrSafe(Wrmsr):
    def __init__(self) -> None:
        self.safe = True
        Op.__init__(
            self, WRMSR_SAFE, "wrmsr_safe", "wrmsr_safe MSR VALUE",
            "`wrmsr_safe()`: WRMSR whose #GP, once delivered, the exception"
            " table turns into -EIO for the caller, with no report",
            "LX arch/x86/include/asm/msr.h, arch/x86/mm/extable.c"
            " ex_handler_msr (EX_TYPE_WRMSR_SAFE)",
            samples=("wrmsr_safe TSX_CTRL 2", "wrmsr_safe FRED_CONFIG 0x834",
                     "wrmsr_safe APIC_BASE 0xfee00800"),
            examples=(
                Example(("lidt full", "wrmsr_safe TSX_CTRL 2",
                         "wrmsr TSX_CTRL 2"), "warn", (
                    "WARN: unchecked MSR access error: WRMSR 0x122 (fixed"
                    " up)",),
                    platform=(("readonly_msrs", '["TSX_CTRL"]'),)),
            ))


def msr_ops() -> list[Op]:
    return [Wrmsr(), Rdmsr(), LoadMicrocode(), RdmsrSafe(), WrmsrSafe()]
