"""The QEMU side of the differential check, tested on hand-written cases.

Each EXPECTED case's outcome is derived from the SDM (Vol. 3A: 6.10 IDT
limit, 6.12.1.1 gate checks, 6.14.5 IST, 6.15 per-vector pages, Table 6-4
exception classes, Table 6-5 "Conditions for Generating a Double Fault",
"Interrupt 8": a fault while delivering #DF is a shutdown) and cited. Where
QEMU TCG disagrees with the SDM, KNOWN_DEVIATIONS asserts what QEMU does
and that it differs from the SDM, so a QEMU that fixes it fails loudly.
"""

from __future__ import annotations

import os

import pytest

from differential.cases import Case, Gate, Result, check_case, parse_trigger
from differential.generate import generate
from differential.image import source
from differential.qemu import (
    HarnessError,
    decode,
    qemu_available,
    run_case,
    run_cases,
)

if not qemu_available() and os.environ.get("CI"):
    pytest.fail("nasm or qemu-system-x86_64 is not installed; .ci/run "
                "installs them", pytrace=False)
needs_qemu = pytest.mark.skipif(
    not qemu_available(),
    reason="nasm or qemu-system-x86_64 is not installed: the QEMU harness "
           "needs both (apt-get install nasm qemu-system-x86)")

ALL_EXCEPTIONS = tuple(Gate(v) for v in range(32))
NO_SLOTS: frozenset[int] = frozenset()


def case(trigger: str, *gates: Gate, limit: int = 0xFFF, ltr: bool = True,
         slots: frozenset[int] = NO_SLOTS) -> Case:
    return Case(gates=gates, limit=limit, ltr=ltr, ist_slots=slots,
                trigger=trigger)


H = "handler"
SHUTDOWN: Result = ("shutdown", -1)

