"""The reference model's entry points: `initial_state`, `step` and `run`.

A pure, deterministic function of (Machine, events): no I/O, no randomness.
Every engine (hypothesis, atheris, the minimiser, replay) drives these.
"""

from .arch import CR4_FRED
from .life import GONE_AT_START, park, tag_loads, wild_code
from .machine import (
    CONSOLE_ON,
    F_CR4,
    F_FLAGS,
    F_FRED_CONFIG,
    F_IDT,
    F_LIFE,
    G_FLAGS,
    G_GONE,
    G_KEY,
    G_PINNED_BITS,
    HANDLED_SHIFT,
    NF,
    NG,
    NMI_BLOCKED,
    ONLINE,
    STARTED,
    STUB_RAN,
    USER,
    Machine,
)
from .op import Op
from .ops_events import MCE_EVENT, NMI_EVENT
from .ops_smp import enter_long_mode
from .outcome import INVALID, OK, PIN_CLEARED, TRIPLE_FAULT, WARN, Result
from .vocabulary import OPS, USER_OK


def initial_state(m: Machine) -> list[int]:
    """CPU 0 (the boot CPU) is running and online (LX boot_cpu_init); every
    other CPU waits for `start`."""
    st = [0] * (m.ncpu * NF + NG)
    enter_long_mode(m, st, 0)
    st[F_FLAGS] |= ONLINE
    if m.console_at_boot:
        st[m.glob + G_FLAGS] |= CONSOLE_ON
    if m.images:
        st[m.glob + G_GONE] = GONE_AT_START
    return st


def step(m: Machine, st: list[int], cpu: int, op: int, chain: list[str],
         warnings: list[str]) -> int:
    """Apply one event; return OK, a failing outcome, or INVALID. With the
    security property on, a step that clears a pinned CR4 bit while
    pinning is on ends in PIN_CLEARED."""
    if not m.pin_property:
        return _apply(m, st, cpu, op, chain, warnings)
    before = st[cpu * NF + F_CR4]
    outcome = _apply(m, st, cpu, op, chain, warnings)
    if outcome == OK:
        lost = pinned_cleared(m, st, cpu, before)
        # rule: cr-pinning
        if lost:
            chain.append(f"pinned CR4 bits 0x{lost:x} cleared on cpu{cpu}"
                         " while CR pinning is on")
            return PIN_CLEARED
    return outcome


def _apply(m: Machine, st: list[int], cpu: int, op: int, chain: list[str],
           warnings: list[str]) -> int:
    base = cpu * NF
    flags = st[base + F_FLAGS]
    kind = m.op_kind[op]
    if not flags & STARTED:
        if (kind == NMI_EVENT or kind == MCE_EVENT) and \
                park(st[base + F_LIFE]):
            return _parked_event(m, st, cpu, base, op, chain, warnings)
        # rule: outcomes
        chain.append(f"cpu{cpu} runs before it is started")
        return INVALID
    # rule: outcomes, ring3-scheduling
    if flags & USER and not USER_OK[kind]:
        # Kernel code does not run while the CPU is in user mode (the
        # loader keeps programs from it; a trigger there cannot happen).
        chain.append(f"cpu{cpu} is in user mode")
        return INVALID
    impl: Op = OPS[kind]
    if not m.images:
        outcome = impl.apply(m, st, cpu, base, m.op_a[op], m.op_b[op],
                             chain, warnings)
        if kind == MCE_EVENT:  # the check is inline: this is the hot path
            return _after_mce(m, st, kind, outcome, chain)
        return outcome
    # With kernel images (life.py): the CPU's code must still be there, and
    # an IDT or FRED entry it loads belongs to the image it runs in.
    if wild_code(m, st, cpu, base, "runs", chain):
        return TRIPLE_FAULT
    idt = st[base + F_IDT]
    config = st[base + F_FRED_CONFIG]
    outcome = impl.apply(m, st, cpu, base, m.op_a[op], m.op_b[op], chain,
                         warnings)
    if outcome == OK:
        tag_loads(st, base, kind, m.op_a[op], idt, config)
    return _after_mce(m, st, kind, outcome, chain)


