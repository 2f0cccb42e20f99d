"""Linux CR pinning and the kernel's CR write helpers (LX
arch/x86/kernel/cpu/common.c; shared SEMANTICS section 5)."""

from .arch import (
    CR0_IGNORED,
    CR0_PG,
    CR0_WP,
    CR4_MCE,
    CR4_PCIDE,
    CR4_PGE,
    EFER_LMA,
    EFER_LME,
    GP,
    VE,
    cr0_write_faults,
    cr4_write_faults,
)
from .delivery import raise_event
from .machine import (
    CS32,
    F_CR0,
    F_CR3,
    F_CR4,
    F_EFER,
    F_FLAGS,
    FEATURE_PCID,
    G_FLAGS,
    G_KEY,
    G_PINNED_BITS,
    ONLINE,
    PIN_ONLINE,
    R_CR4,
    R_NONE,
    TDX,
    WARNED_CR0,
    WARNED_CR4,
    WARNED_CR4_INIT,
    Machine,
    kernel_has,
)
from .outcome import OK
from .paging import flush_all
from .platform import printk


def mov_cr4(m: Machine, st: list[int], base: int, value: int,
            chain: list[str]) -> int:
    """A raw MOV to CR4: #GP(0) on an illegal value (SDM Vol. 2; KVM; BX)."""
    # rule: machine-checks
    if m.platform == TDX and st[base + F_CR4] & CR4_MCE and \
            not value & CR4_MCE:
        # The TDX module keeps CR4.MCE set: clearing it is #VE (LX
        # de60613173df, 77a512e35db7; TDX module CR4 guest/host mask).
        chain.append("MOV to CR4 clears CR4.MCE in a TDX guest -> #VE")
        return raise_event(m, st, base, VE, False, R_CR4, chain)
    why = cr4_write_faults(st[base + F_CR4], value, m.cr4_allowed,
                           st[base + F_CR0], st[base + F_CR3],
                           st[base + F_EFER])
    # rule: cr-gp
    if why:
        chain.append(f"MOV to CR4 {why} -> #GP(0)")
        return raise_event(m, st, base, GP, False, R_NONE, chain)
    old = st[base + F_CR4]
    st[base + F_CR4] = value
    # rule: memory-regions
    if (old ^ value) & CR4_PGE or old & ~value & CR4_PCIDE:
        flush_all(st, base)   # global TLB entries too (SDM Vol. 3A 4.10.4.1)
    return OK


def mov_cr0(m: Machine, st: list[int], base: int, value: int,
            chain: list[str]) -> int:
    """A raw MOV to CR0: #GP(0) on an illegal value (SDM Vol. 2; KVM; BX)."""
    old = st[base + F_CR0]
    efer = st[base + F_EFER]
    why = cr0_write_faults(old, value, st[base + F_CR4], efer,
                           (st[base + F_FLAGS] & CS32) != 0)
    # rule: cr-gp
    if why:
        chain.append(f"MOV to CR0 {why} -> #GP(0)")
        return raise_event(m, st, base, GP, False, R_NONE, chain)
    # rule: cr-gp
    st[base + F_CR0] = value & ~CR0_IGNORED
    # rule: memory-regions
    if (old ^ value) & CR0_PG:
        # SDM Vol. 3A 4.10.4.1: clearing PG drops every entry, global ones
        # too (that bullet as remembered, not re-read; with PG = 0 the TLB
        # is not used, so setting it finds none either).
        flush_all(st, base)
    # rule: cpu-mode
    if (old ^ value) & CR0_PG and efer & EFER_LME:
        # Paging on with LME activates IA-32e mode, paging off leaves it
        # (SDM Vol. 3A 10.8.5, 10.8.5.4: EFER.LMA follows).
        st[base + F_EFER] = efer | EFER_LMA if value & CR0_PG else \
            efer & ~EFER_LMA
    return OK


def pinning_active(m: Machine, st: list[int], base: int) -> bool:
    """The static key; the rejected tip cccc0c8ff0a9 also required this CPU to
    be online (cr_pinning_enabled())."""
    if not st[m.glob + G_KEY]:
        return False
    # rule: cr-pinning
    return m.pin_gate != PIN_ONLINE or (st[base + F_FLAGS] & ONLINE) != 0


