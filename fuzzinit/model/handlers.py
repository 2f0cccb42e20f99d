"""What Linux's exception handlers do once the CPU has delivered an event.

Kernel behaviour, not architecture: which entry path reaches which handler,
and whether that handler can cope (shared SEMANTICS sections 5-6). Returns
(outcome, follow-up vector): a follow-up >= 0 is a new exception the handler
itself raised, which delivery.raise_event then delivers.
"""

from typing import Final

from .arch import (
    CP,
    CR4_FSGSBASE,
    DB,
    DF,
    GP,
    MC,
    NMI,
    PF,
    UD,
    VC,
    VE,
    vector_name,
)
from .machine import (
    ALT_FSGSBASE,
    BOOT_GHCB,
    F_CR4,
    F_FLAGS,
    F_GHCB,
    FEATURE_FRED,
    FEATURE_RDPID,
    G_FLAGS,
    GHCB_PERCPU,
    GHCBS_ALLOCATED,
    GHCBS_INITIALIZED,
    HANDLED_SHIFT,
    IDT_BRINGUP,
    IDT_EARLY,
    IDT_FULL,
    R_CPUID,
    R_CR4,
    R_EXTINT,
    R_IBT_SELFTEST,
    R_MSR,
    R_PORT_IO,
    R_SEG,
    R_WARN,
    REASON_NAMES,
    SEV_SNP,
    STUB_RAN,
    TSC_AUX_GUEST,
    USER,
    VC_BOOT_GATE,
    VE_PENDING,
    VIA_FRED,
    Machine,
    kernel_has,
)
from .outcome import GUEST_TERMINATED, HANG, OK, UNHANDLED

# Runtime IDT entries that run paranoid_entry from kernel mode (LX
# arch/x86/entry/entry_64.S: idtentry_mce_db, idtentry_df, idtentry_vc,
# asm_exc_nmi).
PARANOID: Final = frozenset((DB, NMI, DF, MC, VC))


