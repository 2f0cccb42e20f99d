"""The int-packed state layout and the compiled scenario the model runs on.

State is one flat `list[int]`: NF fields per CPU, then the globals. Engines
copy it (`list(state)`) or freeze it (`tuple(state)`) as they need; the model
never allocates rich objects per step.
"""

from typing import Final

from .outcome import GUEST_TERMINATED as TERMINATED_OUTCOME
from .outcome import HANG as HANG_OUTCOME

# --- per-CPU fields ------------------------------------------------------------
F_CR0: Final = 0
F_CR3: Final = 1          # CR3[11:0] only: the PCID/flags bits
F_CR4: Final = 2
F_EFER: Final = 3
F_FRED_CONFIG: Final = 4
F_FRED_STKLVLS: Final = 5
F_FRED_RSP0: Final = 6    # RSP0..RSP3 are fields 6..9
F_IDT: Final = 10
F_TSS: Final = 11         # bit 0: TR loaded; bit k (1..7): IST slot k set
F_GHCB: Final = 12
F_FLAGS: Final = 13
F_MMU: Final = 14         # paging.py: the loaded page table (bits 0-3) and
#                           the global TLB entries left by earlier CR3s
F_LIFE: Final = 15        # life.py: where an offline CPU is parked, and the
#                           kernel image its code, IDT and FRED entry are in
F_PERCPU: Final = 16      # kernel per-CPU variables (PERCPU_* bits): memory,
#                           not registers - INIT and offline keep them
NF: Final = 17

# F_PERCPU bits
PERCPU_FRED_RSP0: Final = 1 << 0   # fred_rsp0 (fe85ee391966) caches the top
#                                    of the current task's stack

# F_IDT values: these named IDTs, or (8 and up) an explicit table packed
# by idt_table.py (`lidt gates ...`)
IDT_NONE: Final = 0       # reset IDTR (base 0, limit 0xFFFF): no valid gate
IDT_BRINGUP: Final = 1    # bringup_idt_table: only #VC (SEV-ES guests)
IDT_EARLY: Final = 2      # boot CPU's early handlers (do_early_exception)
IDT_FULL: Final = 3       # runtime IDT (idt_table)
IDT_NULL: Final = 4       # idt_invalidate(): base 0, limit 0
IDT_REAL: Final = 5       # real_mode_idt: base 0, limit 0x3ff (the IVT)
IDT_NAMES: Final[tuple[str, ...]] = ("none", "bringup", "early", "full", "null",
                                     "real")

# F_GHCB values
GHCB_NONE: Final = 0
GHCB_BOOT: Final = 1      # this CPU set up the boot GHCB
GHCB_PERCPU: Final = 2    # this CPU's per-CPU GHCB is set up (registered on SNP)
GHCB_NAMES: Final[tuple[str, ...]] = ("none", "boot", "per-cpu")

# F_FLAGS bits
STARTED: Final = 1 << 0
ONLINE: Final = 1 << 1
NMI_BLOCKED: Final = 1 << 2
VE_PENDING: Final = 1 << 3     # TDX: #VE info not yet read (VEINFO.GET)
VC_BOOT_GATE: Final = 1 << 4   # bringup IDT's #VC gate -> vc_boot_ghcb
UCODE: Final = 1 << 5          # this CPU runs the updated microcode
CS32: Final = 1 << 6           # CS is a code segment with L = 0 (`ljmp cs32`):
#                                compatibility mode while EFER.LMA = 1
GDT_NULL: Final = 1 << 7       # GDTR limit 0 (native_gdt_invalidate, `lgdt null`)
IBT_ON: Final = 1 << 8         # IA32_S_CET.ENDBR_EN: supervisor IBT tracking
AC_SET: Final = 1 << 9         # EFLAGS.AC (STAC): LASS lets data accesses pass
APIC_EXTD: Final = 1 << 10     # IA32_APIC_BASE.EXTD: x2APIC mode (apic.py)
APIC_OFF: Final = 1 << 11      # IA32_APIC_BASE.EN = 0: APIC globally disabled
USER: Final = 1 << 12          # CPL 3 (`exit_to_user` .. `syscall`: ops_user.py)
SS_KERNEL: Final = 1 << 13     # SS holds __KERNEL_DS, not the null selector
#                                the boot leaves (723edbd2ca5f)
TSC_AUX_GUEST: Final = 1 << 14  # IA32_TSC_AUX holds a KVM guest's value,
#                                not this CPU's number (`wrmsr TSC_AUX guest`)
FRAME_OPEN: Final = 1 << 16    # an interrupt's handler scheduled away; its
#                                frame waits for `event_return`
FRAME_FRED: Final = 1 << 17    # ... delivered through FRED (ERETS returns)
FRAME_SS_KERNEL: Final = 1 << 18  # ... and saved SS = __KERNEL_DS
# Bits HANDLED_SHIFT + v: the stub handler of vector v ran on this CPU
# (explicit tables only, so the bits stay clear in Linux scenarios).
HANDLED_SHIFT: Final = 24

