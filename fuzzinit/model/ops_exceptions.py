"""Exceptions raised on purpose: INT3, a divide by zero, INT n and any
exception vector by number - architectural probes that need no Linux code
path. With an explicit table (`lidt gates ...`, handler `stub`) the run
records which gate's handler ran (Result.handled)."""

from typing import Final

from .arch import CR4_FRED, DE, DF, GP, MC, NMI, VC, VE, vector_name
from .delivery import raise_event
from .grammar import OpSyntaxError, number
from .machine import F_CR4, F_FLAGS, R_NONE, USER, Machine
from .op import Example, Op, no_gate, one_number

INT3: Final = 36
DIV0: Final = 37
INT_N: Final = 38
RAISE: Final = 39

BP: Final = 3
# Gates Linux gives DPL 3: #BP, #OF and the ia32 INT 0x80 (LX idt.c SYSG).
USER_GATES: Final = frozenset((3, 4, 0x80))
# Vectors `raise` refuses, and the op that raises them with their cause.
_RAISED_ELSEWHERE: Final[dict[int, str]] = {
    NMI: "nmi", DF: "a fault while delivering another (a #DF has no other"
    " cause)", MC: "mce", VE: "cpuid, port_io, mmio or rdmsr on a TDX guest",
    VC: "cpuid, port_io, mmio or rdmsr on an SEV-ES guest"}
# Exceptions the CPU raises (SDM Vol. 3A table 6-1); the rest of 0-31 is
# reserved.
RAISABLE: Final = (0, 1, 3, 4, 5, 6, 7, 10, 11, 12, 13, 14, 16, 17, 19, 21)


class _Raise(Op):
    """Shared step: raise vector `a`; `b` = 1 for a software interrupt
    (INT n), which is benign for the double-fault rules like an external
    interrupt (SDM Vol. 3A table 6-5 lists exceptions only; BX
    interrupt() delivers INT n with no previous exception)."""

    # rule: exceptions-on-purpose
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        chain.append(f"{self.name} raises {vector_name(a)}" if not b else
                     f"INT {a}: software interrupt through gate {a}")
        # rule: ring3-scheduling
        if b and st[base + F_FLAGS] & USER and a not in USER_GATES:
            # From CPL 3 a gate with DPL 0 is #GP(vector*8+2) (SDM Vol. 2
            # INT n); Linux's user-callable gates are #BP, #OF and INT 0x80
            # (LX idt.c SYSG). Through FRED the event goes to ring 0 on the
            # same stack a #GP would take, and fred_intx() calls
            # exc_general_protection() for the others (LX entry_fred.c).
            chain.append(f"INT {a} from user mode: "
                         + ("fred_intx() treats it as #GP"
                            if st[base + F_CR4] & CR4_FRED else
                            f"gate {a} has DPL 0 -> #GP"))
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        return raise_event(m, st, base, a, b == 1, R_NONE, chain)


class Int3(_Raise):
    def __init__(self) -> None:
        super().__init__(
            INT3, "int3", "int3",
            "INT3: #BP (a trap, benign for #DF). Linux's handlers treat a"
            " stray one in kernel code as a bug: die()",
            "SDM Vol. 3A 6.15 Interrupt 3; LX arch/x86/kernel/traps.c"
            " exc_int3",
            samples=("int3",), trigger_words=(1, 1),
            examples=(
                Example(("lidt gates 3", "int3"), "ok", handled=((0, 3),)),
                Example(("lidt null", "int3"), "triple_fault", (
                    "cpu0: int3", "int3 raises #BP",
                    *no_gate("#BP", "null"))),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        super().parse(args, ncpu)
        return BP, 0


class Div0(_Raise):
    def __init__(self) -> None:
        super().__init__(
            DIV0, "div0", "div0",
            "DIV by zero: #DE, contributory - a fault delivering it is #DF",
            "SDM Vol. 3A 6.15 Interrupt 0, table 6-5; SDM Vol. 2 DIV",
            samples=("div0",), trigger_words=(1, 1),
            examples=(
                Example(("lidt gates 8", "div0"), "ok", handled=((0, 8),)),
                Example(("lidt gates 13", "div0"), "triple_fault", (
                    "cpu0: div0", "div0 raises #DE",
                    "#DE: gate 0 of the table (gates 13 limit 0xfff) is"
                    " empty -> #GP",
                    "#GP while delivering #DE -> #DF (SDM table 6-5)",
                    "#DF: gate 8 of the table (gates 13 limit 0xfff) is"
                    " empty -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        super().parse(args, ncpu)
        return DE, 0


class IntN(_Raise):
    def __init__(self) -> None:
        super().__init__(
            INT_N, "int", "int N",
            "INT n: a software interrupt through gate N (0-255) at CPL 0,"
            " benign for #DF; on Linux's runtime IDT a vector from 32 up"
            " reaches an interrupt entry that returns [assumed]",
            "SDM Vol. 2 INT n; SDM Vol. 3A 6.12.1.1, table 6-5;"
            " LX arch/x86/kernel/irq.c __common_interrupt",
            samples=("int 3", "int 13", "int 48"), trigger_words=(2, 2),
            examples=(
                Example(("lidt gates 13,20 limit 0xdf", "int 20"), "ok",
                        handled=((0, 13),)),
                Example(("lidt gates 0,13", "int 0"), "ok",
                        handled=((0, 0),)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return number(one_number("int", args), "vector", 255), 1


class Raise(_Raise):
    def __init__(self) -> None:
        super().__init__(
            RAISE, "raise", "raise V",
            "the CPU raises exception V (one of 0,1,3-7,10-14,16,17,19,21)"
            " with its class for the #DF rules, as the instruction that"
            " causes it would; NMI, #DF, #MC, #VE and #VC have their own"
            " causes (nmi, mce, cpuid, ...)",
            "SDM Vol. 3A table 6-1, table 6-5",
            samples=("raise 13", "raise 14", "raise 1", "raise 21"),
            trigger_words=(2, 2),
            examples=(
                Example(("lidt gates 8,13 np 13", "raise 13"), "ok",
                        handled=((0, 8),)),
                Example(("lidt gates 11,14 np 14 ist 11:3", "raise 14"),
                        "triple_fault", (
                            "cpu0: raise 14", "raise raises #PF",
                            "#PF: gate 14 is not present (P = 0) -> #NP",
                            "#NP while delivering #PF -> #DF (SDM table"
                            " 6-5)",
                            "#DF: gate 8 of the table (gates 11,14 np 14"
                            " ist 11:3 limit 0xfff) is empty -> #GP",
                            "#GP while delivering #DF -> SHUTDOWN (triple"
                            " fault)")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        v = number(one_number("raise", args), "vector", 31)
        if v in _RAISED_ELSEWHERE:
            raise OpSyntaxError(f"raise {v}: {vector_name(v)} has its own"
                                " cause", "raise V for V in " + ",".join(
                                    map(str, RAISABLE)),
                                "use " + _RAISED_ELSEWHERE[v])
        if v not in RAISABLE:
            raise OpSyntaxError(f"raise {v}: vector {v} is reserved",
                                "raise V for V in " + ",".join(
                                    map(str, RAISABLE)),
                                f"use 'int {v}' for a software interrupt")
        return v, 0


def exception_ops() -> list[Op]:
    return [Int3(), Div0(), IntN(), Raise()]
