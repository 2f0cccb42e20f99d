"""The reference model's entry points: `initial_state`, `step` and `run`.

A pure, deterministic function of (Machine, events): no I/O, no randomness.
Every engine (hypothesis, atheris, the minimiser, replay) drives these.
"""

from .arch import (
    CR0_PE,
    CR0_PG,
    CR0_WP,
    CR4_FSGSBASE,
    EFER_LMA,
    EFER_LME,
    EFER_NXE,
    EFER_SCE,
    GP,
    MSR_EFER,
    MSR_FRED_CONFIG,
    MSR_FRED_RSP0,
    MSR_FRED_STKLVLS,
    NMI,
    PF,
    UD,
    fred_msr_write_faults,
    is_fred_msr,
)
from .delivery import raise_event
from .machine import (
    ALT_PATCHED,
    CLEAR_ONLINE,
    CONSOLE_INIT,
    CONSOLE_ON,
    CPUID,
    CR0_CLEAR,
    CR0_SET,
    CR4_CLEAR,
    CR4_GADGET,
    CR4_INIT,
    CR4_SET,
    F_CR0,
    F_CR3,
    F_CR4,
    F_EFER,
    F_FLAGS,
    F_FRED_CONFIG,
    F_FRED_RSP0,
    F_FRED_STKLVLS,
    F_IDT,
    F_TSS,
    FEATURE_FRED,
    G_FLAGS,
    G_KEY,
    G_PINNED_BITS,
    GHCBS_ALLOCATED,
    LIDT,
    LTR,
    MMIO,
    MOV_CR0,
    MOV_CR3,
    MOV_CR4,
    NF,
    NG,
    NMI_BLOCKED,
    NMI_EVENT,
    NOP,
    ONLINE,
    ONLINE_OP,
    PATCH_ALTERNATIVES,
    PF_EVENT,
    PORT_IO,
    PRINTK,
    R_CPUID,
    R_MMIO,
    R_MSR,
    R_NONE,
    R_PORT_IO,
    RDGSBASE,
    RDMSR,
    SETUP_CR_PINNING,
    SETUP_GHCB,
    SEV_ES_INIT_VC_HANDLING,
    START,
    STARTED,
    TDX,
    TSS_SETUP_IST,
    VC_BOOT_GATE,
    VE_INFO,
    VE_PENDING,
    WAIT_ONLINE,
    WRMSR,
    Machine,
)
from .outcome import INVALID, OK, PIN_CLEARED, WARN, Result
from .pinning import (
    cr4_init,
    mov_cr0,
    mov_cr4,
    native_write_cr0,
    native_write_cr4,
    setup_cr_pinning,
)
from .platform import intercepted, printk, setup_ghcb

# Long mode as the kernel's 64-bit entry finds it: protected mode, paging
# and WP on (head_64.S CR0_STATE), EFER LME/LMA/NX/SCE; CR4 from the
# scenario (an AP gets it through the u32 trampoline field, so bit 32 never
# arrives that way: LX arch/x86/realmode/init.c trampoline_cr4_features).
ENTRY_CR0 = CR0_PE | CR0_WP | CR0_PG
ENTRY_EFER = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE

# IST slots tss_setup_ist() fills: DF, NMI, DB, MCE, VC (LX cpu/common.c).
IST_SLOTS_SET = 0b111110


def enter_long_mode(m: Machine, st: list[int], base: int) -> None:
    st[base + F_CR0] = ENTRY_CR0
    st[base + F_CR4] = m.entry_cr4
    st[base + F_EFER] = ENTRY_EFER
    st[base + F_FLAGS] |= STARTED


def initial_state(m: Machine) -> list[int]:
    """CPU 0 (the boot CPU) is running and online (LX boot_cpu_init); every
    other CPU waits for `start`."""
    st = [0] * (m.ncpu * NF + NG)
    enter_long_mode(m, st, 0)
    st[F_FLAGS] |= ONLINE
    if m.console_at_boot:
        st[m.glob + G_FLAGS] |= CONSOLE_ON
    return st


def step(m: Machine, st: list[int], cpu: int, op: int, chain: list[str],
         warnings: list[str]) -> int:
    """Apply one event; return OK, a failing outcome, or INVALID. With the
    security property on, a step that clears a pinned CR4 bit while
    pinning is on ends in PIN_CLEARED."""
    if not m.pin_property:
        return _apply(m, st, cpu, op, chain, warnings)
    before = st[cpu * NF + F_CR4]
    outcome = _apply(m, st, cpu, op, chain, warnings)
    if outcome == OK:
        lost = pinned_cleared(m, st, cpu, before)
        if lost:
            chain.append(f"pinned CR4 bits 0x{lost:x} cleared on cpu{cpu}"
                         " while CR pinning is on")
            return PIN_CLEARED
    return outcome