# --- globals (after the CPUs) -----------------------------------------------
G_KEY: Final = 0               # static key cr_pinning enabled
G_PINNED_BITS: Final = 1       # cr4_pinned_bits
G_FLAGS: Final = 2
G_GONE: Final = 3              # life.py: images whose memory is overwritten
NG: Final = 4

ALT_PATCHED: Final = 1 << 0    # alternative_instructions() has run
GHCBS_ALLOCATED: Final = 1 << 1  # sev_es_init_vc_handling(): per-CPU GHCBs,
#                                  initial_vc_handler = kernel_exc_vmm_communication
BOOT_GHCB: Final = 1 << 2      # boot_ghcb set up by setup_ghcb() on the BSP
WARNED_CR4: Final = 1 << 3     # WARN_ONCE in native_write_cr4 fired
WARNED_CR0: Final = 1 << 4     # WARN_ONCE in native_write_cr0 fired
CONSOLE_ON: Final = 1 << 5     # a console is registered (console_init)
GHCBS_INITIALIZED: Final = 1 << 6  # sev_cfg.ghcbs_initialized: a setup_ghcb()
#                                    ran after the per-CPU GHCBs existed
WARNED_CR4_INIT: Final = 1 << 7  # WARN_ON_ONCE in cr4_init fired (the
#                                  online-gated pinning of cccc0c8ff0a9)
WARNED_RDMSR: Final = 1 << 8   # ex_handler_msr's pr_warn_once, RDMSR
WARNED_WRMSR: Final = 1 << 9   # the same for WRMSR
STUB_RAN: Final = 1 << 10      # a stub handler ran (run() then reads which)
ALT_FSGSBASE: Final = 1 << 11  # alternatives were patched while the kernel
#                                had X86_FEATURE_FSGSBASE: paranoid_entry uses
#                                RDGSBASE (entry_64.S ALTERNATIVE)
# Bits CAP_CLEARED_SHIFT + i: the kernel cleared X86_FEATURE_<arch.FEATURES[i]>
# (setup_clear_cpu_cap(), a command-line option): the feature bit of
# Machine.features shifted left by this much (kernel_has()).
CAP_CLEARED_SHIFT: Final = 16

# --- platforms --------------------------------------------------------------------
BARE: Final = 0
SEV_ES: Final = 1
SEV_SNP: Final = 2
TDX: Final = 3
PLATFORMS: Final[tuple[str, ...]] = ("bare", "sev-es", "sev-snp", "tdx")

# Machine.apic, `platform.apic`: the mode firmware left every CPU's local
# APIC in, and what the CPU allows (apic.APIC_MODES)
APIC_XAPIC: Final = 0          # xAPIC mode (EN = 1, EXTD = 0)
APIC_X2APIC: Final = 1         # x2APIC mode (EN = 1, EXTD = 1)
APIC_LOCKED: Final = 2         # x2APIC mode, locked: IA32_XAPIC_DISABLE_STATUS
#                                .LEGACY_XAPIC_DISABLED (LX msr-index.h)
APIC_XAPIC_ONLY: Final = 3     # xAPIC mode, no x2APIC (CPUID.1:ECX[21] = 0)

# --- kernel policy knobs ----------------------------------------------------------
PIN_STATIC_KEY: Final = 0      # upstream: the static key alone
PIN_ONLINE: Final = 1          # rejected tip cccc0c8ff0a9: key && cpu_online()

