"""x86-64 architectural facts: register bits, MSRs, vectors, exception classes.

Nothing here knows about Linux. Every rule names its source in one line;
"[derived]" marks an inference from emulator code rather than quoted spec text
(see shared SEMANTICS sections 1-4 and the README's "Model rules").
"""

from typing import Final

# --- CR0 (SDM Vol. 3A 2.5) ---------------------------------------------------
CR0_BITS: Final[dict[str, int]] = {
    "pe": 0, "mp": 1, "em": 2, "ts": 3, "et": 4, "ne": 5, "wp": 16, "am": 18,
    "nw": 29, "cd": 30, "pg": 31,
}
CR0_PE: Final = 1 << 0
CR0_WP: Final = 1 << 16
CR0_NW: Final = 1 << 29
CR0_CD: Final = 1 << 30
CR0_PG: Final = 1 << 31
# Reserved bits 6-15, 17, 19-28: a write does not change them (KVM
# kvm_set_cr0 masks CR0_RESERVED_BITS; SDM Vol. 3A 2.5 asks software to
# keep them) [derived]. Bits 63:32 are #GP instead (cr0_write_faults).
CR0_IGNORED: Final = 0x1FFAFFC0

# --- CR4 bit positions (SDM Vol. 3A 2.5; FRED is bit 32: LX processor-flags.h)
CR4_BITS: Final[dict[str, int]] = {
    "vme": 0, "pvi": 1, "tsd": 2, "de": 3, "pse": 4, "pae": 5, "mce": 6,
    "pge": 7, "pce": 8, "osfxsr": 9, "osxmmexcpt": 10, "umip": 11, "la57": 12,
    "vmxe": 13, "smxe": 14, "fsgsbase": 16, "pcide": 17, "osxsave": 18,
    "smep": 20, "smap": 21, "pke": 22, "cet": 23, "pks": 24, "lass": 27,
    "fred": 32,
}
CR4_PAE: Final = 1 << 5
CR4_PGE: Final = 1 << 7
CR4_SMEP: Final = 1 << 20
CR4_SMAP: Final = 1 << 21
CR4_MCE: Final = 1 << 6
CR4_LA57: Final = 1 << 12
CR4_FSGSBASE: Final = 1 << 16
CR4_PCIDE: Final = 1 << 17
CR4_CET: Final = 1 << 23
CR4_FRED: Final = 1 << 32

# CPUID features the model knows, and the CR4 bit each one enumerates
# (BX crregs.cc get_cr4_allow_mask; KVM x86.h __cr4_reserved_bits).
FEATURES: Final[tuple[str, ...]] = (
    "fred", "lkgs", "smep", "smap", "umip", "fsgsbase", "pcid", "la57",
    "vmx", "smx", "xsave", "pku", "pks", "cet", "lass", "rdpid",
)
FEATURE_CR4: Final[dict[str, str]] = {
    "fred": "fred", "smep": "smep", "smap": "smap", "umip": "umip",
    "fsgsbase": "fsgsbase", "pcid": "pcide", "la57": "la57", "vmx": "vmxe",
    "smx": "smxe", "xsave": "osxsave", "pku": "pke", "pks": "pks",
    "cet": "cet", "lass": "lass",
}
# Bits every x86-64 CPU enumerates (VME..PCE, OSFXSR, OSXMMEXCPT).
CR4_ALWAYS: Final = sum(1 << CR4_BITS[n] for n in (
    "vme", "pvi", "tsd", "de", "pse", "pae", "mce", "pge", "pce", "osfxsr",
    "osxmmexcpt"))

