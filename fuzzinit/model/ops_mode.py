"""The code segment a CPU runs in: far jumps between 64-bit and
compatibility mode, the step before leaving IA-32e mode (reboot through
real mode, 32-bit trampolines)."""

from typing import Final

from .arch import CR0_PE
from .grammar import OpSyntaxError
from .machine import CS32, F_CR0, F_FLAGS, Machine
from .op import Example, Op
from .outcome import OK

LJMP: Final = 42
TARGETS: Final[dict[str, int]] = {"cs64": 0, "cs32": 1}


class Ljmp(Op):
    def __init__(self) -> None:
        super().__init__(
            LJMP, "ljmp", "ljmp cs32|cs64",
            "a far jump or return to a code segment with L = 0 (`cs32`:"
            " compatibility mode while EFER.LMA = 1, e.g. `__KERNEL32_CS`)"
            " or L = 1 (`cs64`: 64-bit mode). Only the L bit is modelled;"
            " in real mode a far jump loads no descriptor and changes"
            " nothing",
            "SDM Vol. 3A 3.4.5, 10.8.5.4; LX arch/x86/realmode/rm/reboot.S",
            reads=0, samples=("ljmp cs32", "ljmp cs64"),
            examples=(
                Example(("ljmp cs32", "cr4_clear pcide", "mov_cr0 -pg"),
                        "ok", features=("pcid",)),
                Example(("ljmp cs32", "mov_cr4 +pcide", "mov_cr0 -pg"),
                        "triple_fault", (
                            "cpu0: mov_cr0 -pg",
                            "MOV to CR0 clears CR0.PG with CR4.PCIDE = 1"
                            " -> #GP(0)",
                            "#GP through the reset IDT (no LIDT yet): no"
                            " valid gate -> #GP",
                            "#GP while delivering #GP -> #DF (SDM table"
                            " 6-5)",
                            "#DF through the reset IDT (no LIDT yet): no"
                            " valid gate -> #GP",
                            "#GP while delivering #DF -> SHUTDOWN (triple"
                            " fault)"), features=("pcid",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in TARGETS:
            raise OpSyntaxError("ljmp needs the kind of code segment",
                                "ljmp cs32|cs64",
                                "cs32 for a segment with L = 0, e.g."
                                " __KERNEL32_CS")
        return TARGETS[args[0].lower()], 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: cpu-mode
        if st[base + F_CR0] & CR0_PE:
            # A far transfer loads CS's descriptor, and with it L (SDM Vol.
            # 3A 3.4.5); EFER.LMA and L select 64-bit or compatibility mode.
            flags = st[base + F_FLAGS]
            st[base + F_FLAGS] = flags | CS32 if a else flags & ~CS32
        return OK


def mode_ops() -> list[Op]:
    return [Ljmp()]
