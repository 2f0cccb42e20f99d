"""The GDT and segment loads: whether the GDT holds the kernel's
descriptors, and the selector loads (`loadsegment()`) that read it.

Only the GDT's limit matters to the rules so far: `lgdt null` is
`native_gdt_invalidate()` (base 0, limit 0), the named tables all hold
__KERNEL_CS and __KERNEL_DS. Which of them is loaded, the LDT, and the
descriptors' contents are not modelled."""

from typing import Final

from .arch import GP
from .delivery import raise_event
from .grammar import OpSyntaxError
from .machine import F_FLAGS, GDT_NULL, R_SEG, SS_KERNEL, Machine
from .op import Example, Op
from .outcome import OK

LGDT: Final = 43
LOADSEGMENT: Final = 44
GDT_KINDS: Final[dict[str, int]] = {
    "early": 0, "percpu": 0, "trampoline": 0, "saved": 0, "null": 1}
SEGMENTS: Final = ("ss", "ds", "es", "fs", "gs")


class Lgdt(Op):
    def __init__(self) -> None:
        super().__init__(
            LGDT, "lgdt", "lgdt null|early|percpu|trampoline|saved",
            "load a GDT: `null` is `native_gdt_invalidate()` (limit 0), the"
            " others (startup_64's early GDT, the per-CPU `gdt_page`, the"
            " trampoline's, a saved context's) hold the kernel's"
            " descriptors; only that difference is modelled",
            "SDM Vol. 3A 3.5.1; LX arch/x86/include/asm/desc.h"
            " native_gdt_invalidate, arch/x86/kernel/cpu/common.c"
            " switch_gdt_and_percpu_base",
            reads=0, samples=("lgdt null", "lgdt percpu"),
            examples=(
                Example(("lgdt null", "lgdt percpu", "loadsegment ss"),
                        "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in GDT_KINDS:
            raise OpSyntaxError("lgdt needs a GDT",
                                "lgdt null|early|percpu|trampoline|saved",
                                "e.g. 'lgdt null' for native_gdt_invalidate()")
        return GDT_KINDS[args[0].lower()], 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        # rule: gdt
        st[base + F_FLAGS] = flags | GDT_NULL if a else flags & ~GDT_NULL
        return OK


class LoadSegment(Op):
    def __init__(self) -> None:
        super().__init__(
            LOADSEGMENT, "loadsegment", "loadsegment ss|ds|es|fs|gs",
            "`loadsegment(seg, __KERNEL_DS)` (or a user selector): MOV to"
            " a segment register reads the descriptor from the GDT; beyond"
            " its limit (`lgdt null`) that is #GP(selector). The macro's"
            " exception-table entry loads the null selector instead once"
            " a #GP handler runs",
            "SDM Vol. 2 MOV (Sreg); LX arch/x86/include/asm/segment.h"
            " loadsegment, arch/x86/mm/extable.c EX_TYPE_ZERO_REG",
            samples=("loadsegment ss", "loadsegment ds"),
            examples=(
                Example(("lgdt null", "loadsegment ss"), "triple_fault", (
                    "cpu0: loadsegment ss",
                    "MOV to SS: the selector lies beyond the GDT limit 0"
                    " -> #GP",
                    "#GP through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
                Example(("lidt full", "lgdt null", "loadsegment ss"),
                        "triple_fault", (
                    "cpu0: loadsegment ss",
                    "MOV to SS: the selector lies beyond the GDT limit 0"
                    " -> #GP",
                    "#GP: the gate's code segment (__KERNEL_CS) lies beyond"
                    " the GDT limit 0 -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF: the gate's code segment (__KERNEL_CS) lies beyond"
                    " the GDT limit 0 -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in SEGMENTS:
            raise OpSyntaxError("loadsegment needs a segment register",
                                "loadsegment ss|ds|es|fs|gs",
                                "e.g. 'loadsegment ss' for"
                                " loadsegment(ss, __KERNEL_DS)")
        return SEGMENTS.index(args[0].lower()), 0

    # rule: gdt
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        if not flags & GDT_NULL:
            if a == 0:   # SS now holds __KERNEL_DS
                st[base + F_FLAGS] = flags | SS_KERNEL
            return OK
        chain.append(f"MOV to {SEGMENTS[a].upper()}: the selector lies"
                     " beyond the GDT limit 0 -> #GP")
        outcome = raise_event(m, st, base, GP, False, R_SEG, chain)
        if a == 0 and outcome == OK:   # the fixup loaded the null selector
            st[base + F_FLAGS] &= ~SS_KERNEL
        return outcome


def segment_ops() -> list[Op]:
    return [Lgdt(), LoadSegment()]
