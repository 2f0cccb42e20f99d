"""The reference model against QEMU TCG on generated architectural cases.

Each case (tests/differential/cases.py) is an explicit IDT, a TSS and one
trigger; QEMU runs it as a boot image (qemu.py), the model as the ops
`lidt gates ...`, `ltr`, `tss_setup_ist`, then the trigger, with the stub
handlers recording which gate ran (Result.handled). Both answer with the
first handler that ran, a shutdown, or nothing. QEMU is a check, not the
spec: where QEMU 7.2 TCG departs from the SDM, the case is counted as a
known deviation only if it belongs to a class listed in DEVIATIONS (with
the SDM's rule) and QEMU answers as that class says; any other difference
fails the test.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from differential.cases import (
    IMAGE_CR4,
    NONE,
    SHUTDOWN,
    Case,
    Result,
    parse_trigger,
    run_model,
)
from differential.generate import generate
from differential.qemu import qemu_available, run_cases
from fuzzinit.model.arch import CR4_BITS

# How many generated cases CI runs (the issue asks for at least 500).
COUNT = int(os.environ.get("FUZZINIT_QEMU_CASES", "600"))
SEED = 20261130

# MSRs the image's CPU does not implement (QEMU 7.2 -cpu max): the model
# is told, as a scenario would say it (`platform.absent_msrs`).
ABSENT_MSRS = (0x12345,)
# CR4 bits QEMU 7.2 TCG's -cpu max enumerates among those the model knows
# (CPUID 7.0: FSGSBASE SMEP SMAP UMIP PKU LA57; 1.ECX: XSAVE; no PCID,
# FRED, LASS, CET, PKS, VMX, SMX under TCG).
FEATURES = ("smep", "smap", "umip", "fsgsbase", "la57", "xsave", "pku")


def ops(case: Case) -> list[str]:
    """The case as the model's ops on one CPU."""
    present = sorted(g.vector for g in case.gates)
    text = "lidt gates " + (",".join(map(str, present)) or "none")
    np = [str(g.vector) for g in case.gates if not g.present]
    if np:
        text += " np " + ",".join(np)
    ist = [f"{g.vector}:{g.ist}" for g in case.gates if g.ist]
    if ist:
        text += " ist " + ",".join(ist)
    out = [
        # The image runs with CR0.WP = 0, CD = NW = 1, EFER = LME | LMA.
        "mov_cr0 -wp +cd +nw", "wrmsr EFER 0x500",
        text + f" limit {case.limit:#x}"]
    if case.ltr:
        out.append("ltr")
    if case.ist_slots:
        out.append("tss_setup_ist " + ",".join(map(str, sorted(
            case.ist_slots))))
    kind, args = parse_trigger(case.trigger)
    if kind in ("int3", "div0", "ud2", "nmi"):
        out.append(kind)
    elif kind == "gp":
        out.append("raise 13")
    elif kind == "pf":
        out.append("raise 14")
    elif kind == "int":
        out.append(f"int {args[0]}")
    elif kind == "mov_cr4":
        new = args[0]
        words = [f"+bit{b}" for b in range(64) if new >> b & 1
                 and not IMAGE_CR4 >> b & 1]
        words += [f"-bit{b}" for b in range(64) if IMAGE_CR4 >> b & 1
                  and not new >> b & 1]
        out.append("mov_cr4 " + " ".join(words))
    elif kind == "rdmsr":
        out.append(f"rdmsr {args[0]:#x}")
    else:
        out.append(f"wrmsr {args[0]:#x} {args[1]:#x}")
    return out


def model(case: Case, tmp: Path) -> Result:
    program = ops(case)
    return run_model(
        tmp / "case.toml",
        '[scenario]\nname = "qemu-case"\nfail_on = ["triple_fault"]\n'
        "[platform]\nfeatures = " + json.dumps(list(FEATURES)) + "\n"
        "absent_msrs = " + json.dumps([hex(n) for n in ABSENT_MSRS]) + "\n"
        '[kernel]\nentry_cr4 = ["pae"]\n'
        "[[cpu]]\nprogram = " + json.dumps(program) + "\n", program)


