"""The fuzzer's per-input loop, inside the model package so that mypyc
compiles it with the model: decode the input's bytes into events, run each
one as it is decided, and hash the model state after it into a coverage
counter - one call per input, no Python call or tuple per event.

The decoder is fuzzinit/fuzz/decode.py's for interleave mode (program
order kept, `before` constraints allowed), on the int tables of a Plan that
fuzzinit/fuzz/features.py builds from the scenario; decoding stops where
the model fails, since the events after a failure run nothing (unless the
name depends on the rest: see decode_run). The features are those
fuzzinit/fuzz/features.py describes (what counts as new): feature() for an
event, final_feature() for the run's end. tests/test_fuzz_features.py
compares all of it with straightforward reference implementations.
"""

from typing import Final

from .arch import CR4_FRED, CR4_FSGSBASE, CR4_PCIDE
from .machine import (
    ALT_FSGSBASE,
    ALT_PATCHED,
    APIC_EXTD,
    APIC_OFF,
    CAP_CLEARED_SHIFT,
    F_CR4,
    F_FLAGS,
    F_FRED_CONFIG,
    F_GHCB,
    F_IDT,
    F_LIFE,
    F_MMU,
    F_PERCPU,
    FRAME_FRED,
    FRAME_OPEN,
    FRAME_SS_KERNEL,
    G_FLAGS,
    G_GONE,
    G_KEY,
    GHCBS_ALLOCATED,
    NF,
    ONLINE,
    SS_KERNEL,
    STARTED,
    TSC_AUX_GUEST,
    USER,
    Machine,
)
from .ops_life import KICK_PLAY_DEAD, OFFLINE, SEND_INIT, STOP_THIS_CPU, WAIT_OFFLINE
from .ops_smp import ONLINE_OP, START, WAIT_ONLINE
from .outcome import INVALID, NAMES, NEVER_ONLINE, OK, WARN
from .run import initial_state, step

COUNTERS: Final = 4096          # libFuzzer counters the features hash into
CR4_SEEN: Final = CR4_FRED | CR4_FSGSBASE | CR4_PCIDE
FLAGS_SEEN: Final = ONLINE | USER | SS_KERNEL | FRAME_OPEN | FRAME_FRED \
    | FRAME_SS_KERNEL | APIC_EXTD | APIC_OFF | STARTED | TSC_AUX_GUEST
GLOBAL_SEEN: Final = GHCBS_ALLOCATED | ALT_PATCHED | ALT_FSGSBASE

# Where a CPU is, for the decoder (fuzzinit/orderings/schedule.py WAITING,
# RUNNING, PARKED; tests/test_fuzz_features.py checks they agree).
WAITING: Final = 0
RUNNING: Final = 1
PARKED: Final = 2

# The hash is 30 bits wide so that mypyc's int arithmetic stays on its fast
# path: it multiplies two ints in machine words only while both are below
# 2**30 (and a Python int of any size would be slower still).
MASK: Final = (1 << 30) - 1
PRIME: Final = 0x01000193      # FNV-1a's 32-bit prime (25 bits)
SEED: Final = 0x011C9DC5       # FNV-1a's offset basis, cut to 30 bits
END: Final = 0x1B873593        # a different seed for the run's end


def mix(h: int, x: int) -> int:
    """Fold `x` (0 .. MASK) into the 30-bit hash `h`; the shift brings
    every bit of `x` down to the low bits, the counter index."""
    h = ((h ^ x) * PRIME) & MASK
    return h ^ (h >> 15)


def wide(h: int, x: int) -> int:
    """mix() for an int of any size: 30 bits at a time, the low ones
    first (a negative int: its complement, after MASK)."""
    if x < 0:
        h = mix(h, MASK)
        x = ~x
    while True:
        h = mix(h, x & MASK)
        x >>= 30
        if not x:
            return h


