"""Exhaustive exploration, fault windows and fix verification."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fuzzinit.explore.bfs import (
    BUDGET,
    COMPLETE,
    FAILED,
    INTERRUPTED,
    explore,
)
from fuzzinit.explore.windows import timeline, windows
from fuzzinit.scenario.load import load

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"

TINY = """
[scenario]
name = "tiny"
[[cpu]]
program = ["start 1", "nop a"]
[[cpu]]
program = ["nop b", "nop c"]
"""


def fz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          capture_output=True, text=True, check=False)


def test_tiny_scenario_has_exactly_seven_states(tmp_path: Path) -> None:
    """(pc0, pc1): (0,0) (1,0) (2,0) (1,1) (2,1) (1,2) (2,2); eight
    transitions between them. With partial-order reduction the two nops
    commute and only cpu0's runs first from (1,0): (0,0) (1,0) (2,0)
    (2,1) (2,2), four transitions."""
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    ex = explore(load(path), max_triggers=0, por=False)
    assert (ex.verdict, ex.states, ex.transitions) == (COMPLETE, 7, 8)
    ex = explore(load(path), max_triggers=0)
    assert (ex.verdict, ex.states, ex.transitions) == (COMPLETE, 5, 4)


def test_upstream_fix_explores_complete_with_a_stable_count() -> None:
    counts = {explore(load(FIXED), 1).states for _ in range(3)}
    assert counts == {86}
    # Without the reductions: 87 (one BSP and one AP: nothing symmetric).
    assert explore(load(FIXED), 1, por=False, symmetry=False).states == 87
    ex = explore(load(FIXED), 1)
    assert ex.verdict == COMPLETE and ex.ordering is None


def test_pinned_fred_gives_a_shortest_counterexample() -> None:
    ex = explore(load(PINNED), 1)
    assert ex.verdict == FAILED
    assert ex.result is not None and ex.ordering is not None
    assert ex.result.name == "triple_fault"
    # The first failure breadth-first search meets: console output on the
    # AP right after cr4_init turned FRED on - and the same one every run.
    sc = load(PINNED)
    names = [sc.op_text(e.op) for e in ex.ordering]
    assert names[-2:] == ["cr4_init", "printk"]
    assert explore(load(PINNED), 1).ordering == ex.ordering
    # Every ordering one event shorter that the search expanded passed.
    assert len(ex.ordering) == 34


def test_budget_exhausted_is_its_own_answer() -> None:
    ex = explore(load(FIXED), 1, budget=10)
    assert ex.verdict == BUDGET and ex.ordering is None
    proc = fz("explore", str(FIXED), "--budget", "10")
    assert proc.returncode == 3
    assert "budget exhausted after 11 states" in proc.stdout
    assert "no failing ordering found so far" in proc.stdout


def test_explore_cli_json() -> None:
    proc = fz("explore", str(FIXED), "--json")
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    # By default every trigger the scenario allows (here 2): complete.
    assert (out["result"], out["states"], out["verdict"],
            out["max_triggers"]) == ("complete", 87, "ok", 2)
    proc = fz("explore", str(PINNED), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["verdict"] == "triple_fault"


def test_windows_show_the_fred_window_and_the_fix_closes_it() -> None:
    pinned = timeline(windows(load(PINNED)))
    fixed = timeline(windows(load(FIXED)))
    line = ("cpu1: cr4_init .. wrmsr FRED_CONFIG entry: cpuid, mmio, nmi,"
            " pf, port_io, printk fatal")
    assert line in pinned
    assert not any(x.startswith("cpu1: cr4_init ..") for x in fixed)
    # What the fix leaves: an NMI or #PF before the AP's runtime IDT/FRED.
    assert "cpu1: lidt bringup_ghcb .. cr4_set fred: nmi, pf fatal" in fixed


def test_verify_fix() -> None:
    proc = fz("verify-fix", str(PINNED), str(FIXED))
    assert proc.returncode == 0, proc.stdout
    assert proc.stdout.rstrip().endswith(
        "fix verified: BEFORE fails, AFTER explores complete and clean")
    assert "  cpu1 after cr4_init: printk" in proc.stdout
    backwards = fz("verify-fix", str(FIXED), str(PINNED))
    assert backwards.returncode == 1
    assert backwards.stdout.rstrip().endswith("fix NOT verified")


WARNS = """
[scenario]
name = "warns"
fail_on = ["warn"]
[platform]
guest = "sev-es"
features = ["smep"]
[[cpu]]
program = ["cr4_set smep", "setup_cr_pinning", "cr4_clear smep"]
"""


def test_explore_fails_on_warn_only_when_the_run_ends_ok(
        tmp_path: Path) -> None:
    """The WARN's console output raises #VC through the reset IDT: the
    run ends in triple_fault, which this scenario does not count - so
    there is no failing ordering, as fuzzinit run says too."""
    path = tmp_path / "w.toml"
    path.write_text(WARNS)
    ex = explore(load(path))
    assert ex.verdict == COMPLETE
    bare = tmp_path / "b.toml"
    bare.write_text(WARNS.replace('"sev-es"', '"bare"'))
    ex = explore(load(bare))
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.name == "warn"


def test_verify_fix_exit_codes_when_a_budget_runs_out() -> None:
    # BEFORE cannot be decided in 5 states: inconclusive.
    assert fz("verify-fix", str(PINNED), str(FIXED), "--budget",
              "5").returncode == 3
    # BEFORE explores complete (it never fails): decided, not verified.
    assert fz("verify-fix", str(FIXED), str(FIXED)).returncode == 1


SCENARIOS = ROOT / "tests/scenarios"  # shared with tests/test_promela.py


def test_a_state_whose_only_moves_the_model_rules_out_is_stuck() -> None:
    """The attacker clears cpu1's online bit before the boot CPU's
    wait_online: the wait is INVALID in the model, nothing else can run,
    and the boot CPU waits forever."""
    path = SCENARIOS / "stuck-on-invalid.toml"
    ex = explore(load(path), 1)
    assert ex.verdict == FAILED and ex.result is not None
    assert ex.result.name == "never_online"
    sc = load(path)
    assert [sc.op_text(e.op) for e in ex.ordering or []] == [
        "start 1", "online", "nop ap", "clear_online"]


def test_a_stuck_run_that_warned_is_never_online() -> None:
    """The WARN (CR0.WP cleared while pinned) comes first, then the boot
    CPU waits forever: the run's outcome is the hang, which the scenario
    fails on, not the WARN, which it does not (review of issue 6)."""
    path = SCENARIOS / "stuck-warn.toml"
    for por in (True, False):
        ex = explore(load(path), 1, por=por)
        assert ex.verdict == FAILED and ex.result is not None
        assert ex.result.name == "never_online"
        assert len(ex.result.warnings) == 1
        assert len(ex.ordering or []) == 5


TIE = """
[scenario]
name = "tie"
fail_on = ["triple_fault", "unhandled"]
[[cpu]]
program = ["lidt early", "start 1", "rdgsbase"]
[[cpu]]
program = ["rdgsbase"]
[[orderings.trigger]]
kind = "pf"
cpus = [0]
after = "start 1"
"""


def test_por_reports_the_failure_the_plain_search_reports(
        tmp_path: Path) -> None:
    """Two failing ops at the same depth: cpu0's RDGSBASE (unhandled, the
    early IDT) comes first in the plain search's order; POR must not put
    cpu1's (triple fault, no IDT) ahead of it (review of issue 6)."""
    path = tmp_path / "tie.toml"
    path.write_text(TIE)
    names = set()
    for por in (True, False):
        for symmetry in (True, False):
            ex = explore(load(path), 1, por=por, symmetry=symmetry)
            assert ex.result is not None and len(ex.ordering or []) == 3
            names.add(ex.result.name)
    assert names == {"unhandled"}