def handle(m: Machine, st: list[int], base: int, vector: int, via: int,
           reason: int, from_delivery: bool,
           chain: list[str]) -> tuple[int, int]:
    """The kernel's reaction to `vector` delivered via `via` (an IDT_* state
    or VIA_FRED); `reason` says what raised a #VC/#VE."""
    if via == VIA_FRED:
        # rule: linux-handlers
        if vector == VC and not m.fred_vc_dispatch:
            # fred_hwexc() had no X86_TRAP_VC case before 3645eb7e3915: it
            # falls to fred_bad_type() -> __die/oops (LX entry_fred.c).
            chain.append("FRED dispatcher fred_hwexc() has no #VC case"
                         " (before 3645eb7e3915): fred_bad_type() oopses")
            return UNHANDLED, -1
    # rule: linux-handlers
    elif via == IDT_FULL and vector in PARANOID and \
            not st[base + F_FLAGS] & USER:
        g = st[m.glob + G_FLAGS]
        if g & ALT_FSGSBASE and not st[base + F_CR4] & CR4_FSGSBASE:
            # Patched paranoid_entry uses RDGSBASE where the kernel had
            # X86_FEATURE_FSGSBASE when it patched (LX entry_64.S
            # paranoid_entry: ALTERNATIVE "jmp .Lparanoid_entry_checkgs", "",
            # X86_FEATURE_FSGSBASE); with CR4.FSGSBASE = 0 it is #UD (SDM
            # Vol. 2 RDGSBASE; 05243d490bb7).
            chain.append(f"{vector_name(vector)} enters paranoid_entry, whose"
                         " RDGSBASE (alternatives patched) is #UD with"
                         " CR4.FSGSBASE = 0")
            return OK, UD
        # rule: lazy-msr
        if g & ALT_FSGSBASE and m.paranoid_rdpid and \
                m.features & FEATURE_RDPID and \
                st[base + F_FLAGS] & TSC_AUX_GUEST:
            # SAVE_AND_SET_GSBASE -> GET_PERCPU_BASE: ALTERNATIVE
            # "LOAD_CPU_AND_NODE_SEG_LIMIT", "RDPID", X86_FEATURE_RDPID
            # (LX arch/x86/entry/calling.h, eaad981291ee3); RDPID returns
            # IA32_TSC_AUX (SDM Vol. 2 RDPID), which KVM leaves holding the
            # guest's value until it leaves its run loop or the task
            # returns to user mode: GSBASE = another CPU's per-CPU area,
            # "data corruption and crashes" (6a3ea3e68b8a) - taken as an
            # oops [derived].
            chain.append(f"{vector_name(vector)} enters paranoid_entry, which"
                         " takes the CPU number from RDPID: IA32_TSC_AUX"
                         " still holds a KVM guest's value, so GSBASE points"
                         " at another CPU's per-CPU area -> taken as an oops"
                         " [derived]")
            return UNHANDLED, -1
    if reason == R_EXTINT and not from_delivery:
        # An external interrupt reaches its sysvec handler through the
        # runtime IDT or FRED's fred_extint() (LX idtentry.h, entry_fred.c).
        chain.append(f"interrupt {vector} reaches its handler")
        return OK, -1
    # rule: exceptions-on-purpose
    if vector >= 32 and not from_delivery and via == IDT_FULL:
        # INT n to an interrupt vector: common_interrupt finds no irq
        # descriptor, acks the APIC and returns (LX arch/x86/kernel/irq.c
        # __common_interrupt); its pr_emerg_ratelimited is not modelled
        # [assumed]. Through FRED, fred_entry_from_kernel() has no case for
        # a software interrupt: fred_bad_type(), die() (LX entry_fred.c).
        chain.append(f"INT {vector} reaches an interrupt entry, which"
                     " returns")
        return OK, -1
    # rule: linux-handlers
    if from_delivery or vector == DF:
        # A fault raised by the CPU while delivering another event, or #DF:
        # the kernel cannot fix either (LX traps.c exc_double_fault panics;
        # a kernel-mode #GP/#PF on a bad stack or gate oopses).
        chain.append(f"{vector_name(vector)} reaches the kernel's handler, which"
                     " cannot recover from it: oops/panic")
        return UNHANDLED, -1
    # rule: ring3-scheduling
    if st[base + F_FLAGS] & USER and vector != VC and vector != VE:
        # From user mode the kernel's handlers act for the task: a signal,
        # a fixed-up page fault (even at a wrong address: do_user_addr_fault
        # kills or refaults the task), an NMI handled (LX traps.c, fault.c
        # user_mode() paths) - the kernel itself survives. #VC and #VE keep
        # the kernel's rules: their handlers need the same GHCB / VEINFO
        # whatever mode the CPU was in [assumed].
        chain.append(f"{vector_name(vector)} from user mode: the kernel"
                     " handles it for the task")
        return OK, -1
    # rule: linux-handlers
    if vector == NMI:
        # Early NMIs are ignored (LX arch/x86/mm/extable.c
        # early_fixup_exception); exc_nmi and the FRED NMI path handle them.
        return OK, -1
    if vector == PF:
        # rule: feature-flags
        if via == IDT_FULL and kernel_has(m, st, FEATURE_FRED):
            # exc_page_fault() takes the address from the FRED event data
            # whenever the kernel has X86_FEATURE_FRED, active or not (LX
            # arch/x86/mm/fault.c; a97756cbec44, 989b5cfaa7b6): an IDT frame
            # has none, so the handler works on a wrong address - an oops
            # or an endless refault [derived].
            chain.append("exc_page_fault() reads the fault address from FRED"
                         " event data (X86_FEATURE_FRED set), but the #PF"
                         " came through the IDT: it handles a wrong address")
            return UNHANDLED, -1
        # A #PF trigger stands for a fault the kernel expects: early page
        # tables (LX head64.c early_make_pgtable, which reads CR2) or the
        # runtime handler.
        return OK, -1
    # rule: machine-checks
    if vector == MC:
        if via == IDT_EARLY:
            # early_fixup_exception() has no #MC case: PANIC, halt (LX
            # arch/x86/mm/extable.c).
            chain.append("#MC in the early handler: early_fixup_exception()"
                         " prints PANIC and halts")
            return UNHANDLED, -1
        # The `mce` event stands for a machine check the kernel survives
        # (corrected or recoverable); an offline CPU just returns (LX
        # arch/x86/kernel/cpu/mce/core.c, mce_check_crashing_cpu).
        return OK, -1
    # rule: vc-handlers
    if vector == VC:
        return _vmm_communication(m, st, base, via, reason, chain)
    # rule: vc-ve-sources
    if vector == VE:
        st[base + F_FLAGS] &= ~VE_PENDING  # handlers start with VEINFO.GET
        # rule: machine-checks
        if reason == R_CR4:
            # No #VE handler emulates a CR4 write: the early one handles
            # port I/O only, virt_exception_kernel() raises #GP -> die (LX
            # arch/x86/coco/tdx/tdx.c, arch/x86/kernel/traps.c).
            chain.append("#VE (CR4 write): no handler emulates it, die()")
            return UNHANDLED, -1
        if via == IDT_EARLY and reason != R_PORT_IO:
            # tdx_early_handle_ve() handles port I/O only; early_fixup_exception
            # then halts (LX arch/x86/coco/tdx/tdx.c, arch/x86/mm/extable.c).
            chain.append(f"#VE ({REASON_NAMES[reason]}) in the early handler:"
                         " tdx_early_handle_ve() handles port I/O only")
            return UNHANDLED, -1
        return OK, -1
    # rule: bug-sites
    if vector == UD and reason >= R_WARN:
        return _bug_trap(via, reason, chain)
    # rule: cet-ibt
    if vector == CP and reason == R_IBT_SELFTEST and via != IDT_EARLY:
        # do_kernel_cp_fault() knows ibt_selftest_noendbr and returns. An
        # IDT frame keeps no WFE and IRET sets none; FRED saves WFE in the
        # frame and ERETS restores it, so the same instruction takes #CP
        # again unless the handler clears it (LX arch/x86/kernel/cet.c;
        # dc81e556f2a0; FRED spec: the saved CS's WFE bit).
        if via == VIA_FRED and not m.ibt_clear_fred_wfe:
            chain.append("do_kernel_cp_fault() returns from the selftest's"
                         " #CP, but ERETS restores WFE from the FRED frame:"
                         " #CP again at ibt_selftest_noendbr, forever")
            return HANG, -1
        return OK, -1
    # rule: cet-ibt
    if vector == CP:
        # Kernel-mode #CP(ENDBRANCH): "Missing ENDBR", BUG() unless booted
        # with ibt=warn (LX arch/x86/kernel/cet.c do_kernel_cp_fault); the
        # early handler has no #CP case and halts (mm/extable.c).
        chain.append("#CP (missing ENDBR): exc_control_protection() BUG()s"
                     " (ibt=warn, which continues, is not modelled)"
                     if via != IDT_EARLY else
                     "#CP in the early handler: early_fixup_exception()"
                     " halts")
        return UNHANDLED, -1
    # rule: gdt
    if vector == GP and reason == R_SEG:
        # loadsegment()'s exception-table entry (EX_TYPE_ZERO_REG) loads
        # the null selector instead (LX asm/segment.h, mm/extable.c).
        return OK, -1
    # rule: msrs
    if vector == GP and reason == R_MSR:
        # rdmsr()/wrmsr() carry an exception-table entry: fixup_exception()
        # -> ex_handler_msr() skips the instruction (LX arch/x86/mm/extable.c;
        # the early handler calls it too: early_fixup_exception).
        return OK, -1
    # #UD, #GP and the rest from kernel code with no fixup: die() (LX traps.c).
    # rule: linux-handlers
    chain.append(f"{vector_name(vector)} in kernel code with no fixup: die()")
    return UNHANDLED, -1


