"""Ops of the guest platform: instructions that exit to the hypervisor
(#VC on SEV-ES/SNP, #VE on TDX), console output, the GHCBs and #VE info."""

from typing import Final

from .handlers import terminate
from .machine import (
    CONSOLE_ON,
    F_FLAGS,
    G_FLAGS,
    GHCBS_ALLOCATED,
    R_CPUID,
    R_MMIO,
    R_PORT_IO,
    VE_PENDING,
    Machine,
)
from .op import GFLAGS, Example, Op, no_gate
from .outcome import INVALID, OK
from .platform import intercepted, printk, setup_ghcb

SETUP_GHCB: Final = 14
SEV_ES_INIT_VC_HANDLING: Final = 15
PRINTK: Final = 16
CPUID: Final = 17
PORT_IO: Final = 18
MMIO: Final = 19
VE_INFO: Final = 23
CONSOLE_INIT: Final = 28
SEV_ES_TERMINATE: Final = 33


class SetupGhcb(Op):
    def __init__(self) -> None:
        super().__init__(
            SETUP_GHCB, "setup_ghcb", "setup_ghcb",
            "the boot GHCB before `sev_es_init_vc_handling`, this CPU's"
            " per-CPU GHCB after (registered on SNP); a no-op outside"
            " SEV-ES/SNP",
            "LX arch/x86/coco/sev/core.c setup_ghcb",
            writes=GFLAGS, samples=("setup_ghcb",),
            examples=(
                Example(("lidt bringup", "setup_ghcb", "cpuid"), "ok",
                        guest="sev-es"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        setup_ghcb(m, st, base)
        return OK


class SevEsInitVcHandling(Op):
    def __init__(self) -> None:
        super().__init__(
            SEV_ES_INIT_VC_HANDLING, "sev_es_init_vc_handling",
            "sev_es_init_vc_handling",
            "per-CPU GHCBs allocated, `initial_vc_handler` switched",
            "LX arch/x86/coco/sev/core.c sev_es_init_vc_handling",
            writes=GFLAGS, samples=("sev_es_init_vc_handling",),
            examples=(
                Example(("sev_es_init_vc_handling", "setup_ghcb",
                         "lidt full", "ltr", "tss_setup_ist", "cpuid"), "ok",
                        guest="sev-es"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if m.sev:
            st[m.glob + G_FLAGS] |= GHCBS_ALLOCATED
        return OK


class Printk(Op):
    def __init__(self) -> None:
        super().__init__(
            PRINTK, "printk", "printk [TEXT]",
            "console output: port I/O if a console is registered and usable"
            " on this CPU",
            "LX kernel/printk/printk.c console_is_usable;"
            " drivers/tty/serial/8250",
            samples=("printk",),
            trigger_words=(1, 1),
            examples=(
                Example(("console_init", "printk hello"), "triple_fault", (
                    "cpu0: printk hello",
                    "console output: port I/O raises #VC in a sev-es guest",
                    *no_gate("#VC", "none")),
                    guest="sev-es"),
                Example(("console_init", "printk hello"), "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return 0, 0   # the text is a comment

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return printk(m, st, base, "console output", chain)


class Intercepted(Op):
    """An instruction a guest's hypervisor intercepts."""

    def __init__(self, kind: int, name: str, reason: int, what: str,
                 doc: str, examples: tuple[Example, ...]) -> None:
        super().__init__(
            kind, name, name, doc,
            "LX arch/x86/coco/sev/vc-handle.c vc_handle_exitcode;"
            " Documentation/arch/x86/tdx.rst",
            samples=(name,), examples=examples, trigger_words=(1, 1))
        self.reason = reason
        self.what = what

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return intercepted(m, st, base, self.reason, self.what, chain)


class VeInfo(Op):
    def __init__(self) -> None:
        super().__init__(
            VE_INFO, "ve_info", "ve_info",
            "TDG.VP.VEINFO.GET: this CPU's #VE info is read (a second #VE"
            " before it is #DF)",
            "TDX module tdg_vp_veinfo_get.c; LX arch/x86/coco/tdx/tdx.c",
            reads=0, samples=("ve_info",),
            examples=(
                Example(("ve_info",), "ok", guest="tdx"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # TDG.VP.VEINFO.GET clears VE_INFO.valid (TDX module
        # tdg_vp_veinfo_get.c).
        st[base + F_FLAGS] &= ~VE_PENDING
        return OK


class ConsoleInit(Op):
    def __init__(self) -> None:
        super().__init__(
            CONSOLE_INIT, "console_init", "console_init",
            "registers the console: `printk` prints from now on",
            "LX kernel/printk/printk.c register_console",
            writes=GFLAGS, samples=("console_init",),
            examples=(
                Example(("console_init",), "ok", guest="sev-es"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[m.glob + G_FLAGS] |= CONSOLE_ON
        return OK


class SevEsTerminate(Op):
    def __init__(self) -> None:
        super().__init__(
            SEV_ES_TERMINATE, "sev_es_terminate", "sev_es_terminate",
            "`sev_es_terminate()`: the guest asks the hypervisor to end it"
            " (GHCB MSR protocol TERM request); if the hypervisor returns, it"
            " halts forever. Only in SEV-ES/SNP guests (elsewhere the"
            " ordering is invalid)",
            "LX arch/x86/boot/startup/sev-shared.c sev_es_terminate;"
            " GHCB spec 2.3.1 (MSR protocol, termination request)",
            samples=("sev_es_terminate",),
            examples=(
                Example(("sev_es_terminate",), "guest_terminated",
                        ("cpu0: sev_es_terminate",
                         "sev_es_terminate(): the guest asks to be ended"),
                        guest="sev-snp"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not m.sev:
            chain.append("sev_es_terminate() outside an SEV-ES/SNP guest")
            return INVALID
        chain.append("sev_es_terminate(): the guest asks to be ended")
        return terminate(m, chain)[0]


def platform_ops() -> list[Op]:
    return [
        SetupGhcb(), SevEsInitVcHandling(), Printk(),
        Intercepted(CPUID, "cpuid", R_CPUID, "CPUID",
                    "CPUID: #VC in an SEV-ES/SNP guest; virtualised by the"
                    " TDX module [assumed for the leaves bring-up uses]", (
                        Example(("cpuid",), "triple_fault", (
                            "cpu0: cpuid",
                            "CPUID: CPUID raises #VC in a sev-es guest",
                            *no_gate("#VC", "none")), guest="sev-es"),
                        Example(("cpuid",), "ok", guest="tdx"))),
        Intercepted(PORT_IO, "port_io", R_PORT_IO, "IN/OUT",
                    "IN/OUT: #VC in an SEV-ES/SNP guest, #VE in a TDX guest", (
                        Example(("port_io",), "ok"),)),
        Intercepted(MMIO, "mmio", R_MMIO, "MMIO access",
                    "an MMIO access: #VC (NPF) in an SEV-ES/SNP guest, #VE in"
                    " a TDX guest", (
                        Example(("mmio",), "ok"),)),
        VeInfo(), ConsoleInit(), SevEsTerminate(),
    ]
