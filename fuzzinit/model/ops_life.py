"""A CPU's later lives (life.py): going offline into a park loop, being
stopped by another CPU (reboot, kexec, panic), INIT from another CPU, and
kernel images - jumping into one, copying one over another."""

from typing import Final

from .arch import NMI
from .delivery import raise_event
from .grammar import OpSyntaxError
from .life import (
    CODE_SHIFT,
    IMAGES,
    PARK_HLT,
    PARK_MASK,
    PARK_MWAIT,
    PARKS,
    gone,
    image,
    init_cpu,
    park,
    park_cpu,
    wild_code,
)
from .machine import (
    F_FLAGS,
    F_LIFE,
    G_GONE,
    NF,
    NMI_BLOCKED,
    R_EXTINT,
    STARTED,
    Machine,
)
from .op import BLOCK, CPUS, SHARED, Example, Op, no_gate
from .op import ONLINE as ONLINE_BIT
from .ops_smp import cpu_arg
from .outcome import INVALID, OK, RESET, TRIPLE_FAULT

OFFLINE: Final = 57
SEND_INIT: Final = 58
REPLACE_IMAGE: Final = 59    # machine.IMAGE_OPS
JUMP_IMAGE: Final = 60
WAIT_OFFLINE: Final = 61
KICK_PLAY_DEAD: Final = 62
STOP_THIS_CPU: Final = 63
# The ops that end a life: the CPU parks and runs no program op until
# another CPU's `start` (schedule.py, load.py and the engines treat both
# alike).
PARKING: Final = frozenset((OFFLINE, STOP_THIS_CPU))

REBOOT_VECTOR: Final = 0xF8   # LX arch/x86/include/asm/irq_vectors.h
STOP_HOW: Final[tuple[str, ...]] = ("reboot", "nmi")

REFUSAL: Final = ("CPU offline, INIT and kernel images are not in"
                  " runtime.pml")

# The examples' AP: brought up far enough to go down again.
_UP: Final = ("start 1", "cpu1: lidt full", "cpu1: ltr",
              "cpu1: tss_setup_ist", "cpu1: online")


# An example of each image op, for its syntax error's hint.
_IMAGE_EXAMPLE: Final = {"jump_image": "jump_image next",
                         "replace_image": "replace_image kernel next"}


def _image(name: str, words: list[str], n: int) -> list[int]:
    if len(words) != n or any(w.lower() not in IMAGES for w in words):
        raise OpSyntaxError(f"{name} needs {n} image name{'s' if n > 1 else ''}",
                            name + " IMAGE" * n + " (an IMAGE is one of "
                            + ", ".join(IMAGES) + ")",
                            f"write e.g. '{_IMAGE_EXAMPLE[name]}'")
    return [IMAGES.index(w.lower()) for w in words]


