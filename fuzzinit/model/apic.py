"""The local APIC's mode (IA32_APIC_BASE EN/EXTD) and the x2APIC MSRs
0x800-0xBFF: which accesses #GP on the CPU, and which exit to the
hypervisor (#VC on SEV-ES/SNP, #VE on TDX) or #GP in the TDX module.

The mode lives in two F_FLAGS bits: APIC_EXTD (x2APIC mode) and APIC_OFF
(EN = 0, globally disabled); neither is xAPIC mode. The invalid state
EN = 0, EXTD = 1 is never stored: the WRMSR to it #GPs.
"""

from typing import Final

from .machine import (
    APIC_EXTD,
    APIC_LOCKED,
    APIC_OFF,
    APIC_XAPIC_ONLY,
    F_FLAGS,
    Machine,
)

MSR_APIC_BASE: Final = 0x1B
# IA32_APIC_BASE bits (SDM Vol. 3A "Local APIC Status and Location";
# LX arch/x86/include/asm/apicdef.h X2APIC_ENABLE, XAPIC_ENABLE).
APIC_BASE_EXTD: Final = 1 << 10
APIC_BASE_EN: Final = 1 << 11
# Reserved: bits 0-7 and 9 (KVM kvm_apic_set_base `0x2ff`), and bits
# 52-63, above every MAXPHYADDR (SDM Vol. 3A "Local APIC Status and
# Location": bits MAXPHYADDR-63 reserved). [assumed] MAXPHYADDR 52: the
# bits between it and the CPU's own are not checked.
APIC_BASE_RESERVED: Final = 0xFFF00000000002FF

X2APIC_FIRST: Final = 0x800
X2APIC_LAST: Final = 0xBFF
X2APIC_ICR: Final = 0x830
X2APIC_EOI: Final = 0x80B
X2APIC_ESR: Final = 0x828
X2APIC_SELF_IPI: Final = 0x83F


def _bits(*offsets: int | range) -> int:
    mask = 0
    for item in offsets:
        for off in (item if isinstance(item, range) else (item,)):
            mask |= 1 << off
    return mask


# Bit i: MSR 0x800 + i; nothing above 0x83F exists (SDM Vol. 3A table
# "Local APIC Register Address Map Supported by x2APIC": the addresses it
# does not list, 0x80E and 0x831 included, are reserved -> #GP).
X2APIC_READABLE: Final = _bits(0x02, 0x03, 0x08, 0x0A, 0x0D, 0x0F,
                               range(0x10, 0x29), 0x2F, 0x30,
                               range(0x32, 0x3A), 0x3E)
X2APIC_WRITABLE: Final = _bits(0x08, 0x0B, 0x0F, 0x28, 0x2F, 0x30,
                               range(0x32, 0x39), 0x3E, 0x3F)
# TDX module MSR table (tdx-module include/auto_gen_2_0/msr_config_lookup.c,
# td_msr_access.c td_rdmsr_exit): accesses that exit as #VE; the ones the
# CPU virtualises (no exit: TPR, PPR, EOI, ISR, TMR, IRR, SELF_IPI and the
# FIXED_0 holes 0x809, 0x80C, 0x80E); every other x2APIC access is #GP(0)
# from the module. [assumed] ENUM_TOPOLOGY and REDUCE_VE off (README rule
# 11): the APIC ID read exits.
TDX_VE_READ: Final = _bits(0x02, 0x03, 0x0D, 0x0F, 0x28, 0x2F, 0x30,
                           range(0x32, 0x3B), 0x3E)
TDX_VE_WRITE: Final = _bits(0x0F, 0x28, 0x2F, 0x30, range(0x32, 0x39),
                            0x3A, 0x3E)
TDX_NO_EXIT: Final = _bits(range(0x08, 0x0D), 0x0E, range(0x10, 0x28), 0x3F)

APIC_MODES: Final[tuple[str, ...]] = ("xapic", "x2apic", "x2apic-locked",
                                      "xapic-only")