class Machine:
    """A scenario compiled to flat tables: everything `run` reads but never
    writes. Ops are rows of (kind, a, b, text); events name a CPU and a row."""

    def __init__(self, ncpu: int, platform: int, cr4_allowed: int,
                 features: int, pinned_mask: int, pin_gate: int,
                 fred_vc_dispatch: bool, boot_ghcb_fallback: bool,
                 console_port_io: bool, console_anytime: bool,
                 console_at_boot: bool, terminate_hangs: bool,
                 ibt_clear_fred_wfe: bool,
                 pin_property: bool,
                 entry_cr4: int, intercepted_msrs: list[int],
                 absent_msrs: list[int], microcode_msrs: list[int],
                 readonly_msrs: list[int],
                 page_tables: list[int], page_globals: list[int],
                 cr3_start: int,
                 op_kind: list[int], op_a: list[int], op_b: list[int],
                 op_text: list[str], apic: int = APIC_XAPIC,
                 paranoid_rdpid: bool = False) -> None:
        self.ncpu = ncpu
        self.platform = platform
        self.cr4_allowed = cr4_allowed
        self.features = features
        self.pinned_mask = pinned_mask
        self.pin_gate = pin_gate
        self.fred_vc_dispatch = fred_vc_dispatch
        self.boot_ghcb_fallback = boot_ghcb_fallback
        self.console_port_io = console_port_io
        self.console_anytime = console_anytime
        self.console_at_boot = console_at_boot
        # do_kernel_cp_fault() clears the FRED frame's WFE (dc81e556f2a0)
        self.ibt_clear_fred_wfe = ibt_clear_fred_wfe
        # paranoid_entry's GET_PERCPU_BASE reads the CPU number with RDPID
        # where the CPU has it (eaad981291ee3 .. 6a3ea3e68b8a)
        self.paranoid_rdpid = paranoid_rdpid
        self.pin_property = pin_property
        # GHCB TERM: the hypervisor ends the guest, or ignores the request
        # and sev_es_terminate() HLTs forever (LX boot/startup/sev-shared.c).
        self.terminated = HANG_OUTCOME if terminate_hangs else TERMINATED_OUTCOME
        self.entry_cr4 = entry_cr4
        self.intercepted_msrs = intercepted_msrs
        self.absent_msrs = absent_msrs          # RDMSR/WRMSR #GP
        self.microcode_msrs = microcode_msrs    # absent until load_microcode
        self.readonly_msrs = readonly_msrs      # WRMSR #GP, RDMSR works
        # [memory] (paging.py): per table, a P/W/X/U nibble per region and
        # the regions mapped global; no tables: every access is mapped.
        self.page_tables = page_tables
        self.page_globals = page_globals
        self.cr3_start = cr3_start
        self.paging = len(page_tables) > 0
        self.op_kind = op_kind
        self.op_a = op_a
        self.op_b = op_b
        self.op_text = op_text
        self.glob = ncpu * NF
        self.apic = apic
        # F_FLAGS bits every CPU starts with: INIT keeps the APIC's mode
        # (SDM Vol. 3A "x2APIC State Transitions"), so an AP keeps the
        # one firmware left it in.
        self.apic_flags = APIC_EXTD if apic in (APIC_X2APIC, APIC_LOCKED) \
            else 0
        self.sev = platform == SEV_ES or platform == SEV_SNP
        # The scenario uses kernel images (`jump_image`, `replace_image`,
        # life.py): every step checks that this CPU's code still exists.
        self.images = any(k in IMAGE_OPS for k in op_kind)
        self.cet_enumerated = (features & FEATURE_CET) != 0


# Op kinds that name kernel images (ops_life.py replace_image, jump_image):
# images are checked only in scenarios that use them.
IMAGE_OPS: Final = (59, 60)


# Feature bits of Machine.features (order of arch.FEATURES).
FEATURE_FRED: Final = 1 << 0
FEATURE_SMAP: Final = 1 << 3
FEATURE_PCID: Final = 1 << 6
FEATURE_FSGSBASE: Final = 1 << 5
FEATURE_CET: Final = 1 << 13
FEATURE_RDPID: Final = 1 << 15



# rule: feature-flags
def kernel_has(m: Machine, st: list[int], feature: int) -> bool:
    """cpu_feature_enabled(X86_FEATURE_x) for a FEATURE_* bit: set from
    CPUID (the model starts after early_cpu_init(), so from the first op
    [assumed]), cleared by `clear_cpu_cap` (LX arch/x86/kernel/cpu/common.c
    setup_clear_cpu_cap, cpu_caps_cleared)."""
    return (m.features & feature) != 0 and \
        not st[m.glob + G_FLAGS] & (feature << CAP_CLEARED_SHIFT)


# What raised a #VC/#VE: the exit reason the handler sees.
R_NONE: Final = 0
R_PORT_IO: Final = 1
R_CPUID: Final = 2
R_MSR: Final = 3
R_MMIO: Final = 4
# What a UD2 stands for (the #UD handler reads its bug table: LX
# lib/bug.c report_bug, kernel/cfi.c).
R_WARN: Final = 5
R_BUG: Final = 6
R_CFI: Final = 7
R_CR4: Final = 8    # a TDX guest's CR4 write the TDX module refuses
R_SEG: Final = 9    # a segment register load (loadsegment(): a fixup)
R_IBT_SELFTEST: Final = 10  # ibt_selftest()'s jump to ibt_selftest_noendbr
R_EXTINT: Final = 11  # an external interrupt (`preempt_event`'s timer tick)
REASON_NAMES: Final[tuple[str, ...]] = ("", "port I/O", "CPUID", "MSR access",
                                       "MMIO", "WARN", "BUG", "kCFI",
                                       "CR4 write", "segment load",
                                       "IBT selftest",
                                       "external interrupt")

# Delivery path a handler sees: an IDT_* value, or FRED, or the stub
# handlers of an explicit table (`lidt gates ...`, idt_table.py).
VIA_FRED: Final = 6
VIA_STUB: Final = 7