# rule: offline-init
def _parked_event(m: Machine, st: list[int], cpu: int, base: int, op: int,
                  chain: list[str], warnings: list[str]) -> int:
    """An NMI or a machine check reaches an offline CPU in its play-dead
    loop: IF = 0 keeps interrupts out, not these (SDM Vol. 3A 6.7.1,
    "Interrupt 18"); it is delivered with the state the CPU parked with,
    and the handler's return goes back into the loop (LX
    arch/x86/kernel/smpboot.c hlt_play_dead, mwait_play_dead;
    d7893093a741: "a stray NMI, MCE or SMI")."""
    kind = m.op_kind[op]
    # An NMI that stays pending (a CPU stopped inside its NMI handler)
    # does not end HLT (SDM Vol. 3A 6.7.1).
    held = kind == NMI_EVENT and st[base + F_FLAGS] & NMI_BLOCKED
    outcome = OPS[kind].apply(m, st, cpu, base, m.op_a[op], m.op_b[op],
                              chain, warnings)
    if outcome == OK and m.images and kind == NMI_EVENT and not held and \
            wild_code(
            m, st, cpu, base, "returns from the NMI into its play-dead loop"
            " in", chain):
        return TRIPLE_FAULT
    return _after_mce(m, st, kind, outcome, chain)


def _after_mce(m: Machine, st: list[int], kind: int, outcome: int,
               chain: list[str]) -> int:
    """A machine check reaches every CPU (ops_events.Mce); each parked one
    returns into its play-dead loop, which may be in a gone image. Its
    handler's IRET unblocks NMIs on a CPU stopped inside its NMI handler
    (SDM Vol. 3A 6.7.1); ERETS under FRED leaves them blocked (FRED spec:
    ERETS restores the NMI-blocking the frame saved)."""
    if outcome != OK or kind != MCE_EVENT:
        return outcome
    for d in range(m.ncpu):
        # rule: machine-checks, nmi-blocking, stop-cpus
        if park(st[d * NF + F_LIFE]) and st[d * NF + F_FLAGS] & NMI_BLOCKED \
                and not st[d * NF + F_CR4] & CR4_FRED:
            st[d * NF + F_FLAGS] &= ~NMI_BLOCKED
    if not m.images:
        return outcome
    for d in range(m.ncpu):
        if park(st[d * NF + F_LIFE]) and wild_code(
                m, st, d, d * NF, "returns from the #MC into its play-dead"
                " loop in", chain):
            return TRIPLE_FAULT
    return outcome


def pinned_cleared(m: Machine, st: list[int], cpu: int, before: int) -> int:
    """Pinned CR4 bits this step cleared on `cpu` while the key was on."""
    if not st[m.glob + G_KEY]:
        return 0
    return before & ~st[cpu * NF + F_CR4] & st[m.glob + G_PINNED_BITS]


def run(m: Machine, ev_cpu: list[int], ev_op: list[int]) -> Result:
    """Run one ordering from the initial state to its outcome."""
    st = initial_state(m)
    chain: list[str] = []
    warnings: list[str] = []
    warn_at = -1
    for i in range(len(ev_cpu)):
        cpu = ev_cpu[i]
        op = ev_op[i]
        nwarn = len(warnings)
        outcome = step(m, st, cpu, op, chain, warnings)
        if outcome != OK:
            return _handled(m, st, Result(
                outcome, i, [f"cpu{cpu}: {m.op_text[op]}"] + chain, warnings))
        if len(warnings) != nwarn:
            warn_at = i  # the last WARN: the core must keep every one
        if chain:
            chain.clear()
    if warnings:
        return _handled(m, st, Result(
            WARN, warn_at, [f"WARN: {w}" for w in warnings], warnings))
    return _handled(m, st, Result(OK, -1, [], warnings))


def _handled(m: Machine, st: list[int], result: Result) -> Result:
    """Fill in which stub handlers ran (F_FLAGS bits HANDLED_SHIFT + v)."""
    if not st[m.glob + G_FLAGS] & STUB_RAN:
        return result
    for cpu in range(m.ncpu):
        bits = st[cpu * NF + F_FLAGS] >> HANDLED_SHIFT
        v = 0
        while bits:
            if bits & 1:
                result.handled.append((cpu, v))
            bits >>= 1
            v += 1
    return result


