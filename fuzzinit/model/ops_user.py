"""Ring 3 and handlers that schedule: returning to user mode, SYSCALL back
into the kernel, and an interrupt whose handler switches to another task
before it returns (its frame stays on the stack meanwhile).

What the CPU keeps (machine.py F_FLAGS): USER (CPL 3), SS_KERNEL (SS holds
__KERNEL_DS rather than the null selector the boot leaves), and one open
frame: FRAME_OPEN, FRAME_FRED (delivered through FRED: ERETS returns from
it), FRAME_SS_KERNEL (the SS it saved).
"""

from typing import Final

from .arch import CR4_FRED, EFER_SCE, GP, PF, UD
from .delivery import raise_event, stale_rsp0_cache
from .machine import (
    F_CR4,
    F_EFER,
    F_FLAGS,
    F_FRED_RSP0,
    FRAME_FRED,
    FRAME_OPEN,
    FRAME_SS_KERNEL,
    R_EXTINT,
    R_NONE,
    SS_KERNEL,
    USER,
    Machine,
)
from .op import Example, Op, ring3_no_rsp0
from .outcome import INVALID, OK

EXIT_TO_USER: Final = 53
SYSCALL: Final = 54
PREEMPT_EVENT: Final = 55
EVENT_RETURN: Final = 56

LOCAL_TIMER_VECTOR: Final = 0xEC   # LX arch/x86/include/asm/irq_vectors.h

REFUSAL: Final = "ring 3 and scheduling handlers are not in runtime.pml"

# Ops a CPU may run in user mode (between `exit_to_user` and `syscall`):
# user code and the events it takes. Kernel code there is a load error;
# a kernel trigger that would fire there is an ordering that cannot happen.
USER_OPS: Final = frozenset((
    "syscall", "nop", "int3", "div0", "int", "raise", "ud2", "cpuid",
    "rdgsbase", "nmi", "pf", "mce"))

FRED_ON: Final = ("wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 stack",
                  "cr4_set fred")


