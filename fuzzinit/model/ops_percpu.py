"""Kernel per-CPU variables that cache a register (F_PERCPU): memory, so
they outlive an offline CPU's registers, and a cache that disagrees with
what it caches is state the reports show."""

from typing import Final

from .grammar import OpSyntaxError
from .machine import (
    F_FRED_RSP0,
    F_PERCPU,
    FEATURE_FRED,
    PERCPU_FRED_RSP0,
    Machine,
    kernel_has,
)
from .op import Example, Op, ring3_no_rsp0
from .ops_msr import FRED_STACK
from .outcome import OK

FRED_RSP0_OP: Final = 50

FORMS: Final[tuple[str, ...]] = ("update", "sync")


class FredRsp0(Op):
    def __init__(self) -> None:
        super().__init__(
            FRED_RSP0_OP, "fred_rsp0", "fred_rsp0 update|sync",
            "the per-CPU `fred_rsp0`, a cache of IA32_FRED_RSP0: `update` is"
            " the exit-to-user work that writes the MSR only when the cache"
            " differs from the task's stack top (then both hold it); `sync`"
            " writes the MSR from the cache, as cpu_init_fred_exceptions()"
            " does since de31b3cd7063. Nothing happens without"
            " X86_FEATURE_FRED",
            "LX arch/x86/include/asm/entry-common.h"
            " arch_exit_to_user_mode_prepare, fred.h fred_update_rsp0"
            " (fe85ee391966); arch/x86/kernel/fred.c (de31b3cd7063)",
            samples=("fred_rsp0 update", "fred_rsp0 sync"),
            examples=(
                # the cache survives an offline; cpu_init_fred_exceptions
                # then zeroes the MSR and the next update skips the write
                Example(("wrmsr FRED_RSP0 0", "fred_rsp0 update",
                         "wrmsr FRED_RSP0 0", "fred_rsp0 update",
                         "wrmsr FRED_CONFIG entry", "cr4_set fred",
                         "exit_to_user", "nmi"), "triple_fault", (
                    "cpu0: nmi", "NMI arrives", *ring3_no_rsp0(
                        "(the per-CPU fred_rsp0 says FRED_RSP0 holds the"
                        " task's stack top, so an exit to user mode leaves"
                        " it alone: fe85ee391966)")),
                    features=("fred",)),
                Example(("fred_rsp0 update", "wrmsr FRED_RSP0 0",
                         "fred_rsp0 sync", "wrmsr FRED_CONFIG entry",
                         "cr4_set fred", "exit_to_user", "nmi"), "ok",
                        features=("fred",)),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in FORMS:
            raise OpSyntaxError("fred_rsp0 needs update or sync",
                                "fred_rsp0 update|sync",
                                "write 'fred_rsp0 update' for the exit to"
                                " user mode, 'fred_rsp0 sync' for"
                                " de31b3cd7063's write from the cache")
        return FORMS.index(args[0].lower()), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not kernel_has(m, st, FEATURE_FRED):
            return OK
        cached = st[base + F_PERCPU] & PERCPU_FRED_RSP0
        # rule: percpu-cache
        if a == 0:
            # fred_update_rsp0(): WRMSRNS only if the cache is stale (the
            # model has one task per CPU: its stack top is FRED_STACK).
            if not cached:
                st[base + F_FRED_RSP0] = FRED_STACK
                st[base + F_PERCPU] |= PERCPU_FRED_RSP0
        else:
            # rule: percpu-cache
            st[base + F_FRED_RSP0] = FRED_STACK if cached else 0
        return OK


def percpu_ops() -> list[Op]:
    return [FredRsp0()]