# name: (case, expected result, why (SDM Vol. 3A unless named))
EXPECTED: dict[str, tuple[Case, Result, str]] = {
    "int3 gate 3": (case("int3", Gate(3)), (H, 3), "6.15 Interrupt 3"),
    "div0 gate 0": (case("div0", *ALL_EXCEPTIONS), (H, 0), "6.15 Interrupt 0"),
    "ud2 gate 6": (case("ud2", *ALL_EXCEPTIONS), (H, 6), "6.15 Interrupt 6"),
    "gp gate 13": (case("gp", *ALL_EXCEPTIONS), (H, 13),
                   "6.15 Interrupt 13: non-canonical address"),
    "pf gate 14": (case("pf", *ALL_EXCEPTIONS), (H, 14),
                   "6.15 Interrupt 14: not-present page"),
    "nmi gate 2": (case("nmi", *ALL_EXCEPTIONS), (H, 2),
                   "11.6.1 ICR delivery mode NMI; 6.15 Interrupt 2"),
    "int 255": (case("int 255", Gate(255)), (H, 255), "6.4.2 INT n"),
    "int 8 is not #DF": (case("int 8", Gate(8)), (H, 8),
                         "6.4.2: INT n delivers vector n, no error code"),
    "int3 invalid gate -> #GP": (
        case("int3", Gate(13)), (H, 13),
        "6.15 Interrupt 13 (IDT entry not a gate); Table 6-5 benign + "
        "contributory: serially"),
    "int N invalid gate -> #GP": (
        case("int 77", Gate(13)), (H, 13),
        "Table 6-4: INT n is benign; Table 6-5 serially"),
    "nmi invalid gate -> #GP": (
        case("nmi", Gate(13)), (H, 13), "Table 6-4: NMI is benign"),
    "div0 invalid gate -> #DF": (
        case("div0", Gate(8)), (H, 8),
        "Table 6-5: contributory (#DE) + contributory (#GP) = #DF"),
    "div0 no gates -> shutdown": (
        case("div0"), SHUTDOWN,
        "6.15 Interrupt 8: #GP while delivering #DF = shutdown"),
    "ud2 no gates -> shutdown": (
        case("ud2"), SHUTDOWN,
        "#UD benign -> #GP; #GP + #GP = #DF (Table 6-5); #DF faults: shutdown"),
    "gate at the limit": (
        case("int 200", Gate(13), Gate(200), limit=16 * 200 + 15), (H, 200),
        "6.10, 6.14.1: the 16-byte gate ends at 16v+15 <= limit"),
    "gate one byte beyond the limit -> #GP": (
        case("int 200", Gate(13), Gate(200), limit=16 * 200 + 14), (H, 13),
        "6.10: a gate beyond the IDT limit raises #GP"),
    "#DF gate beyond the limit -> shutdown": (
        case("div0", Gate(8), limit=16 * 8 + 14), SHUTDOWN,
        "6.10 + 6.15 Interrupt 8"),
    "#DF gate at the limit": (
        case("div0", Gate(8), limit=16 * 8 + 15), (H, 8), "6.10 + Table 6-5"),
    "not-present gate -> #NP": (
        case("int3", Gate(3, present=False), Gate(11)), (H, 11),
        "6.15 Interrupt 11 (gate with P = 0); #BP benign: serially"),
    "not-present #DE gate -> #DF": (
        case("div0", Gate(0, present=False), Gate(8), Gate(11)), (H, 8),
        "Table 6-5: #DE + #NP, both contributory = #DF"),
    "gp with not-present #GP gate -> #DF": (
        case("gp", Gate(13, present=False), Gate(11), Gate(8)), (H, 8),
        "Table 6-5: #GP + #NP = #DF"),
    "pf invalid gate -> #DF": (
        case("pf", Gate(13), Gate(8)), (H, 8),
        "Table 6-5: page fault + contributory (#GP) = #DF"),
    "IST slot holding 0 -> #PF": (
        case("int3", Gate(3, ist=1), Gate(14)), (H, 14),
        "6.14.5: RSP = IST1 = 0, first push at 0xFFFFFFFFFFFFFFF8 "
        "(unmapped): #PF; #BP benign: serially"),
    "IST slot with a stack": (
        case("int3", Gate(3, ist=1), Gate(14), slots=frozenset({1})), (H, 3),
        "6.14.5"),
    "#PF handler on an empty IST slot -> #DF": (
        case("pf", Gate(14, ist=2), Gate(8)), (H, 8),
        "Table 6-5: page fault + page fault = #DF"),
    "#PF + #PF, no #DF gate -> shutdown": (
        case("pf", Gate(14, ist=2)), SHUTDOWN, "Table 6-5; Interrupt 8"),
    "#DF on an empty IST slot -> shutdown": (
        case("div0", Gate(8, ist=3), Gate(14)), SHUTDOWN,
        "Interrupt 8: #PF while delivering #DF = shutdown"),
    "#DF on a valid IST slot": (
        case("div0", Gate(8, ist=3), slots=frozenset({3})), (H, 8), "6.14.5"),
    "#DE on an empty IST slot -> #PF serially": (
        case("div0", Gate(0, ist=1), Gate(14)), (H, 14),
        "Table 6-5: contributory + page fault: handle serially"),
    "#GP on an empty IST slot -> #PF serially": (
        case("gp", Gate(13, ist=4), Gate(14), slots=frozenset({1, 2, 3})),
        (H, 14), "Table 6-5: contributory + page fault: handle serially"),
    "NMI on an empty IST slot -> #PF": (
        case("nmi", Gate(2, ist=7), Gate(14)), (H, 14),
        "Table 6-4: NMI is benign; 6.14.5"),
    "not-present #PF gate -> #DF": (
        case("pf", Gate(14, present=False), Gate(11), Gate(8)), (H, 8),
        "Table 6-5: page fault + contributory (#NP) = #DF"),
    "not-present #DF gate -> shutdown": (
        case("div0", Gate(8, present=False), Gate(11)), SHUTDOWN,
        "Interrupt 8: #NP while delivering #DF = shutdown"),
    "no LTR, IST gate -> #PF at linear 0": (
        case("int3", Gate(3, ist=2), Gate(14), ltr=False,
             slots=frozenset({2})), (H, 14),
        "9.1.1 Table 9-1: TR base 0 after reset; 6.14.5 IST read faults"),
    "no LTR, IST 0 needs no TSS": (
        case("int3", Gate(3), Gate(14), ltr=False), (H, 3),
        "6.14.2: no stack switch at CPL 0 without IST"),
    "CR4.LA57 toggled in IA-32e mode -> #GP": (
        case("mov_cr4 0x1020", *ALL_EXCEPTIONS), (H, 13),
        "SDM Vol. 2B MOV CR: #GP(0) on changing CR4.LA57 in IA-32e mode"),
    "CR4.LA57 #GP with no #GP gate -> #DF": (
        case("mov_cr4 0x1020", Gate(8)), (H, 8),
        "Table 6-5: #GP + #GP (invalid gate 13) = #DF"),
    "valid CR4 write": (case("mov_cr4 0x220", *ALL_EXCEPTIONS), ("none", -1),
                        "2.5: CR4.OSFXSR (bit 9) is writable"),
    "EFER rewritten with its value": (
        case("wrmsr 0xc0000080 0x500", *ALL_EXCEPTIONS), ("none", -1),
        "2.2.1: IA32_EFER LME (bit 8) | LMA (bit 10)"),
}

