"""Platform behaviour: which instructions raise #VC (SEV-ES/SNP) or #VE (TDX),
console output, and the GHCB set-up (shared SEMANTICS section 6)."""

from .arch import VC, VE, VECTOR_NAMES
from .delivery import raise_event
from .machine import (
    BOOT_GHCB,
    CONSOLE_ON,
    F_FLAGS,
    F_GHCB,
    G_FLAGS,
    GHCB_BOOT,
    GHCB_PERCPU,
    GHCBS_ALLOCATED,
    GHCBS_INITIALIZED,
    ONLINE,
    PLATFORMS,
    R_CPUID,
    R_PORT_IO,
    REASON_NAMES,
    TDX,
    Machine,
)
from .outcome import OK


def exit_vector(m: Machine, reason: int) -> int:
    """The exception an intercepted instruction raises here, or -1."""
    # rule: vc-ve-sources
    if m.sev:
        # SEV-ES/SNP: IOIO, CPUID, MSR and NPF (MMIO) exits become #VC
        # (LX arch/x86/coco/sev/vc-handle.c vc_handle_exitcode).
        return VC
    # rule: vc-ve-sources
    if m.platform == TDX and reason != R_CPUID:
        # TDX: port I/O, MMIO and MSRs outside the bitmap raise #VE (LX
        # Documentation/arch/x86/tdx.rst). The CPUID leaves that exit are
        # decided by ops_platform.Cpuid (TDX module td_cpuid_exit).
        return VE
    return -1


def intercepted(m: Machine, st: list[int], base: int, reason: int,
                what: str, chain: list[str]) -> int:
    """Run an instruction that exits to the hypervisor in a guest."""
    vector = exit_vector(m, reason)
    if vector < 0:
        return OK
    chain.append(f"{what}: {REASON_NAMES[reason]} raises"
                 f" {VECTOR_NAMES[vector]} in a {PLATFORMS[m.platform]} guest")
    return raise_event(m, st, base, vector, False, reason, chain)


def printk(m: Machine, st: list[int], base: int, what: str,
           chain: list[str]) -> int:
    """Console output from this CPU.

    A console is used on a CPU that is not online only if it has CON_ANYTIME
    (LX kernel/printk console_is_usable); the 8250 console has it, the x86
    early consoles do not (LX 8250_core.c univ8250_console; early_printk.c).
    The model assumes this CPU wins the console lock and prints itself.
    """
    if not m.console_port_io or not st[m.glob + G_FLAGS] & CONSOLE_ON:
        # Before console_init() registers a console, printk only fills the
        # log buffer (LX kernel/printk/printk.c).
        return OK
    # rule: console
    if not st[base + F_FLAGS] & ONLINE and not m.console_anytime:
        return OK
    # rule: console
    return intercepted(m, st, base, R_PORT_IO, what, chain)


def setup_ghcb(m: Machine, st: list[int], base: int) -> None:
    """LX arch/x86/coco/sev/core.c setup_ghcb(): a no-op outside SEV-ES/SNP;
    once the per-CPU GHCBs exist it sets up (on SNP: registers) this CPU's,
    before that it sets up the boot GHCB."""
    if not m.sev:
        return
    g = st[m.glob + G_FLAGS]
    # rule: vc-handlers
    if g & GHCBS_ALLOCATED:
        st[base + F_GHCB] = GHCB_PERCPU
        st[m.glob + G_FLAGS] = g | GHCBS_INITIALIZED
    else:
        # rule: vc-handlers
        st[m.glob + G_FLAGS] = g | BOOT_GHCB
        st[base + F_GHCB] = GHCB_BOOT
