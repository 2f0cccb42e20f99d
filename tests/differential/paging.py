"""Paging cases for the differential check (issue 15 item 9: CR3 switches,
SMEP/SMAP, NX): two 4-level trees, one target page, one access.

The image (image.py's template) keeps its identity map of the low 2 MiB
(code, GDT, IDT, TSS, stack: supervisor, writable, executable, not global)
in both trees; tree A is the template's PML4, tree B a second PML4 with a
copy of the low map that may leave out the IDT's page or the stack's (a
case's `hole`). Linear TARGET (1 GiB) maps one 4 KiB page holding a RET
(physical TARGET_PHYS), with a leaf built from the case's letters per
tree (r: P, w: R/W, x: XD = 0, u: U/S, g: G; no r: not present); the
entries above it are P | R/W | U/S with XD = 0, so the leaf alone
decides (SDM Vol. 3A 4.6.1: R/W and U/S are ANDed, XD ORed over the walk).

The model sees the same case as a scenario: [memory] tables kernel (A) and
kexec (B) mapping text, desc, stack as rwx (B less the hole's region) and
`data` (the target) with the case's letters; ops `stac`, `access data
read` + `write_cr3 kexec` (the switch), then `access data KIND`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from .cases import (
    IMAGE_CR4,
    Case,
    Gate,
    Result,
    run_model,
)
from .image import LOAD, STACK, assemble, fill

TARGET = 0x4000_0000
# The target's physical page: identity-mapped RAM between the image's end
# (0x20000) and the stack, given its RET by the trigger code (the image
# has no room for one more page below the real-mode code).
TARGET_PHYS = 0x30000
KINDS = ("read", "write", "fetch")
HOLES = ("", "desc", "stack")
CR4_NAMES = {"pge": 7, "smep": 20, "smap": 21}
_LETTERS = "rwxug"


@dataclass(frozen=True)
class PagingCase:
    """Two trees' leaves for the target page, the control bits, one access."""

    table_a: str  # letters of the target's leaf in tree A ("" = not present)
    table_b: str  # ... in tree B
    cr4: frozenset[str]  # among pge, smep, smap (PAE is always on)
    wp: bool  # CR0.WP
    nxe: bool  # IA32_EFER.NXE
    stac: bool  # STAC (EFLAGS.AC = 1) before the accesses
    switch: bool  # read the target in A, MOV to CR3 of B, then the access
    kind: str  # read, write or fetch
    gate14: bool = True  # False: vector 14's IDT entry is all-zero (#GP)
    # With a switch: the low page tree B leaves not present, "desc" (the
    # IDT's page) or "stack" (the page below RSP); the model's table B
    # then lacks that region. Not with fetch: CALL pushes first.
    hole: str = ""
    # With a switch and CR4.PGE: clear CR4.PGE after the MOV to CR3, which
    # flushes global entries too (SDM Vol. 3A 4.10.4.1).
    flush: bool = False


def check(case: PagingCase) -> None:
    """Raise ValueError naming the field when a case is malformed."""
    for name, letters in (("table_a", case.table_a),
                          ("table_b", case.table_b)):
        if set(letters) - set(_LETTERS) or (letters and "r" not in letters):
            raise ValueError(f"{name} {letters!r}: expected '' or r plus "
                             "any of w x u g")
    if not case.cr4 <= set(CR4_NAMES):
        raise ValueError(f"cr4 {sorted(case.cr4)}: expected pge smep smap")
    if case.kind not in KINDS:
        raise ValueError(f"kind {case.kind!r}: expected read write fetch")
    if case.hole not in HOLES or case.hole and (
            not case.switch or case.kind == "fetch"):
        raise ValueError(f"hole {case.hole!r}: expected '', or desc or "
                         "stack with a switch and no fetch")
    if case.flush and not (case.switch and "pge" in case.cr4):
        raise ValueError("flush: expected only with a switch and pge")


def leaf(letters: str) -> str:
    """The nasm expression of the target's 4 KiB PTE (SDM Vol. 3A 4.5,
    Table 4-20): P bit 0, R/W 1, U/S 2, G 8, XD 63."""
    if "r" not in letters:
        return "0"
    low = 1 | ("w" in letters) << 1 | ("u" in letters) << 2 \
        | ("g" in letters) << 8
    xd = "" if "x" in letters else " + 0x8000000000000000"
    return f"{TARGET_PHYS + low:#x}{xd}"


def _gates(case: PagingCase) -> tuple[Gate, ...]:
    return tuple(Gate(v) for v in range(32) if case.gate14 or v != 14)


def _idt_case(case: PagingCase) -> Case:
    return Case(gates=_gates(case), limit=0xFFF, ltr=True,
                ist_slots=frozenset(), trigger="ud2")


def trigger(case: PagingCase) -> str:
    code = [f"mov byte [{TARGET_PHYS:#x}], 0xc3", f"mov rbx, {TARGET:#x}"]
    if case.stac:
        code.append("stac")
    if case.switch:
        code += ["mov rax, [rbx]", "mov rax, pml4_b", "mov cr3, rax"]
    if case.flush:
        code += ["mov rax, cr4", f"and rax, ~{1 << CR4_NAMES['pge']:#x}",
                 "mov cr4, rax"]
    code.append({"read": "mov rax, [rbx]", "write": "mov [rbx + 8], rax",
                 "fetch": "call rbx"}[case.kind])
    return "\n    ".join(code)


