"""Regressions found in review: each test pins one defect that was fixed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fuzzinit.search as search_module
from fuzzinit.orderings.schedule import program_order
from fuzzinit.report.fixes import suggest
from fuzzinit.report.index import record
from fuzzinit.scenario.load import load
from fuzzinit.search import SearchReport, search_or_raise

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"


def fz(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300)


def test_an_interrupted_check_is_not_a_clean_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load(FIXED)
    monkeypatch.setattr(search_module, "search", lambda *a, **k:
                        SearchReport(sc, 0, 3, 0.1, None, None, None, True))
    with pytest.raises(KeyboardInterrupt):
        search_or_raise(sc, 100, 0)


def test_no_fix_is_offered_for_an_ordering_that_passes() -> None:
    """A trace replayed against the fixed scenario already passes there."""
    pinned, fixed = load(PINNED), load(FIXED)
    finding = search_module.search(pinned, 200, 1).finding
    assert finding is not None
    order = program_order(fixed)
    assert suggest(fixed, order, order[-1:], []) == []


DEADLOCK = """
[scenario]
name = "dead"
[platform]
guest = "sev-es"
features = ["fred"]
[[cpu]]
program = ["start 1", "printk", "cr4_set fred", "wait_online 1"]
[[cpu]]
program = ["cr4_init", "online"]
[orderings]
triggers = { nmi = 1 }
"""


def test_a_fix_that_would_deadlock_is_not_offered(tmp_path: Path) -> None:
    path = tmp_path / "dead.toml"
    path.write_text(DEADLOCK)
    proc = fz(tmp_path, "run", str(path), "--db", "none", "--json")
    assert proc.returncode == 1, proc.stderr
    report = json.loads((tmp_path / json.loads(proc.stdout)["report"]
                         .replace(".md", ".json")).read_text())
    for fix in report["fixes"]:
        assert "wait_online" not in fix["text"], fix


def test_index_keeps_two_scenarios_with_one_signature(tmp_path: Path) -> None:
    for name in ("one", "two"):
        record(tmp_path, {"signature": "abc", "scenario": f"{name}.toml",
                          "name": name, "verdict": "triple_fault",
                          "report": f"{name}-abc.md", "trace": "t.json"})
    rows = json.loads((tmp_path / "index.json").read_text())["findings"]
    assert [(r["name"], r["count"]) for r in rows] == [("one", 1),
                                                       ("two", 1)]


def test_permute_mode_is_kept_in_trace_and_reproduce_command(
        tmp_path: Path) -> None:
    proc = fz(tmp_path, "run", str(FIXED), "--mode", "permute", "--seed",
              "3", "--db", "none", "--json")
    assert proc.returncode == 1, proc.stderr
    out = json.loads(proc.stdout)
    trace = json.loads((tmp_path / out["trace"]).read_text())
    assert trace["mode"] == "permute"
    md = (tmp_path / out["report"]).read_text().replace(" \\\n", " ")
    assert "--seed 3 --mode permute" in " ".join(md.split())
    again = fz(tmp_path, "run", str(FIXED), "--mode", "permute", "--seed",
               "3", "--db", "none", "--json")
    assert json.loads(again.stdout)["verdict"] == out["verdict"]


def test_report_of_a_whole_ordering_is_about_its_core(tmp_path: Path) -> None:
    proc = fz(tmp_path, "run", str(PINNED), "--seed", "1", "--db", "none",
              "--json")
    trace = json.loads((tmp_path / json.loads(proc.stdout)["trace"])
                       .read_text())
    trace["events"] = trace["shrunk_events"]
    (tmp_path / "whole.json").write_text(json.dumps(trace))
    md = fz(tmp_path, "report", "whole.json").stdout
    assert "cpu1 (an application processor) ends in triple_fault" in md
    assert "The causal core has 5 events" in " ".join(md.split())


def test_constraints_exit_1_when_the_rules_are_not_sufficient(
        tmp_path: Path) -> None:
    proc = fz(tmp_path, "constraints", str(FIXED), "--examples", "300",
              "--json")
    out = json.loads(proc.stdout)
    assert out["sufficient"] is False
    assert proc.returncode == 1