# --- EFER (SDM Vol. 3A 2.2.1) --------------------------------------------------
EFER_SCE: Final = 1 << 0
EFER_LME: Final = 1 << 8
EFER_LMA: Final = 1 << 10
EFER_NXE: Final = 1 << 11
# Reserved on every x86-64: bits 1-7, 9 and 22-63 (SDM Vol. 3A 2.2.1 table
# 2-1 reserves 63:12; AMD APM Vol. 2 3.1.7 defines 12-15 and 21; KVM
# efer_reserved_bits). Bits 12-21 are vendor- and feature-specific: not
# checked.
EFER_RESERVED: Final = 0xFFFFFFFFFFC002FE

# --- MSRs (LX arch/x86/include/asm/msr-index.h; BX cpu/msr.h) --------------
MSRS: Final[dict[str, int]] = {
    "APIC_BASE": 0x1B, "SPEC_CTRL": 0x48, "TSX_FORCE_ABORT": 0x10F,
    "TSX_CTRL": 0x122,
    "FRED_RSP0": 0x1CC, "FRED_RSP1": 0x1CD, "FRED_RSP2": 0x1CE,
    "FRED_RSP3": 0x1CF, "FRED_STKLVLS": 0x1D0, "FRED_SSP1": 0x1D1,
    "FRED_SSP2": 0x1D2, "FRED_SSP3": 0x1D3, "FRED_CONFIG": 0x1D4,
    "EFER": 0xC0000080, "STAR": 0xC0000081, "LSTAR": 0xC0000082,
    "CSTAR": 0xC0000083, "SYSCALL_MASK": 0xC0000084, "FS_BASE": 0xC0000100,
    "GS_BASE": 0xC0000101, "KERNEL_GS_BASE": 0xC0000102,
    "TSC_AUX": 0xC0000103,
    "SEV_ES_GHCB": 0xC0010130, "AMD64_SEV": 0xC0010131,
    "S_CET": 0x6A2,
}
# IA32_S_CET (SDM Vol. 4 table 2-2; LX msr-index.h): ENDBR_EN is bit 2,
# bits 6-9 are reserved (#GP on WRMSR).
MSR_S_CET: Final = 0x6A2
# IA32_TSC_AUX: what RDTSCP and RDPID return (SDM Vol. 2 RDPID); Linux
# writes the CPU and node number into it (LX arch/x86/kernel/cpu/common.c
# setup_getcpu), KVM a guest's value (arch/x86/kvm/x86.c
# kvm_set_user_return_msr).
MSR_TSC_AUX: Final = 0xC0000103
S_CET_ENDBR_EN: Final = 1 << 2
S_CET_RESERVED: Final = 0x3C0
# FRED_CONFIG reserved bits (BX msr.cc: mask 0x834).
FRED_CONFIG_RESERVED: Final = 0x834
FRED_CONFIG_REDZONE_1: Final = 1 << 6  # LX asm/fred.h FRED_CONFIG_REDZONE

# --- Vectors (SDM Vol. 3A table 6-1) ------------------------------------------
DE: Final = 0
DB: Final = 1
NMI: Final = 2
UD: Final = 6
DF: Final = 8
TS: Final = 10
NP: Final = 11
SS: Final = 12
GP: Final = 13
PF: Final = 14
MC: Final = 18
VE: Final = 20
CP: Final = 21
VC: Final = 29
VECTOR_NAMES: Final[dict[int, str]] = {
    DE: "#DE", DB: "#DB", NMI: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", UD: "#UD",
    7: "#NM", DF: "#DF", TS: "#TS", NP: "#NP", SS: "#SS", GP: "#GP",
    PF: "#PF", 16: "#MF", 17: "#AC", MC: "#MC", 19: "#XM", VE: "#VE",
    CP: "#CP", VC: "#VC",
}

def vector_name(vector: int) -> str:
    """"#VC", "NMI", ... for chains and reports."""
    name = VECTOR_NAMES.get(vector)
    return name if name is not None else f"vector {vector}"


# --- Exception classes (SDM Vol. 3A "Interrupt 8", table 6-4) ---------------
BENIGN: Final = 0
CONTRIBUTORY: Final = 1
PAGE_FAULT_CLASS: Final = 2