def _apply(m: Machine, st: list[int], cpu: int, op: int, chain: list[str],
           warnings: list[str]) -> int:
    base = cpu * NF
    flags = st[base + F_FLAGS]
    if not flags & STARTED:
        chain.append(f"cpu{cpu} runs before it is started")
        return INVALID
    kind = m.op_kind[op]
    a = m.op_a[op]
    if kind == PRINTK:
        return printk(m, st, base, "console output", chain)
    if kind == CR4_SET or kind == CR4_CLEAR:
        # cr4_update_irqsoff() writes only when the value changes (LX
        # arch/x86/mm/tlb.c): no write, no pinning fix-up, no WARN.
        cr4 = st[base + F_CR4]
        new = cr4 | a if kind == CR4_SET else cr4 & ~a
        if new == cr4:
            return OK
        return native_write_cr4(m, st, base, new, chain, warnings)
    if kind == CR4_INIT:
        return cr4_init(m, st, base, chain, warnings)
    if kind == WRMSR:
        return _wrmsr(m, st, base, a, m.op_b[op], chain)
    if kind == RDMSR:
        return _rdmsr(m, st, base, a, chain)
    if kind == LIDT:
        # `lidt bringup_ghcb`: the bringup IDT once early_setup_idt() has
        # pointed #VC at vc_boot_ghcb (LX head64.c).
        st[base + F_IDT] = a
        st[base + F_FLAGS] = (flags & ~VC_BOOT_GATE) | \
            (VC_BOOT_GATE if m.op_b[op] else 0)
        return OK
    if kind == SETUP_GHCB:
        setup_ghcb(m, st, base)
        return OK
    if kind == START:
        target = a * NF
        if st[target + F_FLAGS] & STARTED:
            chain.append(f"cpu{a} is started twice")
            return INVALID
        enter_long_mode(m, st, target)
        return OK
    if kind == ONLINE_OP:
        st[base + F_FLAGS] = flags | ONLINE
        return OK
    if kind == WAIT_ONLINE:
        if not st[a * NF + F_FLAGS] & ONLINE:
            chain.append(f"cpu{cpu} waits for cpu{a}, which is not online")
            return INVALID
        return OK
    if kind == NMI_EVENT:
        if flags & NMI_BLOCKED or (m.platform == TDX and flags & VE_PENDING):
            # Blocked NMIs stay pending (SDM 6.7.1); the TDX module withholds
            # NMIs while #VE info is unread (TDX module td_nmi_exit).
            return OK
        chain.append("NMI arrives")
        st[base + F_FLAGS] = flags | NMI_BLOCKED
        outcome = raise_event(m, st, base, NMI, True, 0, chain)
        # The handler's IRET/ERETS unblocks NMIs again (SDM 6.7.1; FRED).
        st[base + F_FLAGS] &= ~NMI_BLOCKED
        return outcome
    if kind == PF_EVENT:
        chain.append("#PF raised")
        return raise_event(m, st, base, PF, False, R_NONE, chain)
    if kind == CPUID:
        return intercepted(m, st, base, R_CPUID, "CPUID", chain)
    if kind == PORT_IO:
        return intercepted(m, st, base, R_PORT_IO, "IN/OUT", chain)
    if kind == MMIO:
        return intercepted(m, st, base, R_MMIO, "MMIO access", chain)
    if kind == RDGSBASE:
        if st[base + F_CR4] & CR4_FSGSBASE:
            return OK
        # RDGSBASE with CR4.FSGSBASE = 0 is #UD (SDM Vol. 2 RDFSBASE/RDGSBASE).
        chain.append("RDGSBASE with CR4.FSGSBASE = 0 -> #UD")
        return raise_event(m, st, base, UD, False, R_NONE, chain)
    if kind == VE_INFO:
        # TDG.VP.VEINFO.GET clears VE_INFO.valid (TDX module
        # tdg_vp_veinfo_get.c).
        st[base + F_FLAGS] = flags & ~VE_PENDING
        return OK
    if kind == MOV_CR4:
        return mov_cr4(m, st, base, (st[base + F_CR4] | a) & ~m.op_b[op],
                       chain)
    if kind == MOV_CR0:
        return mov_cr0(m, st, base, (st[base + F_CR0] | a) & ~m.op_b[op],
                       chain)
    if kind == MOV_CR3:
        st[base + F_CR3] = a & 0xFFF
        return OK
    if kind == CR0_SET:
        return native_write_cr0(m, st, base, st[base + F_CR0] | a, chain,
                                warnings)
    if kind == CR0_CLEAR:
        return native_write_cr0(m, st, base, st[base + F_CR0] & ~a, chain,
                                warnings)
    if kind == SETUP_CR_PINNING:
        setup_cr_pinning(m, st, base)
        return OK
    if kind == LTR:
        st[base + F_TSS] |= 1
        return OK
    if kind == TSS_SETUP_IST:
        st[base + F_TSS] |= IST_SLOTS_SET
        return OK
    if kind == SEV_ES_INIT_VC_HANDLING:
        if m.sev:
            st[m.glob + G_FLAGS] |= GHCBS_ALLOCATED
        return OK
    if kind == PATCH_ALTERNATIVES:
        st[m.glob + G_FLAGS] |= ALT_PATCHED
        return OK
    if kind == CLEAR_ONLINE:
        # cpu_online_mask is ordinary kernel data: an attacker with a write
        # primitive can clear a bit (LX tip cccc0c8ff0a9 review).
        st[base + F_FLAGS] = flags & ~ONLINE
        return OK
    if kind == CR4_GADGET:
        # A ROP jump to the MOV to CR4 inside native_write_cr4(): the write
        # happens, then the function's own pinning check runs (LX
        # common.c; the a3e93cac2531 comment on why that check must follow
        # the MOV unconditionally).
        return native_write_cr4(m, st, base, (st[base + F_CR4] | a)
                                & ~m.op_b[op], chain, warnings)
    if kind == CONSOLE_INIT:
        st[m.glob + G_FLAGS] |= CONSOLE_ON
        return OK
    if kind == NOP:
        return OK
    chain.append(f"unknown op kind {kind}")
    return INVALID


