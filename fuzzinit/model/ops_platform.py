"""Ops of the guest platform: instructions that exit to the hypervisor
(#VC on SEV-ES/SNP, #VE on TDX), console output, the GHCBs and #VE info."""

from typing import Final

from .arch import VE
from .delivery import raise_event
from .grammar import number
from .handlers import terminate
from .machine import (
    CONSOLE_ON,
    F_FLAGS,
    G_FLAGS,
    GHCBS_ALLOCATED,
    R_CPUID,
    R_MMIO,
    R_PORT_IO,
    TDX,
    VE_PENDING,
    Machine,
)
from .op import GFLAGS, Example, Op, no_gate, one_number
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
        # rule: vc-handlers
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
                 doc: str, examples: tuple[Example, ...],
                 syntax: str = "", source: str = "",
                 samples: tuple[str, ...] = (),
                 trigger_words: tuple[int, int] = (1, 1)) -> None:
        super().__init__(
            kind, name, syntax or name, doc,
            source or "LX arch/x86/coco/sev/vc-handle.c vc_handle_exitcode;"
            " Documentation/arch/x86/tdx.rst",
            samples=samples or (name,), examples=examples,
            trigger_words=trigger_words)
        self.reason = reason
        self.what = what

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return intercepted(m, st, base, self.reason, self.what, chain)


# CPUID leaves the TDX module does not answer itself (TDX module
# td_cpuid.c td_cpuid_exit): the hypervisor range always; these while the
# TD controls that remove their #VE (ENUM_TOPOLOGY for 0xB/0x1F,
# VIRT_CPUID2, REDUCE_VE) are off - TDX 1.0, and every guest before
# tdx_setup() turns them on (docs/research/longmode-reboot.md). Leaves
# missing from the module's per-TD table also #VE: not modelled.
TDX_VE_LEAVES: Final = (0x2, 0x6, 0x9, 0xB, 0xC, 0xF, 0x10, 0x16, 0x17,
                        0x1B, 0x1F, 0x80000002, 0x80000003, 0x80000004,
                        0x80000005)


def tdx_cpuid_exits(leaf: int) -> bool:
    return 0x40000000 <= leaf <= 0x4FFFFFFF or leaf in TDX_VE_LEAVES


class Cpuid(Intercepted):
    """`cpuid [LEAF]`: without a leaf, one the TDX module answers (the
    basic leaves bring-up reads)."""

    def __init__(self) -> None:
        super().__init__(
            CPUID, "cpuid", R_CPUID, "CPUID",
            "CPUID: #VC in an SEV-ES/SNP guest; in a TDX guest #VE for the"
            " hypervisor range 0x40000000-0x4fffffff and, with the TD's"
            " #VE-reducing controls off, leaves 0x2 0x6 0x9 0xb 0xc 0xf 0x10"
            " 0x16 0x17 0x1b 0x1f 0x80000002-5 (the module answers the"
            " rest); `cpuid` alone is a leaf the module answers", (
                Example(("cpuid",), "triple_fault", (
                    "cpu0: cpuid",
                    "CPUID: CPUID raises #VC in a sev-es guest",
                    *no_gate("#VC", "none")), guest="sev-es"),
                Example(("cpuid",), "ok", guest="tdx"),
                Example(("lidt early", "cpuid 0x40000000"), "unhandled", (
                    "cpu0: cpuid 0x40000000",
                    "CPUID 0x40000000: the TDX module raises #VE",
                    "#VE (CPUID) in the early handler: tdx_early_handle_ve()"
                    " handles port I/O only"), guest="tdx"),
                Example(("lidt full", "cpuid 0xb"), "ok", guest="tdx")),
            syntax="cpuid [LEAF]",
            source="LX arch/x86/coco/sev/vc-handle.c vc_handle_exitcode,"
            " arch/x86/coco/tdx/tdx.c handle_cpuid, tdx_early_handle_ve;"
            " TDX module td_cpuid_exit",
            samples=("cpuid", "cpuid 0xb", "cpuid 0x40000001"),
            trigger_words=(1, 2))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if not args:
            return 0, 0
        return number(one_number("cpuid", args), "CPUID leaf",
                      0xFFFFFFFF), 1

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: vc-ve-sources
        if m.platform == TDX and b and tdx_cpuid_exits(a):
            chain.append(f"CPUID {a:#x}: the TDX module raises #VE")
            return raise_event(m, st, base, VE, False, R_CPUID, chain)
        return super().apply(m, st, cpu, base, a, b, chain, warnings)


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
        # rule: vc-ve-sources
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
        # rule: console
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
        # rule: outcomes
        if not m.sev:
            chain.append("sev_es_terminate() outside an SEV-ES/SNP guest")
            return INVALID
        # rule: vc-handlers
        chain.append("sev_es_terminate(): the guest asks to be ended")
        return terminate(m, chain)[0]


def platform_ops() -> list[Op]:
    return [
        SetupGhcb(), SevEsInitVcHandling(), Printk(),
        Cpuid(),
        Intercepted(PORT_IO, "port_io", R_PORT_IO, "IN/OUT",
                    "IN/OUT: #VC in an SEV-ES/SNP guest, #VE in a TDX guest", (
                        Example(("port_io",), "ok"),)),
        Intercepted(MMIO, "mmio", R_MMIO, "MMIO access",
                    "an MMIO access: #VC (NPF) in an SEV-ES/SNP guest, #VE in"
                    " a TDX guest", (
                        Example(("mmio",), "ok"),)),
        VeInfo(), ConsoleInit(), SevEsTerminate(),
    ]