def _reserved_cr4(case: Case) -> bool:
    kind, args = parse_trigger(case.trigger)
    if kind != "mov_cr4":
        return False
    allowed = sum(1 << CR4_BITS[n] for n in (
        "vme", "pvi", "tsd", "de", "pse", "pae", "mce", "pge", "pce",
        "osfxsr", "osxmmexcpt", "smep", "smap", "umip", "fsgsbase", "la57",
        "osxsave", "pke"))
    return bool(args[0] & ~allowed)


def _sets_pcide(case: Case) -> bool:
    kind, args = parse_trigger(case.trigger)
    return kind == "mov_cr4" and bool(args[0] & (1 << CR4_BITS["pcide"]))


def _clears_pae(case: Case) -> bool:
    kind, args = parse_trigger(case.trigger)
    return kind == "mov_cr4" and not args[0] & (1 << CR4_BITS["pae"])


def _bad_msr(case: Case) -> bool:
    kind, args = parse_trigger(case.trigger)
    if kind == "rdmsr" or kind == "wrmsr":
        if args[0] in ABSENT_MSRS:
            return True
    return kind == "wrmsr" and args[0] == 0xC0000080 and args[1] >> 22 != 0


def _lme_cleared(case: Case) -> bool:
    kind, args = parse_trigger(case.trigger)
    return kind == "wrmsr" and args[0] == 0xC0000080 and \
        not args[1] & (1 << 8)


# Classes of case where QEMU 7.2 TCG is known to depart from the SDM: the
# test takes QEMU's answer there only if it is the one named.
DEVIATIONS = {
    # SDM Vol. 2B MOV CR / Vol. 3A 2.5: setting a reserved or unsupported
    # CR4 bit is #GP(0); QEMU 7.2 TCG leaves the write pending and hangs.
    "reserved CR4 bit: QEMU hangs instead of #GP": (_reserved_cr4, "hang"),
    # The same rule for CR4.PCIDE, which TCG does not enumerate (CPUID.01H:
    # ECX bit 17 = 0): QEMU takes the write.
    "CR4.PCIDE without PCID enumerated: QEMU raises no #GP": (_sets_pcide,
                                                             NONE),
    # SDM Vol. 2B MOV CR: clearing CR4.PAE in IA-32e mode is #GP(0); QEMU
    # takes the write, and the next fetch through 4-level tables read as
    # PAE ones ends in a shutdown.
    "CR4.PAE cleared in IA-32e mode: QEMU takes it and shuts down": (
        _clears_pae, SHUTDOWN),
    # SDM Vol. 2B RDMSR/WRMSR: an MSR the CPU does not implement, or a
    # reserved IA32_EFER bit, is #GP(0); QEMU 7.2 TCG ignores the access.
    "unknown MSR or reserved EFER bit: QEMU raises no #GP": (_bad_msr,
                                                            NONE),
    # SDM Vol. 3A 10.8.5: changing EFER.LME while CR0.PG = 1 is #GP(0);
    # QEMU takes the write.
    "EFER.LME cleared with paging on: QEMU raises no #GP": (_lme_cleared,
                                                           NONE),
}


def _deviation(case: Case, want: Result, got: Result) -> str | None:
    """The deviation class this difference belongs to: the case is of the
    class, QEMU answers as the class says, and the model raised the #GP
    the SDM asks for (it did not just carry on)."""
    for name, (applies, answer) in DEVIATIONS.items():
        if applies(case) and got[0] == answer and want[0] != NONE:
            return name
    return None


@pytest.mark.skipif(not qemu_available() and not os.environ.get("CI"),
                    reason="nasm or qemu-system-x86_64 missing")
def test_the_model_agrees_with_qemu_on_generated_cases(
        tmp_path: Path) -> None:
    cases = generate(SEED, COUNT)
    answers = run_cases(cases)
    agreed = 0
    deviations: Counter[str] = Counter()
    disagreements = []
    for case, got in zip(cases, answers, strict=True):
        want = model(case, tmp_path)
        if want == got:
            agreed += 1
            continue
        name = _deviation(case, want, got)
        if name is not None:
            deviations[name] += 1
            continue
        disagreements.append((case, ops(case), want, got))
    print(f"\nQEMU differential: {len(cases)} cases, {agreed} agree,"
          f" {sum(deviations.values())} known QEMU deviations"
          + "".join(f"\n  {n}: {c}" for n, c in sorted(deviations.items())))
    assert not disagreements, (len(disagreements), disagreements[:5])
    assert agreed >= 500