def is_x2apic_msr(msr: int) -> bool:
    return X2APIC_FIRST <= msr <= X2APIC_LAST


def _has(mask: int, msr: int) -> bool:
    off = msr - X2APIC_FIRST
    return off < 64 and (mask >> off) & 1 == 1


# rule: apic-mode
def tdx_exit(msr: int, write: bool) -> str:
    """What the TDX module does with an x2APIC RDMSR/WRMSR: "ve" (an exit
    the guest's #VE handler sees), "gp" (#GP(0) injected) or "" (the CPU
    virtualises it: the architectural rules apply)."""
    if _has(TDX_VE_WRITE if write else TDX_VE_READ, msr):
        return "ve"
    return "" if _has(TDX_NO_EXIT, msr) else "gp"


# rule: apic-mode
def x2apic_fault(st: list[int], base: int, msr: int, write: bool,
                 value: int) -> str:
    """Why RDMSR/WRMSR of x2APIC MSR `msr` #GPs on this CPU, or ""."""
    if st[base + F_FLAGS] & (APIC_EXTD | APIC_OFF) != APIC_EXTD:
        # SDM Vol. 3A "x2APIC Register Availability"; KVM
        # kvm_x2apic_msr_read/write.
        return "the local APIC is not in x2APIC mode"
    if not _has(X2APIC_READABLE | X2APIC_WRITABLE, msr):
        return "reserved x2APIC MSR"    # SDM table 10-6 (unlisted)
    if not write:
        return "" if _has(X2APIC_READABLE, msr) else \
            "write-only x2APIC register"
    if not _has(X2APIC_WRITABLE, msr):
        return "read-only x2APIC register"
    if value >> 32 and msr != X2APIC_ICR:
        # SDM Vol. 3A "Reserved Bit Checking" (x2APIC); KVM
        # "Inject #GP on x2APIC WRMSR that sets reserved bits 63:32".
        return "sets bits 63:32"
    if value and msr in (X2APIC_EOI, X2APIC_ESR):
        # SDM table 10-6 "WRMSR of a non-zero value causes #GP(0)".
        return "writes a non-zero value"
    if value & 0xFFFFFF00 and msr == X2APIC_SELF_IPI:
        # KVM kvm_lapic_reg_write APIC_SELF_IPI; Xen vlapic.
        return "sets SELF IPI bits 31:8"
    return ""


# rule: apic-mode
def apic_base_write(m: Machine, st: list[int], base: int, value: int) -> str:
    """WRMSR IA32_APIC_BASE: the mode change it makes, or why it #GPs
    (SDM Vol. 3A "x2APIC State Transitions"; KVM kvm_apic_set_base)."""
    if value & APIC_BASE_RESERVED:
        return "sets a reserved APIC_BASE bit"
    en = value & APIC_BASE_EN != 0
    extd = value & APIC_BASE_EXTD != 0
    if extd and m.apic == APIC_XAPIC_ONLY:
        # EXTD is reserved without CPUID.1:ECX.x2APIC (KVM
        # kvm_apic_set_base X2APIC_ENABLE in reserved_bits).
        return "sets EXTD without x2APIC support"
    if extd and not en:
        return "EN = 0 with EXTD = 1 is the invalid state"
    flags = st[base + F_FLAGS]
    if flags & APIC_EXTD and not extd and m.apic == APIC_LOCKED:
        # IA32_XAPIC_DISABLE_STATUS.LEGACY_XAPIC_DISABLED (LX
        # arch/x86/include/asm/msr-index.h, "x86/apic: Don't disable
        # x2APIC if locked").
        return "leaves x2APIC mode while firmware locked it"
    if flags & APIC_EXTD and en and not extd:
        return "x2APIC -> xAPIC is not a valid transition"
    if flags & APIC_OFF and extd:
        return "disabled -> x2APIC is not a valid transition"
    flags &= ~(APIC_EXTD | APIC_OFF)
    st[base + F_FLAGS] = flags | (APIC_EXTD if extd else 0) | \
        (0 if en else APIC_OFF)
    return ""
