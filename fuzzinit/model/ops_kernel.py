"""Kernel steps with no architectural effect of their own: patching the
alternatives, and a placeholder."""

from typing import Final

from .machine import ALT_PATCHED, G_FLAGS, Machine
from .op import GFLAGS, Example, Op
from .outcome import OK

PATCH_ALTERNATIVES: Final = 27
NOP: Final = 29


class PatchAlternatives(Op):
    def __init__(self) -> None:
        super().__init__(
            PATCH_ALTERNATIVES, "patch_alternatives", "patch_alternatives",
            "`alternative_instructions()`: paranoid_entry now uses RDGSBASE"
            " (if FSGSBASE is enumerated)",
            "LX arch/x86/kernel/alternative.c; entry/entry_64.S"
            " paranoid_entry; 05243d490bb7",
            writes=GFLAGS, samples=("patch_alternatives",),
            examples=(
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "patch_alternatives", "nmi"), "unhandled", (
                    "cpu0: nmi", "NMI arrives",
                    "NMI enters paranoid_entry, whose RDGSBASE (alternatives"
                    " patched) is #UD with CR4.FSGSBASE = 0",
                    "#UD in kernel code with no fixup: die()"),
                    features=("fsgsbase",)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[m.glob + G_FLAGS] |= ALT_PATCHED
        return OK


class Nop(Op):
    def __init__(self) -> None:
        super().__init__(
            NOP, "nop", "nop [TEXT]",
            "a placeholder: a step that touches nothing the model has",
            "(none: no architectural effect)",
            reads=0, samples=(),
            examples=(Example(("nop anything at all",), "ok"),))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return 0, 0   # the text is a comment

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return OK


def kernel_ops() -> list[Op]:
    return [PatchAlternatives(), Nop()]
