"""README rule 34: KVM's guest TSC_AUX, left for the return-to-user work,
met by an NMI whose paranoid_entry reads it with RDPID (eaad981291ee3,
fixed by 6a3ea3e68b8a)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzinit.cli import main
from fuzzinit.explore.bfs import COMPLETE, FAILED, explore
from fuzzinit.model.grammar import OpSyntaxError
from fuzzinit.model.vocabulary import parse_op
from fuzzinit.scenario.load import load
from fuzzinit.search import search

MODELS = Path(__file__).parent.parent / "models"
PRE = MODELS / "kvm-tsc-aux-paranoid-rdpid.toml"
FIXED = MODELS / "kvm-tsc-aux-paranoid-rdpid-fixed.toml"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_nmi_in_the_run_loop_is_the_core(seed: int) -> None:
    """The guest's TSC_AUX written, the NMI before kvm_on_user_return():
    the core is the set-up paranoid_entry needs, the write and the NMI."""
    sc = load(PRE)
    report = search(sc, examples=500, seed=seed)
    assert report.finding is not None
    assert report.finding.result.name == "unhandled"
    assert [(e.cpu, sc.op_text(e.op)) for e in report.finding.core] == [
        (0, "lidt full"), (0, "ltr"), (0, "tss_setup_ist"),
        (0, "cr4_set fsgsbase"), (0, "patch_alternatives"),
        (0, "wrmsr TSC_AUX guest"), (0, "nmi")]


def test_lsl_instead_of_rdpid_leaves_no_failing_ordering() -> None:
    assert explore(load(FIXED), 1, 1_000_000).verdict == COMPLETE


def test_init_keeps_the_guest_value(tmp_path: Path) -> None:
    """TSC_AUX is an MSR: INIT-SIPI does not reset it, so a CPU restarted
    with the guest's value still in it meets the same RDPID."""
    path = tmp_path / "init.toml"
    path.write_text(
        '[scenario]\nname = "init"\nfail_on = ["unhandled"]\n'
        '[platform]\nguest = "bare"\nfeatures = ["fsgsbase", "rdpid"]\n'
        'console = "8250"\n[kernel]\nparanoid_rdpid = true\n'
        '[[cpu]]\nprogram = ["lidt full", "cr4_set fsgsbase",'
        ' "patch_alternatives", "start 1", "wait_online 1", "wait_offline 1",'
        ' "start 1"]\n'
        '[[cpu]]\nprogram = ["wrmsr TSC_AUX guest", "online", "offline hlt",'
        ' "lidt full", "ltr", "tss_setup_ist", "cr4_set fsgsbase", "nmi"]\n')
    ex = explore(load(path), 0, 1_000_000)
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.chain[-1].startswith(
        "NMI enters paranoid_entry, which takes the CPU number from RDPID")


def test_tsc_aux_takes_only_its_two_symbolic_values() -> None:
    with pytest.raises(OpSyntaxError) as err:
        parse_op("wrmsr TSC_AUX 3", 1)
    assert (err.value.problem, err.value.expected, err.value.hint) == (
        "wrmsr TSC_AUX takes a symbolic value",
        "cpu (this CPU's number) or guest (a KVM guest's)",
        "write 'wrmsr TSC_AUX guest' for KVM's kvm_set_user_return_msr()")


def test_export_refuses_tsc_aux(tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.pml"
    status = main(["export", "--promela", str(PRE), "-o", str(out)])
    assert (status, capsys.readouterr().err) == (2, (
        f"fuzzinit: error: {PRE}: cannot export op 'wrmsr TSC_AUX cpu': the"
        " Promela runtime has no translation of 'wrmsr' (IA32_TSC_AUX and"
        " RDPID are not in runtime.pml); fix: check this scenario with"
        " `fuzzinit explore` instead\n"))
    assert not out.exists()