def exception_class(vector: int, cet_enumerated: bool) -> int:
    """Class of an exception vector for the double-fault rule.

    SDM table 6-4: #DE #TS #NP #SS #GP contributory; #PF page-fault class.
    #VE is page-fault class (SDM table 6-4; KVM/QEMU differ, SDM wins).
    #CP is contributory only when CET is enumerated (BX exception.cc).
    #VC(29) benign [derived: Bochs, KVM and QEMU agree; the APM table is not
    quoted].
    """
    # rule: exception-classes
    if vector == DE or TS <= vector <= GP:
        return CONTRIBUTORY
    # rule: exception-classes, cet-ibt
    if vector == CP and cet_enumerated:
        return CONTRIBUTORY
    # rule: exception-classes
    if vector == PF or vector == VE:
        return PAGE_FAULT_CLASS
    return BENIGN


# rule: double-fault
def double_fault_pair(first: int, second: int) -> bool:
    """Whether a fault of class `second` delivering class `first` makes #DF.

    SDM table 6-5: contributory->contributory, page-fault->contributory and
    page-fault->page-fault; every other pair is handled serially.
    """
    if first == CONTRIBUTORY:
        return second == CONTRIBUTORY
    if first == PAGE_FAULT_CLASS:
        return second == CONTRIBUTORY or second == PAGE_FAULT_CLASS
    return False


# --- Control-register write checks (#GP(0)) -------------------------------


def cr4_write_faults(old: int, new: int, allowed: int, cr0: int, cr3: int,
                     efer: int) -> str:
    """Reason a MOV to CR4 of `new` raises #GP(0), or "" if it does not.

    `allowed` is the mask of CR4 bits this CPU enumerates.
    """
    # rule: cr-gp
    if new & ~allowed:
        # Reserved or not enumerated (BX crregs.cc check_CR4; KVM
        # __cr4_reserved_bits).
        return "sets a reserved or unenumerated CR4 bit"
    long_mode = (efer & EFER_LMA) != 0
    # rule: cr-gp
    if long_mode and not (new & CR4_PAE):
        return "clears CR4.PAE in long mode"  # SDM Vol. 2 MOV CR; KVM
    # rule: cr-gp
    if long_mode and (old ^ new) & CR4_LA57:
        return "changes CR4.LA57 in long mode"  # SDM Vol. 2 MOV CR; KVM
    if (new & CR4_PCIDE) and not (old & CR4_PCIDE):
        # rule: cr-gp
        if not long_mode:
            return "sets CR4.PCIDE outside long mode"  # SDM Vol. 2; KVM
        # rule: cr-gp
        if cr3 & 0xFFF:
            return "sets CR4.PCIDE with CR3[11:0] != 0"  # SDM Vol. 2; KVM
    # rule: cr-gp
    if (new & CR4_CET) and not (cr0 & CR0_WP):
        return "sets CR4.CET with CR0.WP = 0"  # SDM Vol. 2; KVM kvm_set_cr4
    # rule: cr-gp, fred-delivery
    if (new & CR4_FRED) and not long_mode:
        return "sets CR4.FRED with EFER.LMA = 0"  # BX crregs.cc check_CR4
    return ""