class ExitToUser(Op):
    def __init__(self) -> None:
        super().__init__(
            EXIT_TO_USER, "exit_to_user", "exit_to_user",
            "return to user mode (CPL 3): ERETU under FRED - Linux's frame"
            " holds STAR's flat user selectors, so no GDT is read - or"
            " IRET/SYSRET; SS becomes the user selector",
            "FRED spec ERETU (Bochs fred.cc ERETU: flat STAR selectors);"
            " SDM Vol. 2 IRET, SYSRET; LX arch/x86/entry/entry_64_fred.S",
            promela=REFUSAL,
            examples=(
                Example(("wrmsr FRED_CONFIG entry", "cr4_set fred",
                         "exit_to_user", "nmi"), "triple_fault", (
                    "cpu0: nmi", "NMI arrives", *ring3_no_rsp0()),
                    features=("fred",)),
                Example((*FRED_ON, "exit_to_user", "nmi"), "ok",
                        features=("fred",)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: ring3-scheduling
        st[base + F_FLAGS] = (st[base + F_FLAGS] | USER) & ~SS_KERNEL
        return OK


class Syscall(Op):
    def __init__(self) -> None:
        super().__init__(
            SYSCALL, "syscall", "syscall",
            "SYSCALL from user mode: #UD while EFER.SCE = 0; else CPL 0"
            " with SS = __KERNEL_DS (from STAR). Under FRED it is an event"
            " from ring 3 on FRED_RSP0; through the IDT kernel it jumps"
            " to LSTAR (**[assumed]** set by `syscall_init()`)",
            "SDM Vol. 2 SYSCALL; Bochs proc_ctrl.cc SYSCALL, fred.cc"
            " FRED_EventDelivery",
            promela=REFUSAL,
            examples=(
                Example(("lidt full", "wrmsr EFER 0xd00", "exit_to_user",
                         "syscall"), "triple_fault", (
                    "cpu0: syscall", "SYSCALL with EFER.SCE = 0 -> #UD",
                    "#UD from ring 3 reads RSP0 from the TSS, but no TSS is"
                    " loaded (ltr): #PF",
                    "#PF while delivering #UD is handled serially (SDM"
                    " table 6-5)",
                    "#PF from ring 3 reads RSP0 from the TSS, but no TSS is"
                    " loaded (ltr): #PF",
                    "#PF while delivering #PF -> #DF (SDM table 6-5)",
                    "#DF gate uses IST1, but no TSS is loaded (ltr): the"
                    " frame push faults -> #PF",
                    "#PF while delivering #DF -> SHUTDOWN (triple fault)")),
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "wrmsr EFER 0xd00", "exit_to_user", "syscall"),
                        "ok"),
                Example((*FRED_ON, "exit_to_user", "syscall"), "ok",
                        features=("fred",)),
                Example(("lidt full", "exit_to_user", "syscall", "printk"),
                        "ok"),
            ))

    # rule: ring3-scheduling
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        fred = (st[base + F_CR4] & CR4_FRED) != 0
        if not st[base + F_EFER] & EFER_SCE:
            chain.append("SYSCALL with EFER.SCE = 0 -> #UD")
            outcome = raise_event(m, st, base, UD, False, R_NONE, chain)
        elif fred and st[base + F_FRED_RSP0] == 0:
            # SYSCALL is a FRED event of type "other" from ring 3: stack
            # level 0, FRED_RSP0 (Bochs proc_ctrl.cc SYSCALL, fred.cc).
            chain.append("SYSCALL is a FRED event from ring 3: FRED_RSP0 = 0,"
                         " the frame push faults -> #PF")
            stale_rsp0_cache(st, base, chain)
            outcome = raise_event(m, st, base, PF, False, R_NONE, chain)
        else:
            st[base + F_FLAGS] = (st[base + F_FLAGS] & ~USER) | SS_KERNEL
            return OK
        if outcome == OK:
            # The fault entered the kernel from user mode: the task gets a
            # signal and the CPU goes on in the kernel, as the program says
            # after `syscall`. SS is what that entry loaded: STAR's kernel
            # SS through FRED, the null selector through an IDT gate (SDM
            # Vol. 3A 6.14.4; Bochs FRED_EventDelivery).
            flags = st[base + F_FLAGS] & ~(USER | SS_KERNEL)
            st[base + F_FLAGS] = flags | (SS_KERNEL if fred else 0)
        return outcome


class PreemptEvent(Op):
    def __init__(self) -> None:
        super().__init__(
            PREEMPT_EVENT, "preempt_event", "preempt_event",
            "a timer interrupt in kernel mode whose handler schedules"
            " another task before it returns: the frame (its CS and SS)"
            " stays on this task's stack until `event_return`",
            "SDM Vol. 3A 6.14.2; FRED spec (the frame saves SS); LX"
            " kernel/entry/common.c irqentry_exit -> preempt_schedule_irq",
            promela=REFUSAL,
            examples=(
                Example((*FRED_ON, "preempt_event", "exit_to_user",
                         "syscall", "event_return"), "unhandled", (
                    "cpu0: event_return",
                    "ERETS: the frame's SS (the null selector) is not SS"
                    " (__KERNEL_DS) -> #GP(0)",
                    "#GP in kernel code with no fixup: die()"),
                    features=("fred",)),
                Example((*FRED_ON, "loadsegment ss", "preempt_event",
                         "exit_to_user", "syscall", "event_return"), "ok",
                        features=("fred",)),
                # IRET does not compare SS: IDT kernels never saw it
                Example(("lidt full", "preempt_event", "exit_to_user",
                         "syscall", "event_return"), "ok"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        # rule: outcomes
        if flags & (USER | FRAME_OPEN):
            return INVALID   # the loader keeps programs from this
        # rule: ring3-scheduling
        outcome = raise_event(m, st, base, LOCAL_TIMER_VECTOR, True,
                              R_EXTINT, chain)
        if outcome != OK:
            return outcome
        frame = FRAME_OPEN
        if st[base + F_CR4] & CR4_FRED:
            frame |= FRAME_FRED
        if flags & SS_KERNEL:
            frame |= FRAME_SS_KERNEL
        # rule: ring3-scheduling
        st[base + F_FLAGS] = st[base + F_FLAGS] | frame
        return OK


class EventReturn(Op):
    def __init__(self) -> None:
        super().__init__(
            EVENT_RETURN, "event_return", "event_return",
            "the scheduled-away task returns from its interrupt: ERETS for"
            " a FRED frame, which #GPs when the frame's SS is not the"
            " current SS; IRET for an IDT frame, which restores it",
            "FRED spec ERETS (Bochs fred.cc ERETS: \"corrupted old"
            " state\"); SDM Vol. 2 IRET; 723edbd2ca5f",
            promela=REFUSAL,
            examples=(
                Example((*FRED_ON, "preempt_event", "event_return"), "ok",
                        features=("fred",)),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        flags = st[base + F_FLAGS]
        # rule: outcomes
        if flags & USER or not flags & FRAME_OPEN:
            return INVALID   # the loader keeps programs from this
        saved = (flags & FRAME_SS_KERNEL) != 0
        st[base + F_FLAGS] = flags & ~(FRAME_OPEN | FRAME_FRED
                                       | FRAME_SS_KERNEL)
        # rule: ring3-scheduling
        if flags & FRAME_FRED and saved != ((flags & SS_KERNEL) != 0):
            # ERETS checks the popped SS against SS (Bochs fred.cc ERETS;
            # 723edbd2ca5f's message).
            now, was = ("__KERNEL_DS", "the null selector") if not saved \
                else ("the null selector", "__KERNEL_DS")
            chain.append(f"ERETS: the frame's SS ({was}) is not SS ({now})"
                         " -> #GP(0)")
            return raise_event(m, st, base, GP, False, R_NONE, chain)
        # IRET (and a matching ERETS) loads the saved SS.
        # rule: ring3-scheduling
        st[base + F_FLAGS] = (st[base + F_FLAGS] & ~SS_KERNEL) | (
            SS_KERNEL if saved else 0)
        return OK


def user_ops() -> list[Op]:
    return [ExitToUser(), Syscall(), PreemptEvent(), EventReturn()]