def feature(m: Machine, st: list[int], cpu: int, op: int,
            outcome: int) -> int:
    """The counter (0 .. COUNTERS - 1) of the event `op` that just ran on
    `cpu` with `outcome`, from the state after it: seven words, each
    wide()d into the hash in turn (written out for the usual case of a
    word within MASK: this is the hot path).

    0. op kind (bits 0-7), boot CPU (8), FRED_CONFIG set (9), the pinning
       key (10), the outcome (11-14), the GHCB state (15-16), CR4.FSGSBASE,
       PCIDE (17-18) and FRED (19);
    1. the CPU's flags in FLAGS_SEEN;
    2. its page table and stale global entries (F_MMU: up to 48 bits);
    3. its life;
    4. its per-CPU variables (bits 0-7), then the gone images;
    5. the GLOBAL_SEEN flags (bits 0-11), then the feature flags the
       kernel cleared;
    6. its IDT (an explicit table is an int of hundreds of bits).

    The fields packed side by side fit their bits in every state the
    model makes (tests/test_fuzz_features.py checks them)."""
    base = cpu * NF
    g = m.glob
    cr4 = st[base + F_CR4]
    h = ((SEED ^ (
        m.op_kind[op] | (256 if cpu == 0 else 0)
        | (512 if st[base + F_FRED_CONFIG] != 0 else 0)
        | st[g + G_KEY] << 10 | outcome << 11 | st[base + F_GHCB] << 15
        | (cr4 & (CR4_FSGSBASE | CR4_PCIDE)) << 1
        | (1 << 19 if cr4 & CR4_FRED else 0))) * PRIME) & MASK
    h ^= h >> 15
    h = ((h ^ (st[base + F_FLAGS] & FLAGS_SEEN)) * PRIME) & MASK
    h ^= h >> 15
    x = st[base + F_MMU]
    if 0 <= x <= MASK:
        h = ((h ^ x) * PRIME) & MASK
        h ^= h >> 15
    else:
        h = wide(h, x)
    x = st[base + F_LIFE]
    if 0 <= x <= MASK:
        h = ((h ^ x) * PRIME) & MASK
        h ^= h >> 15
    else:
        h = wide(h, x)
    x = st[base + F_PERCPU] | st[g + G_GONE] << 8
    if 0 <= x <= MASK:
        h = ((h ^ x) * PRIME) & MASK
        h ^= h >> 15
    else:
        h = wide(h, x)
    x = st[g + G_FLAGS]
    x = x & GLOBAL_SEEN | x >> CAP_CLEARED_SHIFT << 12
    if 0 <= x <= MASK:
        h = ((h ^ x) * PRIME) & MASK
        h ^= h >> 15
    else:
        h = wide(h, x)
    x = st[base + F_IDT]
    if 0 <= x <= MASK:
        h = ((h ^ x) * PRIME) & MASK
        h ^= h >> 15
    else:
        h = wide(h, x)
    return counter(h)


def final_feature(outcome: int, warned: bool) -> int:
    """The counter of the run's end: the last event's outcome, and whether
    a WARN fired on the way."""
    return counter(mix(mix(END, outcome), 1 if warned else 0))


def counter(h: int) -> int:
    """A 30-bit hash, finished (every bit reaches the low ones), as a
    counter index."""
    h = ((h ^ (h >> 16)) * 0x045D9F3B) & MASK
    return (h ^ (h >> 16)) % COUNTERS


class Plan:
    """A scenario's decoder tables, for the Machine `m`: per CPU its
    program (op rows) and the life of each slot (orderings.schedule
    .lives_of); per trigger its CPU, op, count, the program counters its
    window is open between (lo .. hi), the life of its window, and whether
    a parked CPU takes it; per CPU and slot, the (cpu, slot) pairs of
    `before` that must have run first, as a flat list (empty for none).

    `memo` holds, per trigger plan (the sorted planned firings the input's
    first bytes give), where decode_run gets to before the first choice
    that reads a byte: up to there the ordering, and so the model's run,
    is the same for every input with that plan (the model is a pure
    function of the events). Entries are kept while the lists they hold
    come to at most `memo_budget` items in all (the default, 2**21, is
    some tens of MB at most); 0 turns the memo off."""

    def __init__(self, m: Machine, programs: list[list[int]],
                 lives: list[list[int]], trig_cpu: list[int],
                 trig_op: list[int], trig_count: list[int],
                 trig_lo: list[int], trig_hi: list[int],
                 trig_life: list[int], trig_parked: list[bool],
                 needs: list[list[list[int]]], memo_budget: int = 1 << 21
                 ) -> None:
        self.m = m
        self.programs = programs
        self.lives = lives
        self.trig_cpu = trig_cpu
        self.trig_op = trig_op
        self.trig_count = trig_count
        self.trig_lo = trig_lo
        self.trig_hi = trig_hi
        self.trig_life = trig_life
        self.trig_parked = trig_parked
        self.needs = needs
        self.has_needs = any(r for row in needs for r in row)
        self.memo: dict[tuple[int, ...], Prefix] = {}
        self.memo_budget = memo_budget
        self.memo_used = 0


