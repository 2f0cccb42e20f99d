"""Kernel steps with no architectural effect of their own: the kernel's
feature flags, patching the alternatives, and a placeholder."""

from typing import Final

from .grammar import OpSyntaxError
from .machine import (
    ALT_FSGSBASE,
    ALT_PATCHED,
    CAP_CLEARED_SHIFT,
    FEATURE_FRED,
    FEATURE_FSGSBASE,
    FEATURE_PCID,
    G_FLAGS,
    Machine,
    kernel_has,
)
from .op import GFLAGS, Example, Op
from .outcome import OK

PATCH_ALTERNATIVES: Final = 27
NOP: Final = 29
CLEAR_CPU_CAP: Final = 49

# The X86_FEATURE_* flags some modelled kernel code reads (the rest would be
# flags nothing in the model consults: refused rather than ignored).
CAPS: Final[dict[str, int]] = {
    "fred": FEATURE_FRED,        # exc_page_fault's address source (mm/fault.c)
    "pcid": FEATURE_PCID,        # cr4_init's CR4.PCIDE (cpu/common.c)
    "fsgsbase": FEATURE_FSGSBASE,  # paranoid_entry's alternative (entry_64.S)
}


class ClearCpuCap(Op):
    def __init__(self) -> None:
        super().__init__(
            CLEAR_CPU_CAP, "clear_cpu_cap", "clear_cpu_cap fred|pcid|fsgsbase",
            "`setup_clear_cpu_cap(X86_FEATURE_x)`: the kernel stops using a"
            " feature the CPU enumerates (where a command-line option takes"
            " effect: `fred=` unless `on`, `nopcid`, `nofsgsbase`,"
            " `clearcpuid=`). Its readers: the #PF handler's address source"
            " (fred), `cr4_init`'s PCIDE (pcid), `patch_alternatives` (fsgsbase)",
            "LX arch/x86/kernel/cpu/common.c setup_clear_cpu_cap,"
            " cpu_parse_early_param; 989b5cfaa7b6",
            writes=GFLAGS, samples=("clear_cpu_cap fred", "clear_cpu_cap pcid",
                                    "clear_cpu_cap fsgsbase"),
            examples=(
                Example(("clear_cpu_cap fred", "lidt full", "pf"), "ok",
                        features=("fred",)),
                Example(("clear_cpu_cap fsgsbase", "lidt full", "ltr",
                         "tss_setup_ist", "patch_alternatives", "nmi"), "ok",
                        features=("fsgsbase",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in CAPS:
            raise OpSyntaxError(
                "clear_cpu_cap needs a feature flag the model reads",
                "clear_cpu_cap fred|pcid|fsgsbase",
                "e.g. 'clear_cpu_cap fred' where `fred=on` is missing")
        return CAPS[args[0].lower()], 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: feature-flags
        st[m.glob + G_FLAGS] |= a << CAP_CLEARED_SHIFT
        return OK


class PatchAlternatives(Op):
    def __init__(self) -> None:
        super().__init__(
            PATCH_ALTERNATIVES, "patch_alternatives", "patch_alternatives",
            "`alternative_instructions()`: paranoid_entry now uses RDGSBASE"
            " if the kernel has X86_FEATURE_FSGSBASE at this point",
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
        # Patched once, by the flags of the moment: clearing the flag later
        # does not unpatch (LX arch/x86/kernel/alternative.c apply_alternatives).
        # rule: feature-flags, linux-handlers
        fsgsbase = ALT_FSGSBASE if kernel_has(m, st, FEATURE_FSGSBASE) else 0
        st[m.glob + G_FLAGS] |= ALT_PATCHED | fsgsbase
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
    return [PatchAlternatives(), Nop(), ClearCpuCap()]
