"""Explicit IDT tables (`lidt gates ...`) and the exception ops (int3,
div0, int N, raise V): each delivery rule with its exact chain, which stub
handler ran, the parse errors, and the Promela export's refusal."""

from pathlib import Path

import pytest
from one_cpu import outcome as _out
from one_cpu import run_ops, scenario

from fuzzinit.model.grammar import OpSyntaxError
from fuzzinit.model.outcome import NAMES, Result
from fuzzinit.model.vocabulary import parse_op


def _run(tmp_path: Path, ops: list[str], guest: str = "bare",
         features: str = "[]") -> Result:
    return run_ops(tmp_path, ops, features, guest)


@pytest.mark.parametrize(("ops", "outcome", "handled"), [
    # A present gate: its stub runs and returns.
    (["lidt gates 3", "int3"], "ok", [(0, 3)]),
    # #BP is benign: the #GP for its empty gate is delivered serially.
    (["lidt gates 13", "int3"], "ok", [(0, 13)]),
    # #DE is contributory: #GP delivering it is #DF (SDM table 6-5).
    (["lidt gates 8,13", "div0"], "ok", [(0, 8)]),
    # A gate beyond the limit: #GP, even when the gate is filled in.
    (["lidt gates 13,20 limit 0x14e", "int 20"], "ok", [(0, 13)]),
    (["lidt gates 13,20 limit 0x14f", "int 20"], "ok", [(0, 20)]),
    # P = 0: #NP, contributory, so a #DE through it is #DF.
    (["lidt gates 3,11 np 3", "int3"], "ok", [(0, 11)]),
    (["lidt gates 0,8,11 np 0", "div0"], "ok", [(0, 8)]),
    # IST slot without a stack, or no TSS at all: #PF while delivering.
    (["lidt gates 3,14 ist 3:2", "ltr", "tss_setup_ist 1", "int3"], "ok",
     [(0, 14)]),
    (["lidt gates 3,14 ist 3:2", "ltr", "tss_setup_ist 2", "int3"], "ok",
     [(0, 3)]),
    (["lidt gates 3,14 ist 3:2", "tss_setup_ist 2", "int3"], "ok",
     [(0, 14)]),
    # #PF delivering #PF is #DF; #DF through an IST slot set up: handled.
    (["lidt gates 8,14 ist 14:7,8:1", "ltr", "tss_setup_ist 1", "raise 14"],
     "ok", [(0, 8)]),
    # INT n is benign: #NP for its gate is delivered serially.
    (["lidt gates 11,200 np 200", "int 200"], "ok", [(0, 11)]),
    # Two events, two handlers, recorded in vector order.
    (["lidt gates 3,13", "int 13", "int3"], "ok", [(0, 3), (0, 13)]),
    # No gate for the fault, none for #DF: shutdown, no handler ran.
    (["lidt gates none", "div0"], "triple_fault", []),
    (["lidt gates 13 np 13", "raise 13"], "triple_fault", []),
])
def test_delivery_through_an_explicit_table(
        tmp_path: Path, ops: list[str], outcome: str,
        handled: list[tuple[int, int]]) -> None:
    assert _out(_run(tmp_path, ops)) == (outcome, handled)


def test_the_chain_names_each_check_in_the_cpus_order(tmp_path: Path) -> None:
    r = _run(tmp_path, ["lidt gates 0,8,11 np 0 limit 0xbf", "div0"])
    assert r.handled == [(0, 8)]
    r = _run(tmp_path, ["lidt gates 0,8,11 np 0 limit 0x8e", "div0"])
    assert (NAMES[r.outcome], r.chain[-2]) == (
        "triple_fault", "#DF: gate 8 lies beyond the IDT limit 0x8e -> #GP")
    r = _run(tmp_path, ["lidt gates 0,11 np 0 limit 0xbf", "div0"])
    assert r.chain == [
        "cpu0: div0", "div0 raises #DE",
        "#DE: gate 0 is not present (P = 0) -> #NP",
        "#NP while delivering #DE -> #DF (SDM table 6-5)",
        "#DF: gate 8 of the table (gates 0,11 np 0 limit 0xbf) is empty"
        " -> #GP",
        "#GP while delivering #DF -> SHUTDOWN (triple fault)"]


