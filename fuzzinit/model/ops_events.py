"""Events a CPU takes: an NMI, a #PF the kernel expects, and the #UD of
RDGSBASE with CR4.FSGSBASE clear."""

from typing import Final

from .arch import CR4_FSGSBASE, CR4_MCE, EFER_LMA, MC, NMI, PF, UD
from .delivery import raise_event, stub_delivery
from .grammar import OpSyntaxError
from .machine import (
    CS32,
    F_CR4,
    F_EFER,
    F_FLAGS,
    NF,
    NMI_BLOCKED,
    R_BUG,
    R_CFI,
    R_NONE,
    R_WARN,
    REASON_NAMES,
    TDX,
    VE_PENDING,
    Machine,
)
from .op import CPUS, SHARED, Example, Op, no_gate
from .outcome import OK, TRIPLE_FAULT
from .platform import printk

RDGSBASE: Final = 20
NMI_EVENT: Final = 21
PF_EVENT: Final = 22
UD2: Final = 32
MCE_EVENT: Final = 35

UD2_SITES: Final[dict[str, int]] = {"warn": R_WARN, "bug": R_BUG,
                                    "cfi": R_CFI}


class Nmi(Op):
    def __init__(self) -> None:
        super().__init__(
            NMI_EVENT, "nmi", "nmi",
            "an NMI arrives (held pending while NMIs are blocked, and on TDX"
            " while #VE info is unread)",
            "SDM Vol. 3A 6.7.1; TDX module td_nmi_exit",
            samples=("nmi",),
            trigger_words=(1, 1),
            examples=(
                Example(("nmi",), "triple_fault", (
                    "cpu0: nmi", "NMI arrives",
                    *no_gate("NMI", "none"))),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        # rule: nmi-blocking
        if flags & NMI_BLOCKED:
            return OK  # a blocked NMI stays pending (SDM 6.7.1)
        # rule: vc-ve-sources
        if m.platform == TDX and flags & VE_PENDING:
            # The TDX module withholds NMIs while #VE info is unread (TDX
            # module td_nmi_exit).
            return OK
        chain.append("NMI arrives")
        st[base + F_FLAGS] = flags | NMI_BLOCKED
        outcome = raise_event(m, st, base, NMI, True, 0, chain)
        # The handler's IRET/ERETS unblocks NMIs again (SDM 6.7.1; FRED).
        st[base + F_FLAGS] &= ~NMI_BLOCKED
        return outcome


class PageFault(Op):
    def __init__(self) -> None:
        super().__init__(
            PF_EVENT, "pf", "pf",
            "a #PF the kernel expects (a lazily filled page-table entry)",
            "SDM Vol. 3A 6.15 Interrupt 14; LX arch/x86/mm/fault.c",
            samples=("pf",),
            trigger_words=(1, 1),
            examples=(
                Example(("lidt early", "pf"), "ok"),
                Example(("lidt full", "pf"), "ok"),
                Example(("lidt full", "pf"), "unhandled", (
                    "cpu0: pf", "#PF raised",
                    "exc_page_fault() reads the fault address from FRED"
                    " event data (X86_FEATURE_FRED set), but the #PF came"
                    " through the IDT: it handles a wrong address"),
                    features=("fred",)),
                Example(("lidt early", "pf"), "ok", features=("fred",)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        chain.append("#PF raised")
        return raise_event(m, st, base, PF, False, R_NONE, chain)


class Rdgsbase(Op):
    def __init__(self) -> None:
        super().__init__(
            RDGSBASE, "rdgsbase", "rdgsbase",
            "RDGSBASE: #UD while CR4.FSGSBASE = 0",
            "SDM Vol. 2 RDFSBASE/RDGSBASE",
            samples=("rdgsbase",),
            examples=(
                Example(("cr4_set fsgsbase", "rdgsbase"), "ok",
                        features=("fsgsbase",)),
                Example(("lidt null", "rdgsbase"), "triple_fault", (
                    "cpu0: rdgsbase", "RDGSBASE with CR4.FSGSBASE = 0 -> #UD",
                    *no_gate("#UD", "null"))),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: cpu-mode
        if st[base + F_FLAGS] & CS32 or not st[base + F_EFER] & EFER_LMA:
            # #UD outside 64-bit mode (SDM Vol. 2 RDFSBASE/RDGSBASE).
            chain.append("RDGSBASE outside 64-bit mode -> #UD")
            return raise_event(m, st, base, UD, False, R_NONE, chain)
        if st[base + F_CR4] & CR4_FSGSBASE:
            return OK
        # RDGSBASE with CR4.FSGSBASE = 0 is #UD (SDM Vol. 2 RDFSBASE/RDGSBASE).
        # rule: cr-gp
        chain.append("RDGSBASE with CR4.FSGSBASE = 0 -> #UD")
        return raise_event(m, st, base, UD, False, R_NONE, chain)


class Ud2(Op):
    """A WARN(), BUG() or kCFI check that fires: the compiler's UD2 (UD0
    for WARN in v4.12-era kernels), whose #UD the kernel's bug table turns
    into a warning or a death (see handlers._bug_trap)."""

    def __init__(self) -> None:
        super().__init__(
            UD2, "ud2", "ud2 [warn|bug|cfi]",
            "a WARN(), BUG() or kCFI check that fires, or a bare UD2 (no"
            " bug-table entry: die() on Linux's handlers): UD2 -> #UD. Delivered"
            " through the runtime IDT or FRED: a WARN prints its report and"
            " continues (outcome `warn`), a BUG or kCFI failure dies"
            " (`unhandled`); through the early IDT a WARN continues, the"
            " rest halt; with no #UD gate it is #GP, #DF, shutdown."
            " CONFIG_CFI_PERMISSIVE (kCFI as a WARN) is not modelled",
            "SDM Vol. 2 UD; LX arch/x86/kernel/traps.c handle_bug,"
            " arch/x86/mm/extable.c early_fixup_exception, kernel/cfi.c",
            samples=("ud2 warn", "ud2 bug", "ud2 cfi", "ud2"),
            trigger_words=(1, 2),
            examples=(
                Example(("lidt full", "ud2 warn"), "warn",
                        ("WARN: WARN() reported and continued",)),
                Example(("lidt early", "ud2 bug"), "unhandled", (
                    "cpu0: ud2 bug", "UD2 at a BUG site -> #UD",
                    "#UD (BUG) in the early handler: early_fixup_exception()"
                    " prints PANIC and halts")),
                Example(("lidt full", "ud2 cfi"), "unhandled", (
                    "cpu0: ud2 cfi", "UD2 at a kCFI site -> #UD",
                    "#UD (kCFI): handle_bug() does not continue, die()"
                    " (oops)")),
                Example(("lidt null", "ud2 cfi"), "triple_fault", (
                    "cpu0: ud2 cfi", "UD2 at a kCFI site -> #UD",
                    *no_gate("#UD", "null"))),
                Example(("console_init", "lidt bringup_ghcb", "setup_ghcb",
                         "lidt early", "ud2 warn"), "warn",
                        ("WARN: WARN() reported and continued",),
                        guest="sev-es"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if not args:
            return R_NONE, 0
        if len(args) != 1 or args[0].lower() not in UD2_SITES:
            raise OpSyntaxError("ud2 takes the site it stands for, or"
                                " nothing", "ud2 [warn|bug|cfi]",
                                "e.g. 'ud2 warn' for a WARN_ON() that fires")
        return UD2_SITES[args[0].lower()], 0

    # rule: bug-sites
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        chain.append(f"UD2 at a {REASON_NAMES[a]} site -> #UD" if a else
                     "UD2 -> #UD")
        outcome = raise_event(m, st, base, UD, False, a, chain)
        if outcome != OK or a != R_WARN or stub_delivery(st, base):
            return outcome
        warnings.append("WARN() reported and continued")
        # report_bug() -> __warn() prints the report (LX kernel/panic.c).
        return printk(m, st, base, "the WARN report", chain)


class Mce(Op):
    """A machine check broadcast to every logical CPU (Intel; SDM Vol. 3B
    "Machine-Check Architecture", MCE broadcast). A CPU with CR4.MCE = 0
    enters shutdown (SDM Vol. 3A 6.15 Interrupt 18); the others take #MC.
    [assumed] CPUs never started (wait-for-SIPI, CR4 = 0) take it too: the
    kernel's own reason to boot every sibling once (LX kernel/cpu.c
    cpu_bootable, 0cc3cd21657b)."""

    def __init__(self) -> None:
        super().__init__(
            MCE_EVENT, "mce", "mce",
            "a machine check the kernel can survive, broadcast to every"
            " CPU: one with CR4.MCE = 0 (never started ones included) puts"
            " the machine in shutdown; the others take #MC (IST/FRED stack"
            " level 2), which the runtime handler survives and the early"
            " handler does not. Local machine checks (LMCE) and AMD's"
            " per-CPU delivery are not modelled",
            "SDM Vol. 3A 6.15 Interrupt 18; SDM Vol. 3B MCA (broadcast);"
            " LX kernel/cpu.c cpu_bootable, arch/x86/kernel/cpu/mce/core.c",
            reads=SHARED | CPUS, trigger_words=(1, 1), samples=("mce",),
            examples=(
                Example(("cr4_set mce", "lidt full", "ltr", "tss_setup_ist",
                         "mce"), "ok"),
                Example(("lidt full", "mce"), "triple_fault", (
                    "cpu0: mce",
                    "machine check broadcast: cpu0 has CR4.MCE = 0 ->"
                    " shutdown (SDM 6.15 Interrupt 18)")),
                Example(("cr4_set mce", "lidt early", "mce"), "unhandled", (
                    "cpu0: mce", "machine check broadcast: #MC on cpu0",
                    "#MC in the early handler: early_fixup_exception()"
                    " prints PANIC and halts")),
            ))

    # rule: machine-checks
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        for d in range(m.ncpu):
            if not st[d * NF + F_CR4] & CR4_MCE:
                chain.append(f"machine check broadcast: cpu{d} has CR4.MCE"
                             " = 0 -> shutdown (SDM 6.15 Interrupt 18)")
                return TRIPLE_FAULT
        for d in range(m.ncpu):
            chain.append(f"machine check broadcast: #MC on cpu{d}")
            outcome = raise_event(m, st, d * NF, MC, False, R_NONE, chain)
            if outcome != OK:
                return outcome
        return OK


def event_ops() -> list[Op]:
    return [Rdgsbase(), Nmi(), PageFault(), Ud2(), Mce()]
