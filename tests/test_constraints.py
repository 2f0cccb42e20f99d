"""`fuzzinit constraints`: happens-before rules mined from permutation-mode
failures, each with a counterexample that replays."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit.constraints import Mined, check_rule, mine
from fuzzinit.orderings.schedule import program_order
from fuzzinit.scenario.load import load
from fuzzinit.verdict import evaluate

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def sev_es() -> Mined:
    return mine(load(ROOT / "models/upstream-fix-sev-es.toml"), 1000, 0)


@pytest.fixture(scope="module")
def sev_snp() -> Mined:
    return mine(load(ROOT / "models/upstream-fix-sev-snp.toml"), 1000, 0)


def _rules(mined: Mined) -> dict[str, str]:
    return {r.text(mined.scenario): r.result.name for r in mined.rules}


def test_fred_config_before_cr4_fred_on_sev_es(sev_es: Mined) -> None:
    rules = _rules(sev_es)
    text = "cpu1: wrmsr FRED_CONFIG entry before cpu1: cr4_set fred"
    assert rules[text] == "triple_fault"
    rule = next(r for r in sev_es.rules if r.text(sev_es.scenario) == text)
    sc = sev_es.scenario
    # The counterexample: CR4.FRED on, then console output (a printk
    # trigger) before FRED_CONFIG is written.
    assert [(e.cpu, sc.op_text(e.op), e.slot < 0)
            for e in rule.counterexample][-2:] == [
        (1, "cr4_set fred", False), (1, "printk", True)]
    assert rule.why(sc) == (
        "a printk on cpu1 between them: console output: port I/O raises #VC"
        " in a sev-es guest; entry RIP 0x100 faults, #PF -> #DF through the"
        " same FRED setup -> SHUTDOWN (triple fault) -> triple_fault")
    assert evaluate(sc, rule.counterexample).name == "triple_fault"


def test_ap_ghcb_registered_before_events_can_arrive_on_snp(
        sev_snp: Mined, sev_es: Mined) -> None:
    """SNP needs the AP's per-CPU GHCB registered before its first #VC
    can be raised (a printk from cr4_init on); SEV-ES does not."""
    text = "cpu1: setup_ghcb before cpu1: cr4_init"
    assert _rules(sev_snp)[text] == "guest_terminated"
    rule = next(r for r in sev_snp.rules if r.text(sev_snp.scenario) == text)
    assert rule.result.chain[-1] == (
        "#VC on SEV-SNP uses this CPU's per-CPU GHCB before setup_ghcb()"
        " registered it: the hypervisor terminates the guest")
    assert text not in _rules(sev_es)


def test_every_counterexample_breaks_its_rule_and_fails(
        sev_snp: Mined) -> None:
    sc = sev_snp.scenario
    for rule in sev_snp.rules:
        names = [(e.cpu, e.slot) for e in rule.counterexample]
        assert evaluate(sc, rule.counterexample).name == rule.result.name
        assert rule.result.name in sc.fail_on
        # b ran, and a had not run before it.
        if (rule.b.cpu, rule.b.slot) in names:
            at = names.index((rule.b.cpu, rule.b.slot))
            assert (rule.a.cpu, rule.a.slot) not in names[:at]


def test_a_neighbours_order_is_not_a_rule() -> None:
    """'printk before cr4_set fred' is not needed: printk after both the
    FRED_CONFIG write and CR4.FRED is safe."""
    sc = dataclasses.replace(load(ROOT / "models/upstream-fix-sev-es.toml"),
                             mode="permute")
    reference = program_order(sc)
    cpu1 = [e for e in reference if e.cpu == 1]
    printk = next(e for e in cpu1 if sc.op_text(e.op) == "printk")
    fred = next(e for e in cpu1 if sc.op_text(e.op) == "cr4_set fred")
    config = next(e for e in cpu1
                  if sc.op_text(e.op) == "wrmsr FRED_CONFIG entry")
    assert check_rule(sc, reference, printk, fred) is None
    assert check_rule(sc, reference, config, fred) is not None


def test_rules_need_a_safe_reference_order() -> None:
    mined = mine(load(ROOT / "models/fred-pinned-sev-es-ap.toml"), 100, 0)
    assert mined.reference_failure is not None
    assert mined.reference_failure.name == "triple_fault"
    assert mined.rules == []


def test_constraints_cli_json_and_replayable_counterexamples(
        tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "constraints",
         str(ROOT / "models/upstream-fix-sev-es.toml"), "--json",
         "--examples", "600"], cwd=tmp_path, capture_output=True, text=True,
        check=False)
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    assert out["mode"] == "permute" and out["failures"] > 0
    assert {"rule", "why", "before", "after", "verdict", "counterexample",
            "trace"} <= set(out["rules"][0])
    rule = next(r for r in out["rules"] if r["rule"] ==
                "cpu1: wrmsr FRED_CONFIG entry before cpu1: cr4_set fred")
    replay = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "replay", rule["trace"], "--json"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert replay.returncode == 1, replay.stderr
    assert json.loads(replay.stdout)["verdict"] == "triple_fault"
    assert isinstance(out["sufficient"], bool)