def cr0_write_faults(old: int, new: int, cr4: int, efer: int,
                     cs32: bool) -> str:
    """Reason a MOV to CR0 of `new` raises #GP(0), or "" if it does not;
    `cs32`: CS has L = 0 (compatibility mode while EFER.LMA = 1)."""
    # rule: cr-gp
    if new >> 32:
        # Bits 63:32 are reserved, writing a 1 is #GP(0) (SDM Vol. 3A 2.5;
        # KVM kvm_set_cr0).
        return "sets a reserved CR0 bit (63:32)"
    # rule: cr-gp
    if (new & CR0_NW) and not (new & CR0_CD):
        return "sets CR0.NW with CR0.CD = 0"  # SDM Vol. 2 MOV CR; BX check_CR0
    # rule: cr-gp
    if (new & CR0_PG) and not (new & CR0_PE):
        return "sets CR0.PG with CR0.PE = 0"  # SDM Vol. 2 MOV CR; BX check_CR0
    if (efer & EFER_LMA) and (old & CR0_PG) and not (new & CR0_PG):
        # Leaving IA-32e mode: only from compatibility mode, only with
        # PCIDE = 0 (SDM Vol. 2 MOV CR, Vol. 3A 10.8.5.4; BX SetCR0).
        # rule: cr-gp, cpu-mode
        if not cs32:
            return "clears CR0.PG in 64-bit mode"
        # rule: cr-gp, cpu-mode
        if cr4 & CR4_PCIDE:
            return "clears CR0.PG with CR4.PCIDE = 1"
    if (efer & EFER_LME) and not (old & CR0_PG) and (new & CR0_PG):
        # Entering IA-32e mode needs PAE and a CS with L = 0 (SDM Vol. 3A
        # 10.8.5; BX SetCR0).
        # rule: cr-gp, cpu-mode
        if not cr4 & CR4_PAE:
            return "enables paging with EFER.LME = 1 and CR4.PAE = 0"
        # rule: cr-gp, cpu-mode
        if not cs32:
            return "enables paging with EFER.LME = 1 from a CS with L = 1"
    # rule: cr-gp
    if (cr4 & CR4_CET) and not (new & CR0_WP):
        return "clears CR0.WP with CR4.CET = 1"  # SDM Vol. 2; KVM kvm_set_cr0
    return ""


def canonical48(value: int) -> bool:
    """A 48-bit canonical address (SDM Vol. 1 3.3.7.1)."""
    top = value >> 47
    return top == 0 or top == (1 << 17) - 1


MSR_FRED_RSP0: Final = 0x1CC
MSR_FRED_RSP3: Final = 0x1CF
MSR_FRED_STKLVLS: Final = 0x1D0
MSR_FRED_SSP1: Final = 0x1D1
MSR_FRED_CONFIG: Final = 0x1D4
MSR_EFER: Final = 0xC0000080


def is_fred_msr(number: int) -> bool:
    return MSR_FRED_RSP0 <= number <= MSR_FRED_CONFIG


# rule: fred-delivery
def fred_msr_write_faults(number: int, value: int) -> str:
    """Reason a WRMSR to a FRED MSR raises #GP, or "" (BX msr.cc)."""
    if value < 0 or value >= 1 << 64:
        return "value is not a 64-bit quantity"
    if number == MSR_FRED_CONFIG:
        if value & FRED_CONFIG_RESERVED:
            return "sets a reserved FRED_CONFIG bit (mask 0x834)"
        if not canonical48(value & ~0xFFF):
            return "non-canonical FRED_CONFIG entry point"
        return ""
    if MSR_FRED_RSP0 <= number <= MSR_FRED_RSP3:
        if value & 0x3F:
            return "FRED_RSPn is not 64-byte aligned"
        if not canonical48(value):
            return "non-canonical FRED_RSPn"
        return ""
    if MSR_FRED_SSP1 <= number < MSR_FRED_CONFIG:
        if value & 0x7:
            return "FRED_SSPn bits 2:0 are reserved"
        if not canonical48(value):
            return "non-canonical FRED_SSPn"
    return ""


def fred_stack_level(stklvls: int, vector: int) -> int:
    """Stack level of an exception/NMI (FRED spec; BX fred.cc: STKLVLS[2v+1:2v])."""
    return (stklvls >> (2 * vector)) & 3


def fred_entry_page(config: int) -> int:
    """FRED entry page: CONFIG & ~0xFFF; ring-0 events enter at +256 (LX
    entry_64_fred.S; BX HEAD fred.cc)."""
    return config & ~0xFFF