def test_linux_handlers_on_an_explicit_table(tmp_path: Path) -> None:
    """`handler full`: the runtime IDT's handlers run behind the table's
    gates, so a WARN's UD2 continues and a BUG dies."""
    assert _out(_run(tmp_path, ["lidt gates 6 handler full", "ud2 warn"])) \
        == ("warn", [])
    assert _out(_run(tmp_path, ["lidt gates 6 handler full", "ud2 bug"])) \
        == ("unhandled", [])
    assert _out(_run(tmp_path, ["lidt gates 6 handler full", "ud2"])) \
        == ("unhandled", [])


def test_int_n_on_linux_tables(tmp_path: Path) -> None:
    # An interrupt vector on the runtime IDT returns; the early IDT has no
    # gate above 31; int 3 on the runtime IDT is a stray #BP: die().
    assert _out(_run(tmp_path, ["lidt full", "int 48"])) == ("ok", [])
    r = _run(tmp_path, ["lidt early", "int 48"])
    assert r.chain[2] == "vector 48 through the early IDT: no gate -> #GP"
    assert r.chain[-1] == "#GP reaches the kernel's handler, which cannot" \
        " recover from it: oops/panic"
    assert _out(_run(tmp_path, ["lidt full", "int3"])) == ("unhandled", [])
    # Through FRED a software interrupt has no case in
    # fred_entry_from_kernel(): fred_bad_type(), die().
    assert _out(_run(tmp_path, ["wrmsr FRED_CONFIG entry", "cr4_set fred",
                                "int 48"], features='["fred"]')) == \
        ("unhandled", [])


def test_fred_ignores_the_table(tmp_path: Path) -> None:
    r = _run(tmp_path, ["lidt gates 3", "wrmsr FRED_CONFIG 0",
                        "cr4_set fred", "int3"], features='["fred"]')
    assert _out(r) == ("triple_fault", [])
    assert r.chain[2] == "#BP delivered through FRED (CR4.FRED = 1) with" \
        " FRED_CONFIG = 0: no entry point"


@pytest.mark.parametrize(("text", "problem", "hint"), [
    ("lidt gates", "lidt gates needs a vector list and key-value pairs",
     "e.g. 'lidt gates 3,8,13 ist 8:1 limit 0xfff'"),
    ("lidt gates 3 limit", "lidt gates needs a vector list and key-value"
     " pairs", "e.g. 'lidt gates 3,8,13 ist 8:1 limit 0xfff'"),
    ("lidt gates 256", "vector 256 is out of range",
     "check the number for a typo"),
    ("lidt gates 3 np 4", "vector 4 has no gate in the list",
     "add 4 to the gates"),
    ("lidt gates 3 ist 3", "ist entry '3' has no ':'",
     "write the vector, a colon and the IST index 1-7"),
    ("lidt gates 3 ist 3:8", "IST index 8 is out of range",
     "check the number for a typo"),
    ("lidt gates 3 limit 0x10000", "IDT limit 0x10000 is out of range",
     "check the number for a typo"),
    ("lidt gates 3 limit 1 limit 2", "lidt gates: 'limit' given twice",
     "keys are np, ist, limit and handler, once each"),
    ("lidt gates 3 via full", "lidt gates: 'via' is not a key",
     "keys are np, ist, limit and handler, once each"),
    ("lidt gates 3 handler linux", "unknown gate handler 'linux'",
     "stub reports the vector and returns"),
    ("raise 8", "raise 8: #DF has its own cause",
     "use a fault while delivering another (a #DF has no other cause)"),
    ("raise 2", "raise 2: NMI has its own cause", "use nmi"),
    ("raise 15", "raise 15: vector 15 is reserved",
     "use 'int 15' for a software interrupt"),
    ("raise 32", "vector 32 is out of range", "check the number for a typo"),
    ("int 256", "vector 256 is out of range", "check the number for a typo"),
    ("int3 1", "int3 takes no argument", "write just 'int3'"),
    ("tss_setup_ist 0,1", "IST slot 0 does not exist",
     "IST index 0 means no IST stack"),
    ("tss_setup_ist 8", "IST slot 8 is out of range",
     "check the number for a typo"),
])
def test_bad_forms_are_load_errors(text: str, problem: str,
                                   hint: str) -> None:
    with pytest.raises(OpSyntaxError) as info:
        parse_op(text, 1)
    assert (info.value.problem, info.value.hint) == (problem, hint)


