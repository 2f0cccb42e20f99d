"""Loading the IDT and the TSS: which table delivers this CPU's
exceptions, and whether its IST stacks exist."""

from typing import Final

from . import idt_table
from .grammar import OpSyntaxError, number
from .machine import (
    F_FLAGS,
    F_IDT,
    F_TSS,
    IDT_BRINGUP,
    IDT_NAMES,
    VC_BOOT_GATE,
    Machine,
)
from .op import Example, Op, no_gate
from .outcome import OK

LIDT: Final = 11
LTR: Final = 12
TSS_SETUP_IST: Final = 13

IDT_KINDS: Final[dict[str, int]] = {
    name: i for i, name in enumerate(IDT_NAMES)}
IDT_KINDS["bringup_ghcb"] = IDT_BRINGUP  # with #VC -> vc_boot_ghcb
LIDT_SYNTAX: Final = ("lidt none|bringup|bringup_ghcb|early|full|null|real, or "
                      + idt_table.SYNTAX)

# IST slots tss_setup_ist() fills: DF, NMI, DB, MCE, VC (LX cpu/common.c).
IST_SLOTS_SET: Final = 0b111110

class Lidt(Op):
    def __init__(self) -> None:
        super().__init__(
            LIDT, "lidt", LIDT_SYNTAX,
            "which IDT this CPU uses (see \"Model rules\"); `bringup_ghcb` is"
            " the bringup IDT after `early_setup_idt()` pointed #VC at"
            " `vc_boot_ghcb` (the models write head64.c's `early_setup_idt()`"
            " as the routine `[\"setup_ghcb\", \"lidt bringup_ghcb\"]`);"
            " `real` is reboot.c's `real_mode_idt` (base 0, limit 0x3ff)."
            " `lidt gates` writes a table out: the vectors with a 64-bit"
            " interrupt gate (the rest are zero), those with P = 0 (`np`),"
            " IST indices, the IDTR limit (default 0xfff) and whose handlers"
            " run: `stub` (default) records the vector and returns, `full`,"
            " `early`, `bringup` are Linux's handlers for those tables",
            "SDM Vol. 3A 6.10, 6.12.1, 6.14.1; LX arch/x86/kernel/idt.c,"
            " head64.c",
            reads=0,
            samples=("lidt full", "lidt null", "lidt early",
                     "lidt bringup_ghcb", "lidt real"),
            examples=(
                Example(("lidt full", "ltr", "tss_setup_ist", "nmi"), "ok"),
                Example(("lidt null", "nmi"), "triple_fault", (
                    "cpu0: nmi", "NMI arrives",
                    *no_gate("NMI", "null"))),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if args and args[0].lower() == "gates":
            return idt_table.parse(args), 0
        if len(args) != 1 or args[0].lower() not in IDT_KINDS:
            raise OpSyntaxError("lidt needs an IDT kind", LIDT_SYNTAX,
                                "e.g. 'lidt full' for load_current_idt()")
        idt = args[0].lower()
        return IDT_KINDS[idt], int(idt == "bringup_ghcb")

    def refusal(self, a: int, b: int) -> str:
        if idt_table.is_table(a):
            return ("runtime.pml holds the named IDTs only; an explicit"
                    " table (`lidt gates`) is not translated")
        return ""

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # `lidt bringup_ghcb`: the bringup IDT once early_setup_idt() has
        # pointed #VC at vc_boot_ghcb (LX head64.c).
        st[base + F_IDT] = a
        st[base + F_FLAGS] = (st[base + F_FLAGS] & ~VC_BOOT_GATE) | \
            (VC_BOOT_GATE if b else 0)
        return OK


class Ltr(Op):
    def __init__(self) -> None:
        super().__init__(
            LTR, "ltr", "ltr",
            "`load_TR_desc()`: this CPU's TSS is loaded",
            "SDM Vol. 3A 8.2.4; LX arch/x86/kernel/cpu/common.c cpu_init",
            reads=0, samples=("ltr",),
            examples=(
                Example(("lidt full", "ltr", "tss_setup_ist", "nmi"), "ok"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[base + F_TSS] |= 1
        return OK


class TssSetupIst(Op):
    def __init__(self) -> None:
        super().__init__(
            TSS_SETUP_IST, "tss_setup_ist", "tss_setup_ist [N,N..]",
            "`tss_setup_ist()`: IST slots for #DF, NMI, #DB, #MC, #VC"
            " (slots 1-5); with a list, just those slots (1-7) get a stack",
            "LX arch/x86/kernel/cpu/common.c tss_setup_ist;"
            " SDM Vol. 3A 8.7",
            reads=0, samples=("tss_setup_ist", "tss_setup_ist 1,7"),
            examples=(
                Example(("lidt full", "ltr", "tss_setup_ist", "nmi"), "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if not args:
            return IST_SLOTS_SET, 0
        if len(args) != 1:
            raise OpSyntaxError("tss_setup_ist takes one list of IST slots",
                                "tss_setup_ist [N,N..]",
                                "e.g. 'tss_setup_ist 1,2' (no spaces)")
        slots = 0
        for word in args[0].split(","):
            slots |= 1 << number(word, "IST slot", 7)
        if slots & 1:
            raise OpSyntaxError("IST slot 0 does not exist", "slots 1 to 7",
                                "IST index 0 means no IST stack")
        return slots, 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[base + F_TSS] |= a
        return OK


def idt_ops() -> list[Op]:
    return [Lidt(), Ltr(), TssSetupIst()]
