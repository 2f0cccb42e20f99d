"""Random but deterministic differential cases.

generate(seed, n) draws n cases from random.Random(seed) alone, so one seed
always gives the same list. The mix weights the IDT-delivery triggers (int3,
div0, ud2, int N, gp, pf) most; a few nmi, mov_cr4, rdmsr and wrmsr cases
ride along (QEMU TCG's answers to the reserved-bit and unknown-MSR ones are
known deviations from the SDM, see test_qemu_harness.KNOWN_DEVIATIONS).
"""

from __future__ import annotations

import random

from .cases import IMAGE_CR4, Case, Gate

# Vectors where delivery rules differ: #DE, NMI, #BP, #UD, #DF, #TS, #NP,
# #SS, #GP, #PF (SDM Vol. 3A 6.15, Table 6-4 and 6-5).
INTERESTING = (0, 2, 3, 6, 8, 10, 11, 12, 13, 14)

# The vector each fixed trigger raises first (SDM Vol. 3A 6.15).
TRIGGER_VECTOR = {"int3": 3, "div0": 0, "ud2": 6, "gp": 13, "pf": 14, "nmi": 2}

# mov_cr4 values: reserved bits 63, 25 and 15 (SDM Vol. 3A 2.5: #GP), bits
# -cpu max of QEMU 7.2 lacks (FRED 32, LASS 27, PCIDE 17: TCG has no PCID),
# CET with CR0.WP = 0 (#GP, SDM 2.5), clearing PAE in IA-32e mode (#GP, SDM
# 4.1.2) and a valid OSFXSR. QEMU 7.2 hangs on the reserved ones (a timeout
# each), so they are few.
CR4_VALUES = (IMAGE_CR4 | 1 << 63, IMAGE_CR4 | 1 << 25, IMAGE_CR4 | 1 << 15,
              IMAGE_CR4 | 1 << 32, IMAGE_CR4 | 1 << 27, IMAGE_CR4 | 1 << 23,
              IMAGE_CR4 | 1 << 17, 0, IMAGE_CR4 | 1 << 9)

# Toggling CR4.LA57 in IA-32e mode: #GP(0) (SDM Vol. 2B MOV CR), which QEMU
# raises as the SDM says, so this CR4 trigger is cheap and drawn more often.
CR4_LA57 = IMAGE_CR4 | 1 << 12

# MSR triggers: an unknown MSR (RDMSR/WRMSR in SDM Vol. 2B: #GP), IA32_EFER
# (0xC0000080) read, rewritten with its value (LME | LMA), with reserved bit
# 63 set (#GP, WRMSR) and with LME cleared under CR0.PG = 1 (#GP, SDM Vol.
# 3A 4.1.2).
MSR_TRIGGERS = ("rdmsr 0x12345", "rdmsr 0xc0000080", "wrmsr 0x12345 0x1",
                "wrmsr 0xc0000080 0x500", "wrmsr 0xc0000080 0x8000000000000500",
                "wrmsr 0xc0000080 0x0")

_FIXED = ("int3", "div0", "ud2", "gp", "pf")


def _trigger(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.75:
        return rng.choice(_FIXED)
    if roll < 0.87:
        vector = rng.choice(INTERESTING) if rng.random() < 0.5 else rng.randrange(256)
        return f"int {vector}"
    if roll < 0.92:
        return "nmi"
    if roll < 0.94:
        return f"mov_cr4 {CR4_LA57:#x}"
    if roll < 0.96:
        return f"mov_cr4 {rng.choice(CR4_VALUES):#x}"
    return rng.choice(MSR_TRIGGERS)


def trigger_vector(trigger: str) -> int:
    """The vector a trigger raises first when it faults (#GP for CR4/MSR)."""
    if trigger.startswith("int "):
        return int(trigger[4:])
    return TRIGGER_VECTOR.get(trigger, 13)


def _vectors(rng: random.Random, vector: int) -> list[int]:
    style = rng.random()
    if style < 0.1:
        return []
    if style < 0.35:
        extra = [vector] if vector > 31 and rng.random() < 0.7 else []
        return list(range(32)) + extra
    # #DF and #GP gates more often than the rest: otherwise most sparse
    # tables end in shutdown and say little about the delivery rules.
    chosen = {v for v in INTERESTING
              if rng.random() < (0.7 if v in (8, 13) else 0.5)}
    if rng.random() < 0.7:
        chosen.add(vector)
    chosen.update(rng.randrange(256) for _ in range(rng.randrange(3)))
    return sorted(chosen)


def _gate(rng: random.Random, vector: int) -> Gate:
    present = rng.random() < 0.85
    ist = 0 if rng.random() < 0.6 else rng.randrange(1, 8)
    return Gate(vector, present, ist)


def _limit(rng: random.Random, vector: int) -> int:
    end = 16 * vector + 15  # last byte of the vector's gate (SDM 6.10)
    roll = rng.random()
    if roll < 0.4:
        return 0xFFF
    if roll < 0.8:
        pick = rng.choice((end, end - 1, end + 1, end - 16, 16 * 8 + 15,
                           16 * 13 + 15, 16 * 14 + 15, 0))
    else:
        pick = rng.randrange(0x10000)
    return min(max(pick, 0), 0xFFFF)


def _slots(rng: random.Random) -> frozenset[int]:
    roll = rng.random()
    if roll < 0.2:
        return frozenset()
    if roll < 0.4:
        return frozenset(range(1, 8))
    return frozenset(n for n in range(1, 8) if rng.random() < 0.5)


def generate(seed: int, n: int) -> list[Case]:
    """n cases from seed; the same seed always gives the same list."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        trigger = _trigger(rng)
        vector = trigger_vector(trigger)
        gates = tuple(_gate(rng, v) for v in _vectors(rng, vector))
        cases.append(Case(gates=gates, limit=_limit(rng, vector),
                          ltr=rng.random() < 0.75, ist_slots=_slots(rng),
                          trigger=trigger))
    return cases
