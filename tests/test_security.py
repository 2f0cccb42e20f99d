"""The security property "no pinned CR4 bit can be cleared once pinning is
on", against an attacker who can write the online mask and ROP into the
MOV to CR4 of native_write_cr4(): the rejected fix (pinning gated on
cpu_online(), tip cccc0c8ff0a9) loses SMEP, upstream pinning does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fuzzinit.explore.bfs import COMPLETE, FAILED, explore
from fuzzinit.scenario.load import load
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
GATED = ROOT / "models/attack-pinning-online-gate.toml"
UPSTREAM = ROOT / "models/attack-pinning-static-key.toml"


def test_online_gated_pinning_lets_the_attacker_clear_smep() -> None:
    sc = load(GATED)
    finding = search(sc, 500, 1).finding
    assert finding is not None
    assert finding.result.name == "pin_cleared"
    assert [(e.cpu, sc.op_text(e.op)) for e in finding.core] == [
        (0, "cr4_set smep"), (0, "setup_cr_pinning"), (0, "clear_online"),
        (0, "cr4_gadget -smep")]
    assert finding.result.chain[-1] == (
        "pinned CR4 bits 0x100000 cleared on cpu0 while CR pinning is on")


def test_explore_finds_the_two_step_attack_shortest() -> None:
    """Breadth first: the shortest attack needs both capabilities, the
    online-mask write first (the gadget alone is caught by the check)."""
    ex = explore(load(GATED), max_triggers=2)
    assert ex.verdict == FAILED and ex.ordering is not None
    sc = load(GATED)
    triggers = [sc.op_text(e.op) for e in ex.ordering if e.slot < 0]
    assert triggers == ["clear_online", "cr4_gadget -smep"]


def test_upstream_pinning_keeps_smep_in_every_ordering() -> None:
    ex = explore(load(UPSTREAM), max_triggers=2)
    assert ex.verdict == COMPLETE


def test_verify_fix_shows_the_rejected_fix_unsafe() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "verify-fix", str(GATED),
         str(UPSTREAM), "--max-triggers", "2", "--json"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout
    out = json.loads(proc.stdout)
    assert out["verified"] is True
    assert out["before"]["verdict"] == "pin_cleared"
    assert out["after"]["result"] == "complete"


def test_the_property_is_off_unless_a_scenario_fails_on_it(
        tmp_path: Path) -> None:
    text = GATED.read_text().replace('fail_on = ["pin_cleared"]',
                                     'fail_on = ["triple_fault"]')
    path = tmp_path / "off.toml"
    path.write_text(text.replace('expect = "pin_cleared"', 'expect = "ok"'))
    sc = load(path)
    assert not sc.machine.pin_property
    assert search(sc, 300, 1).finding is None