# name: (case, what the SDM says, what QEMU 7.2 TCG does, citation and cause)
KNOWN_DEVIATIONS: dict[str, tuple[Case, Result, Result, str]] = {
    "CR4 reserved bit 63": (
        case("mov_cr4 0x8000000000000020", *ALL_EXCEPTIONS), (H, 13),
        ("hang", -1),
        "SDM Vol. 2B MOV CR: #GP(0) on reserved CR4 bits; QEMU's "
        "helper_write_crN calls cpu_vmexit(SVM_EXIT_ERR) outside a guest "
        "and re-executes the MOV forever (-d int shows vmexit(ffffffff))"),
    "CR4 reserved bit 25": (
        case("mov_cr4 0x2000020", *ALL_EXCEPTIONS), (H, 13), ("hang", -1),
        "SDM Vol. 2B MOV CR; as above"),
    "CR4 reserved bit 15": (
        case("mov_cr4 0x8020", *ALL_EXCEPTIONS), (H, 13), ("hang", -1),
        "SDM Vol. 2B MOV CR; as above"),
    "CR4.CET with CR0.WP = 0": (
        case("mov_cr4 0x800020", *ALL_EXCEPTIONS), (H, 13), ("hang", -1),
        "SDM Vol. 3A 2.5: #GP if CR4.CET = 1 and CR0.WP = 0; as above"),
    "CR4.PCIDE without PCID": (
        case("mov_cr4 0x20020", *ALL_EXCEPTIONS), (H, 13), ("none", -1),
        "SDM Vol. 2A CPUID.01H:ECX bit 17: only with PCID may software set "
        "CR4.PCIDE, else it is reserved (#GP); TCG has no PCID (QEMU warns "
        "for -cpu max,+pcid) yet accepts the write"),
    "CR4.PAE cleared in IA-32e mode": (
        case("mov_cr4 0x0", *ALL_EXCEPTIONS), (H, 13), SHUTDOWN,
        "SDM Vol. 3A 4.1.2: #GP(0); QEMU clears PAE, the next fetch "
        "cannot be translated: triple fault"),
    "RDMSR of an unknown MSR": (
        case("rdmsr 0x12345", *ALL_EXCEPTIONS), (H, 13), ("none", -1),
        "SDM Vol. 2B RDMSR: #GP(0) for an unimplemented MSR; QEMU's "
        "helper_rdmsr returns 0"),
    "WRMSR of an unknown MSR": (
        case("wrmsr 0x12345 0x1", *ALL_EXCEPTIONS), (H, 13), ("none", -1),
        "SDM Vol. 2B WRMSR: #GP(0); QEMU's helper_wrmsr ignores it"),
    "WRMSR EFER reserved bit 63": (
        case("wrmsr 0xc0000080 0x8000000000000500", *ALL_EXCEPTIONS),
        (H, 13), ("none", -1),
        "SDM Vol. 2B WRMSR: #GP(0) on reserved bits; QEMU masks them"),
    "WRMSR EFER clearing LME under paging": (
        case("wrmsr 0xc0000080 0x0", *ALL_EXCEPTIONS), (H, 13), ("none", -1),
        "SDM Vol. 3A 4.1.2: LME cannot change while CR0.PG = 1, #GP(0)"),
}


@needs_qemu
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sdm_outcome(name: str) -> None:
    the_case, expected, why = EXPECTED[name]
    assert run_case(the_case) == expected, why


