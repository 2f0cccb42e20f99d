"""Starting CPUs and the online handshake (the engines' synchronisation
ops), and the attacker's write to cpu_online_mask."""

from typing import Final

from .arch import CR0_PE, CR0_PG, CR0_WP, EFER_LMA, EFER_LME, EFER_NXE, EFER_SCE
from .grammar import OpSyntaxError, number
from .life import CODE_SHIFT, FRED_SHIFT, IDT_SHIFT, image, init_cpu
from .machine import (
    F_CR0,
    F_CR4,
    F_EFER,
    F_FLAGS,
    F_FRED_CONFIG,
    F_LIFE,
    F_MMU,
    NF,
    ONLINE,
    STARTED,
    Machine,
)
from .op import BLOCK, Example, Op, one_number
from .op import ONLINE as ONLINE_BIT
from .outcome import INVALID, OK

START: Final = 24
ONLINE_OP: Final = 25
WAIT_ONLINE: Final = 26
CLEAR_ONLINE: Final = 30

# Long mode as the kernel's 64-bit entry finds it: protected mode, paging
# and WP on (head_64.S CR0_STATE), EFER LME/LMA/NX/SCE; CR4 from the
# scenario (an AP gets it through the u32 trampoline field, so bit 32 never
# arrives that way: LX arch/x86/realmode/init.c trampoline_cr4_features).
ENTRY_CR0: Final = CR0_PE | CR0_WP | CR0_PG
ENTRY_EFER: Final = EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE


def enter_long_mode(m: Machine, st: list[int], base: int) -> None:
    st[base + F_CR0] = ENTRY_CR0
    st[base + F_CR4] = m.entry_cr4
    st[base + F_EFER] = ENTRY_EFER
    # Every CPU starts on [memory]'s `cr3` table, its TLB empty [assumed].
    st[base + F_MMU] = m.cr3_start
    st[base + F_FLAGS] |= STARTED | m.apic_flags


def cpu_arg(name: str, args: list[str], ncpu: int) -> int:
    value = number(one_number(name, args), name, 1 << 63)
    if not 0 <= value < ncpu:
        raise OpSyntaxError(
            f"{name} {value}: there is no cpu {value}",
            f"a CPU number from 0 to {ncpu - 1}",
            "add a [[cpu]] table for it or fix the number")
    return value


class Start(Op):
    def __init__(self) -> None:
        super().__init__(
            START, "start", "start N",
            "start CPU N (INIT, SIPI): it enters the kernel in long mode (CR4"
            " from `entry_cr4`) - the first time with the FRED MSRs 0, or"
            " again after it went `offline` (INIT resets control registers,"
            " IDTR, GDTR and TR; MSRs and kernel memory stay: rule 30); it"
            " runs the image of the CPU that starts it",
            "LX arch/x86/kernel/smpboot.c do_boot_cpu,"
            " wakeup_secondary_cpu_via_init; realmode/rm/trampoline_64.S;"
            " SDM Vol. 3A 10.1.1",
            writes=BLOCK | ONLINE_BIT,
            examples=(
                Example(("start 1", "cpu1: online", "wait_online 1"), "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return cpu_arg(self.name, args, ncpu), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        target = a * NF
        # rule: outcomes, offline-init
        if st[target + F_FLAGS] & STARTED:
            chain.append(f"cpu{a} is started while it runs")
            return INVALID
        # INIT first: a parked CPU's registers go back to reset values; a
        # CPU never started has them already (life.init_cpu).
        init_cpu(st, target)
        # rule: trampoline-cr4
        enter_long_mode(m, st, target)
        # The trampoline jumps into the starter's kernel; the IDTR is the
        # reset one (tagged with it too), FRED_CONFIG survived INIT with
        # the image it was written in (life.init_cpu).
        code = image(st[base + F_LIFE], CODE_SHIFT)
        st[target + F_LIFE] = st[target + F_LIFE] & (0xF << FRED_SHIFT) | \
            code << CODE_SHIFT | code << IDT_SHIFT
        if not st[target + F_FRED_CONFIG]:
            st[target + F_LIFE] = st[target + F_LIFE] & ~(0xF << FRED_SHIFT) \
                | code << FRED_SHIFT
        return OK


class Online(Op):
    def __init__(self) -> None:
        super().__init__(
            ONLINE_OP, "online", "online",
            "`set_cpu_online()`: this CPU's bit in cpu_online_mask",
            "LX arch/x86/kernel/smpboot.c start_secondary",
            writes=ONLINE_BIT,
            examples=(Example(("online",), "ok"),))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        st[base + F_FLAGS] |= ONLINE
        return OK


class WaitOnline(Op):
    def __init__(self) -> None:
        super().__init__(
            WAIT_ONLINE, "wait_online", "wait_online N",
            "block until CPU N is online (an ordering that would block here"
            " is not an ordering)",
            "LX kernel/cpu.c bringup_wait_for_ap_online",
            reads=ONLINE_BIT,
            examples=(Example(("start 1", "cpu1: online", "wait_online 1"),
                              "ok"),))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return cpu_arg(self.name, args, ncpu), 0

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # rule: outcomes
        if not st[a * NF + F_FLAGS] & ONLINE:
            chain.append(f"cpu{cpu} waits for cpu{a}, which is not online")
            return INVALID
        return OK


class ClearOnline(Op):
    def __init__(self) -> None:
        super().__init__(
            CLEAR_ONLINE, "clear_online", "clear_online",
            "attacker capability: clear this CPU's bit in cpu_online_mask,"
            " ordinary kernel data",
            "LX tip cccc0c8ff0a9 review",
            writes=ONLINE_BIT, samples=("clear_online",),
            trigger_words=(1, 1),
            examples=(Example(("online", "clear_online"), "ok"),))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        # cpu_online_mask is ordinary kernel data: an attacker with a write
        # primitive can clear a bit (LX tip cccc0c8ff0a9 review).
        st[base + F_FLAGS] &= ~ONLINE
        return OK


def smp_ops() -> list[Op]:
    return [Start(), Online(), WaitOnline(), ClearOnline()]