class Execution:
    """What one input did; shared between the inputs of one memoised trigger
    plan, so read-only.

    `outcome` is the model's: WARN for a run that ended OK with a WARN on
    the way, INVALID for an impossible ordering. `name` is the outcome as
    fuzzinit.verdict.evaluate names it: "never_online" for a run that
    ended OK or WARN but not every program could finish (`complete`), which
    is known only when the decoding went to its end (`ended`; a failing
    event stops it). For a failing event, `cpu`, `op` and `chain` are what
    run() builds its chain of (the `cpu: op` line, then these);
    `warnings` are the WARNs on the way. `features` are counters, one per
    event run, then the end's (none for INVALID). key() is what the run's
    signature (fuzzinit.verdict.signature) is made of: equal keys, equal
    signatures."""

    def __init__(self, outcome: int, ended: bool, complete: bool, cpu: int,
                 op: int, chain: list[str], warnings: list[str],
                 features: list[int]) -> None:
        self.outcome = outcome
        self.ended = ended
        self.complete = complete
        self.cpu = cpu
        self.op = op
        self.chain = chain
        self.warnings = warnings
        self.features = features
        if outcome == INVALID:
            self.name = "invalid"
        elif outcome in (OK, WARN) and ended and not complete:
            self.name = "never_online"
        else:
            self.name = NAMES[outcome]
        self._key: object = None

    def key(self) -> object:
        if self._key is None:
            if self.name == "never_online":
                self._key = NEVER_ONLINE
            elif self.cpu >= 0:
                self._key = (self.outcome, self.cpu, self.op,
                             tuple(self.chain))
            elif self.outcome == WARN:
                self._key = (WARN, tuple(self.warnings))
            else:
                self._key = OK
        return self._key


class Prefix:
    """Plan.memo's entry: the decoder's and the model's state at the first
    choice that reads a byte, with the features and WARNs so far; or, for
    an ordering that has no such choice, its Execution."""

    def __init__(self, st: list[int], pc: list[int], started: list[int],
                 online: list[bool], planned: list[int],
                 features: list[int], warnings: list[str],
                 done: Execution | None) -> None:
        self.st = st
        self.pc = pc
        self.started = started
        self.online = online
        self.planned = planned
        self.features = features
        self.warnings = warnings
        self.done = done


def _remember(plan: Plan, key: tuple[int, ...], entry: Prefix,
              size: int) -> None:
    """Keep `entry` (holding `size` list items) if the budget allows."""
    if plan.memo_used + size <= plan.memo_budget:
        plan.memo[key] = entry
        plan.memo_used += size