@needs_qemu
@pytest.mark.parametrize("name", sorted(KNOWN_DEVIATIONS))
def test_known_qemu_deviation(name: str) -> None:
    the_case, sdm, qemu, why = KNOWN_DEVIATIONS[name]
    assert sdm != qemu
    # A hang is QEMU spinning on one instruction: 1 s is plenty to see it.
    got = run_case(the_case, timeout=1.0 if qemu[0] == "hang" else 5.0)
    assert got == qemu, (
        f"QEMU now gives {got} for {name!r} (SDM: {sdm}; {why}): "
        "move it from KNOWN_DEVIATIONS to EXPECTED")


@needs_qemu
def test_run_cases_keeps_the_input_order() -> None:
    names = sorted(EXPECTED)
    results = run_cases([EXPECTED[n][0] for n in names], jobs=2)
    assert results == [EXPECTED[n][1] for n in names]


@needs_qemu
def test_cpu_model_is_a_parameter() -> None:
    # CR4.PKS (bit 24) exists in -cpu max, not in qemu64, where the write
    # takes QEMU's reserved-bit path (KNOWN_DEVIATIONS: it hangs).
    pks = case("mov_cr4 0x1000020", *ALL_EXCEPTIONS)
    assert run_case(pks) == ("none", -1)
    assert run_case(pks, cpu="qemu64", timeout=1.0) == ("hang", -1)


def test_decode() -> None:
    assert decode(1, b"H\xc8") == (H, 200)
    assert decode(1, b"N") == ("none", -1)
    assert decode(0, b"") == SHUTDOWN
    with pytest.raises(HarnessError, match=r"unexpected QEMU exit 1 with output b'H'"):
        decode(1, b"H")
    with pytest.raises(HarnessError, match=r"unexpected QEMU exit 0 with output b'N'"):
        decode(0, b"N")


def test_ltr_only_when_asked() -> None:
    assert "ltr ax" in source(case("int3", ltr=True))
    assert "ltr ax" not in source(case("int3", ltr=False))


def test_not_present_gate_keeps_its_type() -> None:
    text = source(case("int3", Gate(3, present=False), Gate(4, ist=5)))
    assert "GATE stub_3, 0, 0xe\n" in text
    assert "GATE stub_4, 5, 0x8e\n" in text
    assert text.count("GATE stub_") == 2


def test_parse_trigger() -> None:
    assert parse_trigger("int 255") == ("int", (255,))
    assert parse_trigger("mov_cr4 0x8000000000000020") == (
        "mov_cr4", (0x8000000000000020,))
    assert parse_trigger("wrmsr 0xc0000080 0x0") == ("wrmsr", (0xC0000080, 0))
    for bad in ("int 256", "int3 ", "rdmsr 12345", "mov_cr4 0xABC"):
        with pytest.raises(ValueError, match=r"^trigger '"):
            parse_trigger(bad)


def test_check_case_rejects() -> None:
    with pytest.raises(ValueError, match=r"^gates: vector listed twice"):
        check_case(case("int3", Gate(3), Gate(3)))
    with pytest.raises(ValueError, match=r"^gate 3 ist 8: expected 0..7$"):
        check_case(case("int3", Gate(3, ist=8)))
    with pytest.raises(ValueError, match=r"^limit 0x10000: expected"):
        check_case(case("int3", limit=0x10000))
    with pytest.raises(ValueError, match=r"^ist_slots \[0\]: expected 1..7$"):
        check_case(case("int3", slots=frozenset({0})))


def test_generate_is_deterministic_and_covers_every_trigger() -> None:
    cases = generate(5, 500)
    assert cases == generate(5, 500)
    assert cases != generate(6, 500)
    kinds = {parse_trigger(c.trigger)[0] for c in cases}
    assert kinds == {"int3", "div0", "ud2", "int", "gp", "pf", "nmi",
                     "mov_cr4", "rdmsr", "wrmsr"}
    for c in cases:
        check_case(c)
    assert any(not c.gates for c in cases)
    assert any(not c.ltr for c in cases)
    assert any(not g.present for c in cases for g in c.gates)
    assert {g.ist for c in cases for g in c.gates} == set(range(8))