def test_export_refuses_an_explicit_table_naming_the_op(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from fuzzinit.cli import main
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\nfail_on = ["triple_fault"]\n'
                    '[[cpu]]\nprogram = ["lidt gates 3,13", "int3"]\n')
    out = tmp_path / "t.pml"
    assert main(["export", "--promela", str(path), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"fuzzinit: error: {path}: cannot export op 'lidt gates 3,13': the"
        " Promela runtime has no translation of 'lidt' (runtime.pml holds"
        " the named IDTs only; an explicit table (`lidt gates`) is not"
        " translated); fix: check this scenario with `fuzzinit explore`"
        " instead\n")
    assert not out.exists()


@pytest.mark.parametrize(("op", "handled"), [
    ("mov_cr0 +bit32", [(0, 13)]),     # bits 63:32: #GP (SDM Vol. 3A 2.5)
    ("mov_cr0 +bit63", [(0, 13)]),
    ("mov_cr0 +nw", [(0, 13)]),        # NW without CD (SDM Vol. 2 MOV CR)
    ("mov_cr0 +cd +nw", []),
    ("mov_cr0 +bit7", []),             # reserved low bit: left unchanged
    ("mov_cr0 +ts +mp +em +ne +am", []),
    ("cr0_set bit40", [(0, 13)]),
])
def test_cr0_bits_by_number(tmp_path: Path, op: str,
                            handled: list[tuple[int, int]]) -> None:
    assert _out(_run(tmp_path, ["lidt gates 13", op])) == ("ok", handled)


def test_reserved_low_cr0_bits_are_not_stored(tmp_path: Path) -> None:
    from fuzzinit.model.machine import F_CR0
    from fuzzinit.model.run import initial_state, step
    sc = scenario(tmp_path, ["mov_cr0 +bit7 +bit17 +ts"])
    st = initial_state(sc.machine)
    before = st[F_CR0]
    assert step(sc.machine, st, 0, 0, [], []) == 0
    assert st[F_CR0] == before | 1 << 3


@pytest.mark.parametrize(("value", "handled"), [
    ("0xd01", []),                     # SCE LME LMA NXE: no change
    ("0xd03", [(0, 13)]),              # bit 1 reserved (SDM Vol. 3A 2.2.1)
    ("0x8000000000000d01", [(0, 13)]),  # bit 63 reserved
    ("0x400d01", [(0, 13)]),           # bit 22 reserved everywhere
    ("0x200d01", []),                  # bit 21 (AMD AutoIBRS): not checked
])
def test_reserved_efer_bits(tmp_path: Path, value: str,
                            handled: list[tuple[int, int]]) -> None:
    assert _out(_run(tmp_path, ["lidt gates 13", f"wrmsr EFER {value}"])) \
        == ("ok", handled)


def test_stub_handlers_run_no_linux_fixup(tmp_path: Path) -> None:
    """A #GP from an MSR access or a WARN's UD2 that a stub handles: no
    "unchecked MSR access" report, no report_bug() (those are Linux's
    handlers); through `handler full` both happen."""
    for table, outcome in (("lidt gates 6,13", "ok"),
                           ("lidt gates 6,13 handler full", "warn")):
        r = _run(tmp_path, [table, "wrmsr EFER 0xd03"])
        assert NAMES[r.outcome] == outcome
        r = _run(tmp_path, [table, "ud2 warn"])
        assert NAMES[r.outcome] == outcome
