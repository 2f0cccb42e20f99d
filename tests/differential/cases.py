"""One architectural case for the differential check, and its result.

A case is what both sides (QEMU TCG via tests/differential/qemu.py, and the
reference model) are given: the IDT's gates and limit, whether a TSS is
loaded, which IST slots hold a stack, and one trigger instruction. The
result says which handler ran first, or that the CPU shut down or hung.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

# CR4 the image runs with when the trigger executes: PAE only (CR4.PAE, bit
# 5, is required by IA-32e mode, SDM Vol. 3A 9.8.5). A "mov_cr4" trigger
# gives the full new value, so generators derive it from this one.
IMAGE_CR4 = 0x20
# The rest of the state the trigger runs in (read back with QEMU's -d int):
# CR0 = PG | CD | NW | ET | PE (the reset value 0x60000010, SDM Vol. 3A
# 9.1.1 Table 9-1, plus PE and PG; WP is 0), IA32_EFER = LMA | LME, CPL 0,
# RFLAGS.IF = 0, RSP = 0x80000.
IMAGE_CR0 = 0xE0000011
IMAGE_EFER = 0x500

# Result kinds.
HANDLER = "handler"
SHUTDOWN = "shutdown"
HANG = "hang"
NONE = "none"

Result = tuple[str, int]

_INT_N = re.compile(r"int (\d{1,3})")
_MOV_CR4 = re.compile(r"mov_cr4 0x([0-9a-f]{1,16})")
_RDMSR = re.compile(r"rdmsr 0x([0-9a-f]{1,8})")
_WRMSR = re.compile(r"wrmsr 0x([0-9a-f]{1,8}) 0x([0-9a-f]{1,16})")
_PLAIN = frozenset({"int3", "div0", "ud2", "gp", "pf", "nmi"})


@dataclass(frozen=True)
class Gate:
    """One IDT entry: a 64-bit interrupt gate (type 0xE, DPL 0)."""

    vector: int  # 0..255
    # False: the valid 64-bit interrupt-gate type with P=0, so delivery
    # raises #NP (SDM Vol. 3A 6.15 "Interrupt 11"). Vectors not listed in
    # Case.gates are all-zero descriptors (invalid type: #GP, SDM 6.12.1.1).
    present: bool = True
    ist: int = 0  # 0..7


@dataclass(frozen=True)
class Case:
    """An IDT, a TSS and one trigger instruction."""

    gates: tuple[Gate, ...]
    limit: int  # IDTR limit (0..0xFFFF); the IDT base is a page the image owns
    # True: LTR loads the image's 64-bit TSS. False: TR keeps its reset state
    # (selector 0, base 0, limit 0xFFFF, SDM Vol. 3A 9.1.1 Table 9-1), so an
    # IST read goes through linear address 0, which the image leaves unmapped.
    ltr: bool
    ist_slots: frozenset[int]  # TSS IST slots (1..7) holding a mapped stack
    trigger: str


def check_case(case: Case) -> None:
    """Raise ValueError naming the field when a case is malformed."""
    vectors = [g.vector for g in case.gates]
    if len(set(vectors)) != len(vectors):
        raise ValueError(f"gates: vector listed twice in {sorted(vectors)}")
    for gate in case.gates:
        if not 0 <= gate.vector <= 255:
            raise ValueError(f"gate vector {gate.vector}: expected 0..255")
        if not 0 <= gate.ist <= 7:
            raise ValueError(f"gate {gate.vector} ist {gate.ist}: expected 0..7")
    if not 0 <= case.limit <= 0xFFFF:
        raise ValueError(f"limit {case.limit:#x}: expected 0..0xffff")
    if not case.ist_slots <= frozenset(range(1, 8)):
        raise ValueError(f"ist_slots {sorted(case.ist_slots)}: expected 1..7")
    parse_trigger(case.trigger)


def parse_trigger(trigger: str) -> tuple[str, tuple[int, ...]]:
    """Split a trigger string into its kind and numeric arguments.

    >>> parse_trigger("wrmsr 0x12345 0x1")
    ('wrmsr', (74565, 1))
    """
    if trigger in _PLAIN:
        return trigger, ()
    match = _INT_N.fullmatch(trigger)
    if match and int(match.group(1)) <= 255:
        return "int", (int(match.group(1)),)
    match = _MOV_CR4.fullmatch(trigger)
    if match:
        return "mov_cr4", (int(match.group(1), 16),)
    match = _RDMSR.fullmatch(trigger)
    if match:
        return "rdmsr", (int(match.group(1), 16),)
    match = _WRMSR.fullmatch(trigger)
    if match:
        return "wrmsr", (int(match.group(1), 16), int(match.group(2), 16))
    raise ValueError(
        f"trigger {trigger!r}: expected int3, div0, ud2, gp, pf, nmi, "
        "'int N' (0..255), 'mov_cr4 0xV', 'rdmsr 0xN' or 'wrmsr 0xN 0xV' "
        "(lower-case hex)")


def run_model(path: Path, text: str, program: list[str]) -> Result:
    """The model's answer to a case written out as scenario `text` whose
    one CPU runs `program`: the first stub handler that ran, a shutdown,
    or nothing (any other outcome is a harness error)."""
    # Imported here: the generators and the images need no model.
    from fuzzinit.model.outcome import NAMES
    from fuzzinit.model.run import run
    from fuzzinit.scenario.load import load

    path.write_text(text, encoding="utf-8")
    sc = load(path)
    result = run(sc.machine, [0] * len(program),
                 [sc.op_index[" ".join(t.split())] for t in program])
    if result.handled:
        return HANDLER, result.handled[0][1]
    if NAMES[result.outcome] == "triple_fault":
        return SHUTDOWN, -1
    assert NAMES[result.outcome] == "ok", (program, result.chain)
    return NONE, -1
