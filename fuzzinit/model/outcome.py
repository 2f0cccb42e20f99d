"""Outcomes of one ordering (shared SEMANTICS section 7) and the run result."""

from typing import Final

OK: Final = 0
WARN: Final = 1
TRIPLE_FAULT: Final = 2
GUEST_TERMINATED: Final = 3
HANG: Final = 4
UNHANDLED: Final = 5
NEVER_ONLINE: Final = 6
# Not an outcome of the CPU: the ordering itself cannot happen (an op on a
# CPU that was never started, a second `start`, a `wait_online` that would
# block). Engines never report it; they skip such orderings.
INVALID: Final = 7
# A security property, checked only when a scenario fails on it: a CR4 bit
# that is pinned and set on a CPU got cleared while pinning was on.
PIN_CLEARED: Final = 8
# The machine starts over in firmware: an INIT reached the boot CPU, which
# then runs the BIOS boot-strap code instead of waiting for a SIPI (SDM
# Vol. 3A 9.4.2; KVM lapic.c kvm_apic_accept_events). Whatever the kernel
# was doing (a panic's message, a kdump) is lost.
RESET: Final = 9

NAMES: Final[tuple[str, ...]] = (
    "ok", "warn", "triple_fault", "guest_terminated", "hang", "unhandled",
    "never_online", "invalid", "pin_cleared", "reset",
)


class Result:
    """What `run` returns: the outcome, the index of the event that ended the
    run (-1 if none did), the causal chain, WARN texts seen on the way, and
    which stub handlers ran."""

    def __init__(self, outcome: int, at: int, chain: list[str],
                 warnings: list[str]) -> None:
        self.outcome = outcome
        self.at = at
        self.chain = chain
        self.warnings = warnings
        # (cpu, vector) for each stub handler of an explicit IDT table
        # (`lidt gates ...`) that ran, by CPU then vector.
        self.handled: list[tuple[int, int]] = []

    @property
    def name(self) -> str:
        return NAMES[self.outcome]