class Offline(Op):
    def __init__(self) -> None:
        super().__init__(
            OFFLINE, "offline", "offline hlt|mwait",
            "the end of this CPU's cpuhp teardown: `cpu_disable_common()`"
            " clears its online bit, then `play_dead()` parks it with"
            " interrupts off - `hlt` (hlt_play_dead) or `mwait`"
            " (mwait_play_dead: MONITOR a line of kernel memory, MWAIT, loop),"
            " registers kept. An NMI still reaches it through its IDT or"
            " FRED and returns into the loop; a write to the monitored line"
            " (a kernel copy over it) wakes an MWAIT loop. It runs again"
            " after another CPU's `start`",
            "LX arch/x86/kernel/smpboot.c native_play_dead, mwait_play_dead,"
            " hlt_play_dead, cpu_disable_common; SDM Vol. 2 MWAIT",
            writes=ONLINE_BIT, promela=REFUSAL,
            examples=(
                # (an NMI to the parked CPU is a trigger: tests/test_life.py)
                Example((*_UP, "cpu1: offline hlt", "wait_offline 1",
                         "start 1", "cpu1: lidt full", "cpu1: pf"), "ok"),
                # INIT/SIPI again: the IDT is the reset one
                Example((*_UP, "cpu1: offline mwait", "start 1",
                         "cpu1: nmi"), "triple_fault", (
                    "cpu1: nmi", "NMI arrives", *no_gate("NMI", "none"))),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in PARKS[1:]:
            raise OpSyntaxError("offline needs the loop the CPU parks in",
                                "offline hlt|mwait",
                                "write 'offline mwait' for mwait_play_dead,"
                                " 'offline hlt' for hlt_play_dead")
        return PARKS.index(args[0].lower()), 0

    # rule: offline-init
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        park_cpu(st, base, a)
        return OK


class StopThisCpu(Op):
    def __init__(self) -> None:
        super().__init__(
            STOP_THIS_CPU, "stop_this_cpu", "stop_this_cpu reboot|nmi",
            "this CPU is stopped by another one's `native_stop_other_cpus()`"
            " (reboot, kexec, a panic): the REBOOT_VECTOR IPI (`reboot`) or"
            " the NMI sent when that timed out (`nmi`) is delivered through"
            " its IDT or FRED, and the handler's `stop_this_cpu()` clears"
            " its online bit and halts with interrupts off, for good - on"
            " any CPU, the boot CPU too. An NMI still reaches it, unless the"
            " NMI stopped it (that handler never returns: NMIs stay"
            " blocked); it runs again only after INIT-SIPI (`start`);"
            " `send_init` to the boot CPU resets the machine",
            "LX arch/x86/kernel/smp.c native_stop_other_cpus, sysvec_reboot,"
            " smp_stop_nmi_callback; arch/x86/kernel/process.c"
            " stop_this_cpu; SDM Vol. 3A 6.7.1",
            writes=ONLINE_BIT, promela=REFUSAL,
            examples=(
                Example(("lidt full", "stop_this_cpu reboot"), "ok"),
                Example(("stop_this_cpu reboot",), "triple_fault", (
                    "cpu0: stop_this_cpu reboot",
                    "REBOOT_VECTOR IPI arrives",
                    *no_gate("vector 248", "none"))),
                # (an NMI to the stopped CPU is a trigger:
                # tests/test_life.py)
                Example(("lidt full", "ltr", "tss_setup_ist",
                         "stop_this_cpu nmi"), "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        if len(args) != 1 or args[0].lower() not in STOP_HOW:
            raise OpSyntaxError("stop_this_cpu needs what stops the CPU",
                                "stop_this_cpu reboot|nmi",
                                "write 'stop_this_cpu reboot' for the"
                                " REBOOT_VECTOR IPI, 'stop_this_cpu nmi' for"
                                " the NMI fallback")
        return STOP_HOW.index(args[0].lower()), 0

    # rule: stop-cpus
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if a == 0:
            chain.append("REBOOT_VECTOR IPI arrives")
            outcome = raise_event(m, st, base, REBOOT_VECTOR, True, R_EXTINT,
                                  chain)
        else:
            # smp_stop_nmi_callback() calls stop_this_cpu() inside the NMI
            # handler, which never returns: no IRET/ERETS unblocks NMIs
            # (SDM Vol. 3A 6.7.1), so later NMIs stay pending.
            chain.append("NMI arrives")
            st[base + F_FLAGS] |= NMI_BLOCKED
            outcome = raise_event(m, st, base, NMI, True, 0, chain)
        if outcome != OK:
            return outcome
        # stop_this_cpu(): local_irq_disable(); set_cpu_online(false); ...
        # for (;;) native_halt(); - the handler never returns.
        park_cpu(st, base, PARK_HLT)
        return OK


class _OnParked(Op):
    """An op another CPU runs on parked CPU N (`send_init`, `wait_offline`,
    `kick_play_dead`): N is its argument, and a CPU that is not parked
    makes the ordering INVALID (the schedule never offers one)."""

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return cpu_arg(self.name, args, ncpu), 0

    @staticmethod
    def parked(st: list[int], a: int, chain: list[str]) -> bool:
        target = a * NF
        # rule: outcomes
        if st[target + F_FLAGS] & STARTED or not park(st[target + F_LIFE]):
            chain.append(f"cpu{a} is not parked")
            return False
        return True


class SendInit(_OnParked):
    def __init__(self) -> None:
        super().__init__(
            SEND_INIT, "send_init", "send_init N",
            "an INIT IPI to CPU N, which is parked: its registers go back"
            " to their reset values and it waits for a SIPI - no NMI, no"
            " memory write wakes it (kernel memory is not touched). The"
            " boot CPU (cpu 0) does not wait: it runs the firmware's"
            " boot-strap code, and the machine starts over (`reset`)",
            "SDM Vol. 3A 10.1.1 (table 10-1), 12.4 (INIT), 9.4.2 (INIT after"
            " MP init: the BSP runs the BIOS); KVM lapic.c"
            " kvm_apic_accept_events; LX arch/x86/kernel/smp.c"
            " native_stop_other_cpus (45e34c8af58f), b1472a60a584",
            reads=SHARED, writes=BLOCK, promela=REFUSAL,
            examples=(
                Example((*_UP, "cpu1: offline mwait", "send_init 1",
                         "start 1", "cpu1: lidt full", "cpu1: pf",
                         "jump_image control", "replace_image kernel next"),
                        "ok"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not self.parked(st, a, chain):
            return INVALID
        # rule: stop-cpus
        if a == 0:
            chain.append("INIT to the boot CPU: its BSP flag makes it run the"
                         " firmware's boot-strap code rather than wait for"
                         " a SIPI -> the machine starts over (SDM Vol. 3A"
                         " 9.4.2)")
            return RESET
        # rule: offline-init
        init_cpu(st, a * NF)
        return OK


class ReplaceImage(Op):
    def __init__(self) -> None:
        super().__init__(
            REPLACE_IMAGE, "replace_image", "replace_image OLD NEW",
            "copy kernel image NEW over OLD (relocate_kernel's copy loop,"
            " core_restore_code): OLD's code, IDT and data are gone, NEW is"
            " in place. A CPU parked in an MWAIT loop of OLD wakes (the copy"
            " writes its monitored line) and runs NEW's bytes. Images: "
            + ", ".join(IMAGES),
            "SDM Vol. 2 MONITOR/MWAIT (a store to the armed range ends"
            " MWAIT); LX arch/x86/kernel/relocate_kernel_64.S,"
            " arch/x86/power/hibernate_asm_64.S core_restore_code;"
            " ec527c318036",
            reads=SHARED | CPUS, writes=BLOCK, promela=REFUSAL,
            examples=(
                Example((*_UP, "cpu1: offline mwait", "jump_image control",
                         "replace_image kernel next"), "triple_fault", (
                    "cpu0: replace_image kernel next",
                    "the copy writes the line cpu1 MONITORs in"
                    " mwait_play_dead: it wakes",
                    "cpu1 loops in kernel's code, whose memory holds another"
                    " image now: it runs whatever is there -> taken as"
                    " SHUTDOWN (triple fault) [derived; d7893093a741 and"
                    " ec527c318036 report triple faults]")),
                Example((*_UP, "cpu1: offline hlt", "jump_image control",
                         "replace_image kernel next", "jump_image next"),
                        "ok"),
                # an IDT loaded in the old kernel, used after the copy
                Example(("lidt full", "jump_image control",
                         "replace_image kernel next", "pf"),
                        "triple_fault", (
                    "cpu0: pf", "#PF raised",
                    "#PF: the IDT IDTR points at is in kernel's memory,"
                    " which holds another image now: the CPU runs whatever"
                    " is there -> taken as SHUTDOWN (triple fault)"
                    " [derived]")),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        old, new = _image(self.name, args, 2)
        if old == new:
            raise OpSyntaxError(f"replace_image {IMAGES[old]} {IMAGES[new]}"
                                " copies an image over itself",
                                "two different images",
                                "name the image the copy overwrites first")
        return old, new

    # rule: kernel-images
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        g = m.glob + G_GONE
        st[g] = (st[g] | 1 << a) & ~(1 << b)
        # The copy loop itself must run outside OLD (relocate_kernel in the
        # control page, core_restore_code in a safe page).
        if wild_code(m, st, cpu, base, "copies over", chain):
            return TRIPLE_FAULT
        for d in range(m.ncpu):
            life = st[d * NF + F_LIFE]
            if park(life) == PARK_MWAIT and image(life, CODE_SHIFT) == a:
                chain.append(f"the copy writes the line cpu{d} MONITORs in"
                             " mwait_play_dead: it wakes")
                wild_code(m, st, d, d * NF, "loops in", chain)
                return TRIPLE_FAULT
        return OK


class JumpImage(Op):
    def __init__(self) -> None:
        super().__init__(
            JUMP_IMAGE, "jump_image", "jump_image IMAGE",
            "this CPU jumps to code of IMAGE (relocate_kernel in the control"
            " page, the new kernel's entry, restore_registers in the"
            " hibernation image, a firmware call): an image that is not in"
            " place is a wild jump",
            "LX arch/x86/kernel/relocate_kernel_64.S, machine_kexec_64.c;"
            " arch/x86/power/hibernate_asm_64.S",
            reads=SHARED, promela=REFUSAL,
            examples=(
                Example(("jump_image next",), "triple_fault", (
                    "cpu0: jump_image next",
                    "cpu0 jumps to next's code, which is not in place: it"
                    " runs whatever is there -> taken as SHUTDOWN (triple"
                    " fault) [derived]")),
                Example(("jump_image control", "replace_image kernel next",
                         "jump_image next", "lidt full", "pf"), "ok"),
            ))

    def parse(self, args: list[str], ncpu: int) -> tuple[int, int]:
        return _image(self.name, args, 1)[0], 0

    # rule: kernel-images
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if gone(m, st, a):
            chain.append(f"cpu{cpu} jumps to {IMAGES[a]}'s code, which is not"
                         " in place: it runs whatever is there -> taken as"
                         " SHUTDOWN (triple fault) [derived]")
            return TRIPLE_FAULT
        life = st[base + F_LIFE] & ~(0xF << CODE_SHIFT)
        st[base + F_LIFE] = life | a << CODE_SHIFT
        return OK


class WaitOffline(_OnParked):
    def __init__(self) -> None:
        super().__init__(
            WAIT_OFFLINE, "wait_offline", "wait_offline N",
            "block until CPU N is parked by `offline` or `stop_this_cpu`"
            " (an ordering that would block here is not an ordering): the"
            " control CPU's wait for the dying CPU in `cpu_down()`, or for"
            " `cpus_stop_mask` to empty in `native_stop_other_cpus()`",
            "LX kernel/cpu.c takedown_cpu, cpuhp_bp_sync_dead;"
            " arch/x86/kernel/smpboot.c play_dead_common"
            " (cpuhp_ap_report_dead); arch/x86/kernel/smp.c"
            " native_stop_other_cpus",
            reads=BLOCK, promela=REFUSAL,
            examples=(Example((*_UP, "cpu1: offline hlt", "wait_offline 1"),
                              "ok"),))

    # rule: offline-init
    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        return OK if self.parked(st, a, chain) else INVALID


class KickPlayDead(_OnParked):
    def __init__(self) -> None:
        super().__init__(
            KICK_PLAY_DEAD, "kick_play_dead", "kick_play_dead N",
            "`smp_kick_mwait_play_dead()` for CPU N before kexec: it writes"
            " the control word of the line CPU N MONITORs; a CPU parked in"
            " mwait_play_dead sees KEXEC_HLT and halts there with IF = 0"
            " (parked in a HLT loop from now on; an NMI still wakes it)",
            "LX arch/x86/kernel/smp.c native_stop_other_cpus,"
            " arch/x86/kernel/smpboot.c smp_kick_mwait_play_dead,"
            " mwait_play_dead (d7893093a741, f9c9987bf52f)",
            reads=SHARED, writes=BLOCK, promela=REFUSAL,
            examples=(
                Example((*_UP, "cpu1: offline mwait", "kick_play_dead 1",
                         "jump_image control", "replace_image kernel next"),
                        "ok"),
            ))

    def apply(self, m: Machine, st: list[int], cpu: int, base: int, a: int,
              b: int, chain: list[str], warnings: list[str]) -> int:
        if not self.parked(st, a, chain):
            return INVALID
        life = st[a * NF + F_LIFE]
        # rule: offline-init
        if park(life) == PARK_MWAIT:
            st[a * NF + F_LIFE] = life & ~PARK_MASK | PARK_HLT
        return OK


def life_ops() -> list[Op]:
    return [Offline(), SendInit(), ReplaceImage(), JumpImage(), WaitOffline(),
            KickPlayDead(), StopThisCpu()]