def decode_run(plan: Plan, data: bytes,
               trace: list[int] | None = None) -> Execution:
    """Decode `data` as fuzzinit/fuzz/decode.py does and run each event
    as it is decided, until the ordering ends or an event fails - or, for
    an event that fails with WARN (none does today), on to the ordering's
    end without running more, since whether it can finish decides the
    name. With `trace`, each event's cpu, op, slot and trigger are
    appended to it (and the memo is not used, only filled)."""
    size = len(data)
    pos = 0
    programs = plan.programs
    trig_cpu = plan.trig_cpu
    nt = len(trig_cpu)
    # Each trigger's fire bit and point; (point, trigger) as one sortable
    # int: point << 16 | trigger.
    planned: list[int] = []
    for i in range(nt):
        points = len(programs[trig_cpu[i]]) + 1
        for _ in range(plan.trig_count[i]):
            fires = 0
            if pos < size:
                fires = data[pos] & 1
                pos += 1
            point = 0
            if pos < size:
                point = data[pos] % points
                pos += 1
            if fires:
                planned.append(point << 16 | i)
    planned.sort()
    m = plan.m
    ncpu = len(programs)
    key = tuple(planned)
    # recording: this run's prefix goes into the memo.
    recording = False
    known = plan.memo.get(key) if trace is None else None
    if known is not None:
        done = known.done
        if done is not None:
            return done
        st = known.st.copy()
        pc = known.pc.copy()
        started = known.started.copy()
        online = known.online.copy()
        planned = known.planned.copy()
        features = known.features.copy()
        warnings = known.warnings.copy()
    else:
        st = initial_state(m)
        pc = [0] * ncpu
        started = [WAITING] * ncpu
        started[0] = RUNNING
        online = [False] * ncpu
        online[0] = True
        features = []
        warnings = []
        recording = key not in plan.memo and \
            plan.memo_used < plan.memo_budget
    kinds = m.op_kind
    arg = m.op_a
    lives = plan.lives
    trig_op = plan.trig_op
    trig_lo = plan.trig_lo
    trig_hi = plan.trig_hi
    trig_life = plan.trig_life
    trig_parked = plan.trig_parked
    needs = plan.needs
    has_needs = plan.has_needs
    fire = [0] * len(planned)   # indices into planned, nfire of them
    ready = [0] * ncpu          # CPUs, nready of them
    chain: list[str] = []
    outcome = OK
    # Set when an event fails with WARN (no op does today): the name then
    # depends on whether the ordering can finish, so decoding goes on.
    failed = -1
    fcpu = -1
    fop = -1
    while True:
        nfire = 0
        blocked = 0
        for j in range(len(planned)):
            p = planned[j]
            i = p & 0xFFFF
            c = trig_cpu[i]
            at = pc[c]
            if at < p >> 16 or at < trig_lo[i] or at > trig_hi[i]:
                continue
            where = started[c]
            if where == RUNNING:
                if lives[c][at] != trig_life[i]:
                    continue
            elif where != PARKED or not trig_parked[i] or \
                    lives[c][at] != trig_life[i] + 1:
                continue
            fire[nfire] = j
            nfire += 1
            blocked |= 1 << c
        nready = 0
        for c in range(ncpu):
            if started[c] != RUNNING or blocked >> c & 1:
                continue
            slot = pc[c]
            program = programs[c]
            if slot >= len(program):
                continue
            op = program[slot]
            kind = kinds[op]
            if kind == WAIT_ONLINE:
                if not online[arg[op]]:
                    continue
            elif kind == START:
                if started[arg[op]] == RUNNING:
                    continue
            elif kind == SEND_INIT or kind == WAIT_OFFLINE or \
                    kind == KICK_PLAY_DEAD:
                if started[arg[op]] != PARKED:
                    continue
            if has_needs:
                req = needs[c][slot]
                done_before = True
                for r in range(0, len(req), 2):
                    if pc[req[r]] <= req[r + 1]:
                        done_before = False
                        break
                if not done_before:
                    continue
            ready[nready] = c
            nready += 1
        total = nfire + nready
        if total > 1 and recording:
            # The first choice that depends on the input's bytes.
            _remember(plan, key, Prefix(
                st.copy(), pc.copy(), started.copy(), online.copy(),
                planned.copy(), features.copy(), warnings.copy(), None),
                len(st) + 3 * ncpu + len(planned) + len(features)
                + len(warnings))
            recording = False
        if not total:
            break
        k = 0
        if total > 1 and pos < size:
            k = data[pos] % total
            pos += 1
        if k < nfire:
            i = planned.pop(fire[k]) & 0xFFFF
            c = trig_cpu[i]
            op = trig_op[i]
            slot = -1
        else:
            i = -1
            c = ready[k - nfire]
            slot = pc[c]
            op = programs[c][slot]
            pc[c] = slot + 1
            kind = kinds[op]
            if kind == ONLINE_OP:
                online[c] = True
            elif kind == START:
                started[arg[op]] = RUNNING
            elif kind == OFFLINE or kind == STOP_THIS_CPU:
                started[c] = PARKED
                online[c] = False
            elif kind == SEND_INIT:
                started[arg[op]] = WAITING
        if trace is not None:
            trace.extend((c, op, slot, i))
        if failed >= 0:
            continue
        outcome = step(m, st, c, op, chain, warnings)
        features.append(feature(m, st, c, op, outcome))
        if outcome != OK:
            if outcome != INVALID:
                features.append(final_feature(outcome, len(warnings) > 0))
            if outcome != WARN:
                ex = Execution(outcome, False, False, c, op, chain, warnings,
                               features)
                if recording:
                    _remember(plan, key, _done(ex), _size(ex))
                return ex
            failed = outcome
            fcpu = c
            fop = op
            recording = False   # the rest of this run is not resumable
            continue
        if chain:
            chain.clear()
    complete = True
    for c in range(ncpu):
        if pc[c] != len(programs[c]):
            complete = False
    if failed >= 0:
        ex = Execution(failed, True, complete, fcpu, fop, chain, warnings,
                       features)
    else:
        features.append(final_feature(OK, len(warnings) > 0))
        ex = Execution(WARN if warnings else OK, True, complete, -1, -1,
                       chain, warnings, features)
    if recording:
        _remember(plan, key, _done(ex), _size(ex))
    return ex


def _done(ex: Execution) -> Prefix:
    return Prefix([], [], [], [], [], [], [], ex)


def _size(ex: Execution) -> int:
    return 1 + len(ex.features) + len(ex.chain) + len(ex.warnings)


def run_features(m: Machine, cpus: list[int], ops: list[int],
                 complete: bool) -> Execution:
    """The same for an ordering decoded elsewhere (permutation mode), which
    `complete` says finished every program."""
    st = initial_state(m)
    chain: list[str] = []
    warnings: list[str] = []
    features: list[int] = []
    for e in range(len(cpus)):
        c = cpus[e]
        op = ops[e]
        outcome = step(m, st, c, op, chain, warnings)
        features.append(feature(m, st, c, op, outcome))
        if outcome != OK:
            if outcome != INVALID:
                features.append(final_feature(outcome, len(warnings) > 0))
            return Execution(outcome, True, complete, c, op, chain,
                             warnings, features)
        if chain:
            chain.clear()
    features.append(final_feature(OK, len(warnings) > 0))
    return Execution(WARN if warnings else OK, True, complete, -1, -1,
                     chain, warnings, features)