def source(case: PagingCase) -> str:
    check(case)
    # The page number tree B leaves out (0 is out in both trees anyway).
    hole = {"": "0", "desc": f"((idt - $$ + {LOAD:#x}) >> 12)",
            "stack": f"{(STACK - 8) >> 12:#x}"}[case.hole]
    cr4 = IMAGE_CR4 | sum(1 << CR4_NAMES[n] for n in case.cr4)
    tables = f"""
    align 4096
pd_tgt_a:
    dq pt_tgt_a + 7
    times 511 dq 0
pt_tgt_a:
    dq {leaf(case.table_a)}
    times 511 dq 0
pml4_b:
    dq pdpt_b + 7
    times 511 dq 0
pdpt_b:
    dq pd_low_b + 3
    dq pd_tgt_b + 7
    times 510 dq 0
pd_tgt_b:
    dq pt_tgt_b + 7
    times 511 dq 0
pt_tgt_b:
    dq {leaf(case.table_b)}
    times 511 dq 0
pd_low_b:
    dq pt_low_b + 3
%assign i 1
%rep 15
    dq (i << 21) | 0x83
%assign i i+1
%endrep
    times 496 dq 0
pt_low_b:                      ; pt_low, less the hole's page
    dq 0
%assign i 1
%rep 511
    dq ((i << 12) | 3) * (i != {hole})
%assign i i+1
%endrep
"""
    # The template's pml4 entry 0 is P | R/W (3); the target needs U/S there
    # too, so it is rewritten below.
    text = fill(_idt_case(case), trigger(case), cr4=cr4,
                cr0_or=0x10000 if case.wp else 0,
                efer_or=0x800 if case.nxe else 0,
                pdpt_1="pd_tgt_a + 7", tables=tables)
    return text.replace("pml4:\n    dq pdpt + 3\n", "pml4:\n    dq pdpt + 7\n")


def build(case: PagingCase) -> Path:
    return assemble(source(case))


# The model's view -------------------------------------------------------

FEATURES = ("smep", "smap")
_FIXED = ["text:rwx", "desc:rwx", "stack:rwx"]


def table(letters: str, hole: str = "") -> list[str]:
    return [r for r in _FIXED if not r.startswith(hole + ":")] + (
        [f"data:{letters}"] if letters else [])


def ops(case: PagingCase) -> list[str]:
    gates = ",".join(str(g.vector) for g in _gates(case))
    out = [("mov_cr0 +wp" if case.wp else "mov_cr0 -wp") + " +cd +nw",
           f"wrmsr EFER {0xD00 if case.nxe else 0x500:#x}",
           f"lidt gates {gates} limit 0xfff", "ltr"]
    if case.stac:
        out.append("stac")
    if case.switch:
        out += ["access data read", "write_cr3 kexec"]
    if case.flush:
        out.append("mov_cr4 -pge")
    out.append(f"access data {case.kind}")
    return out


def scenario_text(case: PagingCase) -> str:
    program = ops(case)
    return (
        '[scenario]\nname = "qemu-paging-case"\nfail_on = ["triple_fault"]\n'
        "[platform]\nfeatures = " + json.dumps(list(FEATURES)) + "\n"
        "[kernel]\nentry_cr4 = " + json.dumps(["pae", *sorted(case.cr4)])
        + "\n[memory]\ncr3 = \"kernel\"\n[memory.tables]\n"
        "kernel = " + json.dumps(table(case.table_a)) + "\n"
        "kexec = " + json.dumps(table(case.table_b, case.hole)) + "\n"
        "[[cpu]]\nprogram = " + json.dumps(program) + "\n")


def model(case: PagingCase, tmp: Path) -> Result:
    return run_model(tmp / "paging-case.toml", scenario_text(case),
                     ops(case))


# Generation -------------------------------------------------------------

def _letters(rng: random.Random) -> str:
    if rng.random() < 0.12:
        return ""
    return "r" + "".join(c for c in "wxug" if rng.random() < 0.5)


def generate(seed: int, n: int) -> list[PagingCase]:
    """n paging cases from seed; the same seed always gives the same list."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        a = _letters(rng)
        switch = rng.random() < 0.4
        b = _letters(rng) if switch else a
        if switch and rng.random() < 0.5 and a:
            a = a if "g" in a else a + "g"  # a global entry to leave over
        if switch and rng.random() < 0.3:
            # A global entry in A narrower than B's: where the model keeps
            # it (CR4.PGE), the access B allows may fault (rule 27).
            a = "rg" + "".join(c for c in "xu" if rng.random() < 0.5)
            b = "rwx" + ("u" if "u" in a else "")
        cr4 = frozenset(c for c in CR4_NAMES if rng.random() < 0.5)
        if switch and rng.random() < 0.6:
            cr4 |= {"pge"}
        kind = rng.choice(KINDS)
        hole = rng.choice(HOLES[1:]) if switch and kind != "fetch" \
            and rng.random() < 0.25 else ""
        cases.append(PagingCase(
            table_a=a, table_b=b, cr4=cr4, wp=rng.random() < 0.6,
            nxe=rng.random() < 0.8, stac=rng.random() < 0.3, switch=switch,
            kind=kind, gate14=rng.random() < 0.9, hole=hole,
            flush="pge" in cr4 and switch and rng.random() < 0.3))
    return cases