def native_write_cr4(m: Machine, st: list[int], base: int, value: int,
                     chain: list[str], warnings: list[str]) -> int:
    """Write CR4 first, then force every pinned bit back and WARN_ONCE."""
    outcome = mov_cr4(m, st, base, value, chain)
    if outcome != OK or not pinning_active(m, st, base):
        return outcome
    # rule: cr-pinning
    pinned = st[m.glob + G_PINNED_BITS]
    if value & m.pinned_mask == pinned:
        return OK
    # rule: cr-pinning
    changed = (value & m.pinned_mask) ^ pinned
    outcome = mov_cr4(m, st, base, (value & ~m.pinned_mask) | pinned, chain)
    if outcome != OK:
        return outcome
    g = st[m.glob + G_FLAGS]
    if g & WARNED_CR4:
        return OK
    # rule: cr-pinning
    st[m.glob + G_FLAGS] = g | WARNED_CR4
    warnings.append(f"pinned CR4 bits changed: 0x{changed:x}!?")
    return printk(m, st, base, "WARN_ONCE(pinned CR4 bits changed)", chain)


def native_write_cr0(m: Machine, st: list[int], base: int, value: int,
                     chain: list[str], warnings: list[str]) -> int:
    """Write CR0 first, then force CR0.WP back on and WARN_ONCE."""
    outcome = mov_cr0(m, st, base, value, chain)
    if outcome != OK or not pinning_active(m, st, base) or value & CR0_WP:
        return outcome
    # rule: cr-pinning
    outcome = mov_cr0(m, st, base, value | CR0_WP, chain)
    if outcome != OK:
        return outcome
    g = st[m.glob + G_FLAGS]
    if g & WARNED_CR0:
        return OK
    # rule: cr-pinning
    st[m.glob + G_FLAGS] = g | WARNED_CR0
    warnings.append("CR0 WP bit went missing!?")
    return printk(m, st, base, "WARN_ONCE(CR0 WP bit went missing)", chain)


def cr4_init(m: Machine, st: list[int], base: int, chain: list[str],
             warnings: list[str]) -> int:
    """cr4_init(): PCIDE if PCID, then the pinned bits if the key is on; the
    rejected cccc0c8ff0a9 replaced the pinned-bit step by a WARN_ON_ONCE."""
    cr4 = st[base + F_CR4]
    # rule: feature-flags
    if kernel_has(m, st, FEATURE_PCID):   # boot_cpu_has(X86_FEATURE_PCID)
        cr4 |= CR4_PCIDE
    # rule: cr-pinning
    if m.pin_gate == PIN_ONLINE:
        outcome = _cr4_init_warn(m, st, base, chain, warnings)
        if outcome != OK:
            return outcome
    # rule: cr-pinning
    elif st[m.glob + G_KEY]:
        cr4 = (cr4 & ~m.pinned_mask) | st[m.glob + G_PINNED_BITS]
    return native_write_cr4(m, st, base, cr4, chain, warnings)


def _cr4_init_warn(m: Machine, st: list[int], base: int, chain: list[str],
                   warnings: list[str]) -> int:
    """tip cccc0c8ff0a9 cr4_init(): WARN_ON_ONCE(cr_pinning_enabled()),
    before __write_cr4(); the WARN is console output."""
    g = st[m.glob + G_FLAGS]
    if g & WARNED_CR4_INIT or not pinning_active(m, st, base):
        return OK
    # rule: cr-pinning
    st[m.glob + G_FLAGS] = g | WARNED_CR4_INIT
    warnings.append("cr4_init() with CR pinning in force:"
                    " WARN_ON_ONCE(cr_pinning_enabled())")
    return printk(m, st, base, "WARN_ON_ONCE(cr_pinning_enabled())", chain)


# rule: cr-pinning
def setup_cr_pinning(m: Machine, st: list[int], base: int) -> None:
    """cr4_pinned_bits = this CPU's CR4 & mask, then enable the key."""
    st[m.glob + G_PINNED_BITS] = st[base + F_CR4] & m.pinned_mask
    st[m.glob + G_KEY] = 1