def _wrmsr(m: Machine, st: list[int], base: int, msr: int, value: int,
           chain: list[str]) -> int:
    if msr in m.intercepted_msrs:
        outcome = intercepted(m, st, base, R_MSR, "WRMSR", chain)
        if outcome != OK:
            return outcome
    if is_fred_msr(msr):
        why = ("FRED is not enumerated" if not m.features & FEATURE_FRED
               else fred_msr_write_faults(msr, value))
        if why:
            # WRMSR to a missing MSR or with a bad value: #GP (BX msr.cc).
            chain.append(f"WRMSR 0x{msr:x}: {why} -> #GP")
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        if msr == MSR_FRED_CONFIG:
            st[base + F_FRED_CONFIG] = value
        elif msr == MSR_FRED_STKLVLS:
            st[base + F_FRED_STKLVLS] = value
        elif msr < MSR_FRED_STKLVLS:
            st[base + F_FRED_RSP0 + msr - MSR_FRED_RSP0] = value
        return OK
    if msr == MSR_EFER:
        old = st[base + F_EFER]
        new = (value & ~EFER_LMA) | (old & EFER_LMA)  # LMA is read-only
        if (old ^ new) & EFER_LME and st[base + F_CR0] & CR0_PG:
            # Changing LME with paging on: #GP (SDM Vol. 3A 10.8.5; BX msr.cc).
            chain.append("WRMSR EFER changes LME with paging on -> #GP")
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        st[base + F_EFER] = new
    return OK


def _rdmsr(m: Machine, st: list[int], base: int, msr: int,
           chain: list[str]) -> int:
    if msr in m.intercepted_msrs:
        outcome = intercepted(m, st, base, R_MSR, "RDMSR", chain)
        if outcome != OK:
            return outcome
    if is_fred_msr(msr) and not m.features & FEATURE_FRED:
        chain.append(f"RDMSR 0x{msr:x}: FRED is not enumerated -> #GP")
        return raise_event(m, st, base, GP, False, R_NONE, chain)
    return OK


def pinned_cleared(m: Machine, st: list[int], cpu: int, before: int) -> int:
    """Pinned CR4 bits this step cleared on `cpu` while the key was on."""
    if not st[m.glob + G_KEY]:
        return 0
    return before & ~st[cpu * NF + F_CR4] & st[m.glob + G_PINNED_BITS]


def run(m: Machine, ev_cpu: list[int], ev_op: list[int]) -> Result:
    """Run one ordering from the initial state to its outcome."""
    st = initial_state(m)
    chain: list[str] = []
    warnings: list[str] = []
    warn_at = -1
    for i in range(len(ev_cpu)):
        cpu = ev_cpu[i]
        op = ev_op[i]
        nwarn = len(warnings)
        outcome = step(m, st, cpu, op, chain, warnings)
        if outcome != OK:
            return Result(outcome, i, [f"cpu{cpu}: {m.op_text[op]}"] + chain,
                          warnings)
        if len(warnings) != nwarn:
            warn_at = i  # the last WARN: the core must keep every one
        if chain:
            chain.clear()
    if warnings:
        return Result(WARN, warn_at, [f"WARN: {w}" for w in warnings],
                      warnings)
    return Result(OK, -1, [], warnings)


