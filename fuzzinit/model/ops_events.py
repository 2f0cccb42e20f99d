"""Events a CPU takes: an NMI, a #PF the kernel expects, and the #UD of
RDGSBASE with CR4.FSGSBASE clear."""

from typing import Final

from .arch import CR4_FSGSBASE, NMI, PF, UD
from .delivery import raise_event
from .machine import (
    F_CR4,
    F_FLAGS,
    NMI_BLOCKED,
    R_NONE,
    TDX,
    VE_PENDING,
    Machine,
)
from .op import Example, Op
from .outcome import OK

RDGSBASE: Final = 20
NMI_EVENT: Final = 21
PF_EVENT: Final = 22


class Nmi(Op):
    def __init__(self) -> None:
        super().__init__(
            NMI_EVENT, "nmi", "nmi",
            "an NMI arrives (held pending while NMIs are blocked, and on TDX"
            " while #VE info is unread)",
            "SDM Vol. 3A 6.7.1; TDX module td_nmi_exit",
            samples=("nmi",),
            examples=(
                Example(("nmi",), "triple_fault", (
                    "cpu0: nmi", "NMI arrives",
                    "NMI through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering NMI is handled serially (SDM table"
                    " 6-5)",
                    "#GP through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the reset IDT (no LIDT yet): no valid gate"
                    " -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        if flags & NMI_BLOCKED or (m.platform == TDX and flags & VE_PENDING):
            # Blocked NMIs stay pending (SDM 6.7.1); the TDX module withholds
            # NMIs while #VE info is unread (TDX module td_nmi_exit).
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
            examples=(
                Example(("lidt early", "pf"), "ok"),
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
                    "#UD through the invalidated IDT (limit 0) -> #GP",
                    "#GP while delivering #UD is handled serially (SDM table"
                    " 6-5)",
                    "#GP through the invalidated IDT (limit 0) -> #GP",
                    "#GP while delivering #GP -> #DF (SDM table 6-5)",
                    "#DF through the invalidated IDT (limit 0) -> #GP",
                    "#GP while delivering #DF -> SHUTDOWN (triple fault)")),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if st[base + F_CR4] & CR4_FSGSBASE:
            return OK
        # RDGSBASE with CR4.FSGSBASE = 0 is #UD (SDM Vol. 2 RDFSBASE/RDGSBASE).
        chain.append("RDGSBASE with CR4.FSGSBASE = 0 -> #UD")
        return raise_event(m, st, base, UD, False, R_NONE, chain)


def event_ops() -> list[Op]:
    return [Rdgsbase(), Nmi(), PageFault()]