# rule: idt-tables
def stub_handler(m: Machine, st: list[int], base: int, vector: int,
                 chain: list[str]) -> int:
    """The handler of an explicit table's gate (`lidt gates ...`): it
    records that it ran and returns to the op after the one that raised
    the event - an architectural probe, no Linux behaviour."""
    chain.append(f"{vector_name(vector)} handled by the stub at gate"
                 f" {vector}, which returns")
    st[base + F_FLAGS] |= 1 << (HANDLED_SHIFT + vector)
    st[m.glob + G_FLAGS] |= STUB_RAN
    return OK


# rule: bug-sites
def _bug_trap(via: int, reason: int, chain: list[str]) -> tuple[int, int]:
    """A UD2 from a WARN, BUG or kCFI site, delivered. Runtime IDT and FRED:
    handle_bug() -> report_bug() continues after a WARN, a BUG or a kCFI
    failure dies (LX arch/x86/kernel/traps.c; kernel/cfi.c without
    CFI_PERMISSIVE). Early IDT: early_fixup_exception() skips a WARN's
    UD2 and halts on anything else; it never asks the kCFI reporter (LX
    arch/x86/mm/extable.c, 15a416e8aaa7)."""
    if reason == R_WARN:
        return OK, -1
    name = REASON_NAMES[reason]
    if via == IDT_EARLY:
        chain.append(f"#UD ({name}) in the early handler:"
                     " early_fixup_exception() prints PANIC and halts")
    else:
        chain.append(f"#UD ({name}): handle_bug() does not continue,"
                     " die() (oops)")
    return UNHANDLED, -1