def big_scenario(tmp_path: Path) -> Path:
    """The upstream fix with four APs and every trigger: about 20 s."""
    from fuzzinit.explore.scaling import scaled
    path = tmp_path / "big.toml"
    path.write_text(scaled(FIXED.read_text(), 4))
    return path


def test_explore_reports_progress(tmp_path: Path) -> None:
    sc = load(big_scenario(tmp_path))
    lines: list[str] = []
    ex = explore(sc, 0, on_progress=lines.append)
    assert ex.verdict == COMPLETE and ex.states == 20_938
    # One line per 4096 expanded states: 20,938 states, 5 lines.
    assert len(lines) == 5
    assert re.fullmatch(r"upstream-fix-sev-es-4ap: [\d,]+ states, [\d,]+"
                        r" queued, [\d,]+ states/s", lines[0])


def test_ctrl_c_ends_explore_with_the_counts_so_far(tmp_path: Path) -> None:
    path = big_scenario(tmp_path)
    for extra in ([], ["--json"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "fuzzinit", "explore", str(path), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 130
        if extra:
            data = json.loads(out)
            assert data["result"] == "interrupted" and data["states"] > 0
        else:
            found = re.fullmatch(
                r"upstream-fix-sev-es-4ap: interrupted after ([\d]+) states,"
                r" \d+ transitions, [\d,]+ states/s: no failing ordering"
                r" found so far\n", out)
            assert found and int(found.group(1)) > 0


def test_ctrl_c_propagates_from_the_library_unless_asked(
        tmp_path: Path) -> None:
    """A Python caller (a pytest run, say) gets its KeyboardInterrupt;
    the CLI asks for the counts instead."""
    sc = load(big_scenario(tmp_path))

    def ctrl_c(_: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        explore(sc, 0, on_progress=ctrl_c)
    ex = explore(sc, 0, on_progress=ctrl_c, interruptible=True)
    assert ex.verdict == INTERRUPTED and ex.ordering is None
    # Stopped at the first report: 4096 states expanded.
    assert ex.states > 4096


def test_ctrl_c_in_verify_fix_is_not_a_verified_failure(
        tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzinit", "verify-fix",
         str(big_scenario(tmp_path)), str(FIXED)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "  upstream-fix-sev-es-4ap: interrupted after" in out
    assert out.endswith("fix NOT verified\n")


def test_windows_map_the_scenarios_own_trigger_kinds() -> None:
    """A `ud2 warn` trigger is not a platform kind, but the scenario names
    it: the map shows where it is fatal (before the AP's first IDT)."""
    path = Path(__file__).parent.parent / "models/ap-warn-before-idt.toml"
    assert timeline(windows(load(path))) == [
        "cpu0: start .. lidt full: nmi, pf, ud2 warn fatal",
        "cpu0: lidt full .. end: nmi fatal",
        "cpu1: start .. lidt full: nmi, pf, ud2 warn fatal",
        "cpu1: lidt full .. end: nmi fatal"]
