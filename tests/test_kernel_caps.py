"""The kernel's feature flags apart from the CPU's (issue 15 item 8): what
`clear_cpu_cap` changes, and the code that reads a flag - exc_page_fault's
address source (a97756cbec44), cr4_init's PCIDE, paranoid_entry's
alternative - each against the flag, not against CPUID."""

import subprocess
import sys
from pathlib import Path

import pytest
from one_cpu import run_ops, scenario

from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR4_PCIDE
from fuzzinit.model.outcome import NAMES
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event
from fuzzinit.report.timeline import describe, states_after
from fuzzinit.scenario.load import load

FRED = '["fred"]'
PF_WRONG = ("exc_page_fault() reads the fault address from FRED event data"
            " (X86_FEATURE_FRED set), but the #PF came through the IDT: it"
            " handles a wrong address")


@pytest.mark.parametrize(("ops", "features", "expected"), [
    # the runtime handler with the flag set, FRED not on: a97756cbec44
    (["lidt full", "pf"], FRED, "unhandled"),
    # the flag cleared (fred= without "on"): CR2 is read, right
    (["clear_cpu_cap fred", "lidt full", "pf"], FRED, "ok"),
    # cleared after the fault: too late (989b5cfaa7b6's window)
    (["lidt full", "pf", "clear_cpu_cap fred"], FRED, "unhandled"),
    # no FRED on the CPU: no flag to begin with
    (["lidt full", "pf"], "[]", "ok"),
    # the early handler reads CR2 (early_make_pgtable)
    (["lidt early", "pf"], FRED, "ok"),
    # FRED on: the event data is there
    (["wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 stack", "cr4_set fred",
      "lidt full", "pf"], FRED, "ok"),
])
def test_the_pf_handler_reads_the_address_the_flag_says(
        tmp_path: Path, ops: list[str], features: str, expected: str) -> None:
    r = run_ops(tmp_path, ops, features)
    assert NAMES[r.outcome] == expected
    assert (PF_WRONG in r.chain) == (expected == "unhandled")


def test_cr4_init_sets_pcide_only_while_the_kernel_has_pcid(
        tmp_path: Path) -> None:
    for ops, pcide in ((["cr4_init"], True),
                       (["clear_cpu_cap pcid", "cr4_init"], False)):
        sc = scenario(tmp_path, ops, '["pcid"]')
        st = initial_state(sc.machine)
        for op in sc.programs[0]:
            assert step(sc.machine, st, 0, op, [], []) == 0
        assert bool(st[mc.F_CR4] & CR4_PCIDE) == pcide, ops


def test_alternatives_keep_the_flags_of_the_moment_they_were_patched(
        tmp_path: Path) -> None:
    ist = ["lidt full", "ltr", "tss_setup_ist"]
    # cleared before patching: paranoid_entry keeps the SWAPGS path
    r = run_ops(tmp_path, ["clear_cpu_cap fsgsbase", *ist,
                           "patch_alternatives", "nmi"], '["fsgsbase"]')
    assert NAMES[r.outcome] == "ok"
    # cleared after: the RDGSBASE is patched in already
    r = run_ops(tmp_path, [*ist, "patch_alternatives",
                           "clear_cpu_cap fsgsbase", "nmi"], '["fsgsbase"]')
    assert NAMES[r.outcome] == "unhandled"
    assert "NMI enters paranoid_entry, whose RDGSBASE (alternatives" \
        " patched) is #UD with CR4.FSGSBASE = 0" in r.chain


def test_a_flag_no_modelled_code_reads_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_text('[scenario]\nname = "t"\n[[cpu]]\n'
                    'program = ["clear_cpu_cap smap"]\n')
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "run", str(path)],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"fuzzinit: error: {path}:4: cpu[0].program[0]: clear_cpu_cap needs"
        " a feature flag the model reads; expected clear_cpu_cap"
        " fred|pcid|fsgsbase; fix: e.g. 'clear_cpu_cap fred' where"
        " `fred=on` is missing\n")


def test_the_report_state_shows_cleared_flags_next_to_cr4() -> None:
    sc = load(Path(__file__).parent.parent / "models"
              / "fred-off-late-clear-fixed.toml")
    events = [Event(0, op) for op in sc.programs[0]]
    lines = [describe(s) for s in states_after(sc, events)]
    first = next(i for i, s in enumerate(lines) if "cleared-caps:fred" in s)
    assert sc.op_text(sc.programs[0][first]) == "clear_cpu_cap fred"
    assert all("cleared-caps:fred" in s for s in lines[first:])