# rule: vc-handlers
def terminate(m: Machine, chain: list[str]) -> tuple[int, int]:
    """sev_es_terminate(): a GHCB TERM request; if the hypervisor returns,
    the guest HLTs forever (LX arch/x86/boot/startup/sev-shared.c)."""
    if m.terminated == HANG:
        chain.append("the hypervisor ignores the termination request:"
                     " sev_es_terminate() HLTs forever")
    return m.terminated, -1


# rule: vc-handlers
def _vmm_communication(m: Machine, st: list[int], base: int, via: int,
                       reason: int, chain: list[str]) -> tuple[int, int]:
    g = st[m.glob + G_FLAGS]
    if via == IDT_BRINGUP and not st[base + F_FLAGS] & VC_BOOT_GATE:
        # vc_no_ghcb: the GHCB MSR protocol serves CPUID only, anything else
        # terminates (LX arch/x86/boot/startup/sev-shared.c do_vc_no_ghcb).
        if reason == R_CPUID:
            return OK, -1
        chain.append(f"#VC ({REASON_NAMES[reason]}) reaches vc_no_ghcb,"
                     " which serves CPUID only: sev_es_terminate()")
        return terminate(m, chain)
    boot_handler = via == IDT_EARLY or (via == IDT_BRINGUP
                                        and not g & GHCBS_ALLOCATED)
    if boot_handler:
        # vc_boot_ghcb / do_early_exception -> handle_vc_boot_ghcb(), which
        # uses boot_ghcb and terminates on failure (LX coco/sev).
        if g & BOOT_GHCB:
            return OK, -1
        # No lazy set-up since the SNP series (v5.19): vc_ghcb_invalidate(
        # boot_ghcb) writes through NULL (LX coco/sev/vc-handle.c).
        chain.append("#VC reaches handle_vc_boot_ghcb() before setup_ghcb():"
                     " it writes through the NULL boot_ghcb -> #PF")
        if via == IDT_EARLY:
            # do_early_exception(): early_make_pgtable() maps no such
            # address, early_fixup_exception() halts (LX head64.c,
            # arch/x86/mm/extable.c).
            chain.append("#PF in the early handler: early_make_pgtable()"
                         " cannot map it, early_fixup_exception() halts")
            return UNHANDLED, -1
        return OK, PF
    # kernel_exc_vmm_communication -> __sev_get_ghcb() (LX coco/sev/core.c).
    if m.boot_ghcb_fallback and not g & GHCBS_INITIALIZED:
        # 3645eb7e3915: `if (!sev_cfg.ghcbs_initialized) return boot_ghcb;`
        # - set by the first setup_ghcb() once the per-CPU GHCBs exist.
        if g & BOOT_GHCB:
            return OK, -1
        chain.append("#VC falls back to the boot GHCB, which is not set"
                     " up: sev_es_terminate()")
        return terminate(m, chain)
    if not g & GHCBS_ALLOCATED:
        chain.append("kernel #VC handler runs before sev_es_init_vc_handling()"
                     " allocated the per-CPU GHCBs: __sev_get_ghcb()"
                     " dereferences unallocated runtime_data (before"
                     " 3645eb7e3915)")
        return UNHANDLED, -1
    if m.platform == SEV_SNP and st[base + F_GHCB] != GHCB_PERCPU:
        # On SNP the per-CPU GHCB must be registered by setup_ghcb() on this
        # CPU first (LX coco/sev/core.c snp_register_per_cpu_ghcb).
        chain.append("#VC on SEV-SNP uses this CPU's per-CPU GHCB before"
                     " setup_ghcb() registered it: the hypervisor terminates"
                     " the guest")
        return GUEST_TERMINATED, -1
    return OK, -1
