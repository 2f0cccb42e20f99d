"""Reports a maintainer can paste: sections, determinism, the checked
fixes, the fault window, the index and the generated regression test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fuzzinit.report.document import build, to_json
from fuzzinit.report.markdown import render
from fuzzinit.scenario.load import load
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"


def fz(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args], cwd=cwd,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "COLUMNS": "80"})


@pytest.fixture(scope="module")
def pinned_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("run")
    proc = fz(folder, "run", str(PINNED), "--seed", "1", "--json", "--db",
              "none")
    assert proc.returncode == 1, proc.stderr
    out: dict[str, Any] = json.loads(proc.stdout)
    out["folder"] = folder
    return out


def test_pinned_fred_report_sections(pinned_run: dict[str, Any]) -> None:
    md = (pinned_run["folder"] / pinned_run["report"]).read_text()
    heads = re.findall(r"^#{1,3} .*$", md, re.M)
    assert heads == [
        "# fred-pinned-sev-es-ap: triple_fault", "## Background",
        "### CR pinning", "### FRED", "### SEV-ES/SNP #VC", "## Problem",
        "## Fix", "## Reproduce"]
    assert all(len(line) <= 72 for line in md.splitlines()), \
        "pastes into a commit message"
    assert md.isascii()
    summary = md.split("\n\n")[2]
    assert summary.startswith("On a sev-es guest, cpu1 (an application"
                              " processor) ends in triple_fault")


def test_problem_timeline_shows_fred_state_at_each_step(
        pinned_run: dict[str, Any]) -> None:
    md = (pinned_run["folder"] / pinned_run["report"]).read_text()
    problem = md.split("## Problem")[1].split("## Fix")[0]
    steps = re.findall(r"^ ?\d\. (cpu\d .*?)$\n((?:^ {4}.*$\n)+)", problem,
                       re.M)
    assert [s[0].split("  ")[0] for s in steps] == [
        "cpu0 cr4_set fred", "cpu0 setup_cr_pinning", "cpu0 start 1",
        "cpu1 cr4_init", "cpu1 printk"]
    for _, state in steps:
        flat = " ".join(state.split())
        assert "CR4.FRED=1" in flat and "FRED_CONFIG=" in flat
    # The AP's own FRED_CONFIG is still 0 when its printk raises #VC.
    assert "FRED_CONFIG=0 " in " ".join(steps[-1][1].split())
    assert "[window]" in steps[3][0] and "[window]" in problem


def test_fix_section_names_a_reordering_the_model_confirms(
        pinned_run: dict[str, Any]) -> None:
    doc = json.loads((pinned_run["folder"] / pinned_run["report"]
                      .replace(".md", ".json")).read_text())
    fixes = {f["text"]: f["checked"] for f in doc["fixes"]}
    move = "run cpu1 `wrmsr FRED_CONFIG entry` before `cr4_init`"
    assert fixes[move].startswith("the shrunk ordering with this move"
                                  " passes; with the program so changed,"
                                  " no failing ordering in ")
    assert any(t.startswith("take fred out of the pinned CR4 mask")
               for t in fixes)
    # Moving only the pr_info is no fix: console output can come anywhere.
    assert not any("printk` after" in t for t in fixes)


def test_replay_command_in_the_report_reproduces(
        pinned_run: dict[str, Any]) -> None:
    md = (pinned_run["folder"] / pinned_run["report"]).read_text()
    command = re.search(r"^    (fuzzinit replay \S+)$", md, re.M)
    assert command is not None
    proc = fz(pinned_run["folder"], *command.group(1).split()[1:])
    assert proc.returncode == 1
    assert proc.stdout.startswith("fred-pinned-sev-es-ap: triple_fault")


def test_same_trace_gives_byte_identical_markdown_and_json(
        pinned_run: dict[str, Any]) -> None:
    folder, trace = pinned_run["folder"], pinned_run["trace"]
    outputs = []
    for fmt in ("md", "json", "md", "json"):
        proc = fz(folder, "report", trace, "--format", fmt)
        assert proc.returncode == 1, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
    assert json.loads(outputs[1])["fuzzinit_report"] == 1


def test_fault_window_opens_at_cr4_init_and_closes_at_fred_config() -> None:
    sc = load(PINNED)
    finding = search(sc, 500, 1).finding
    assert finding is not None
    report = build(sc, finding.core, finding.shrunk, finding.result, 1, "t")
    w = report.window
    assert w is not None
    assert report.label(w.opens) == "cpu1 cr4_init"
    assert report.label(w.closes) == "cpu1 wrmsr FRED_CONFIG entry"
    doc = to_json(report)
    assert doc["window"]["opens"]["op"] == "cr4_init"
    assert [t["id"] for t in doc["background"]] == ["cr_pinning", "fred",
                                                    "sev_vc"]


def test_background_follows_the_failure() -> None:
    """A different bug gets different background: the online-gated pinning
    failure is about #VC, the runtime IDT and paranoid_entry's RDGSBASE."""
    sc = load(ROOT / "models/pinning-offline-snp-idt.toml")
    finding = search(sc, 500, 1).finding
    assert finding is not None
    report = build(sc, finding.core, finding.shrunk, finding.result, 1, "t")
    assert [t.id for t in report.background] == ["sev_vc",
                                                 "fsgsbase_paranoid"]
    md = render(report)
    assert "### CR pinning" not in md and "### FRED" not in md


def test_index_merges_duplicates(tmp_path: Path) -> None:
    for seed in ("1", "2"):
        proc = fz(tmp_path, "run", str(PINNED), "--seed", seed, "--db",
                  "none")
        assert proc.returncode == 1, proc.stderr
    index = json.loads((tmp_path / "reports/index.json").read_text())
    [row] = index["findings"]
    assert row["count"] == 2 and row["name"] == "fred-pinned-sev-es-ap"
    assert row["first_seen"] <= row["last_seen"]
    md = (tmp_path / "reports/index.md").read_text()
    assert md.count("fred-pinned-sev-es-ap: triple_fault") == 1
    assert "found 2 times" in md
    assert (tmp_path / "reports/index.html").read_text().count("<tr>") == 2


def test_generated_regression_test_fails_before_and_passes_after_the_fix(
        pinned_run: dict[str, Any], tmp_path: Path) -> None:
    folder = pinned_run["folder"]
    out = tmp_path / "test_regression.py"
    proc = fz(folder, "report", pinned_run["trace"], "--pytest", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"wrote {out}: replays ")

    def pytest_with(scenario: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(out)], cwd=tmp_path, capture_output=True, text=True,
            check=False, env={**os.environ,
                              "FUZZINIT_SCENARIO": str(scenario)})

    before = pytest_with(PINNED)
    assert before.returncode == 1, before.stdout
    assert "the replayed ordering still ends in triple_fault" in before.stdout
    after = pytest_with(FIXED)
    assert after.returncode == 0, after.stdout + after.stderr
    assert "1 passed" in after.stdout


def test_report_json_reads_back_as_a_trace(
        pinned_run: dict[str, Any]) -> None:
    folder = pinned_run["folder"]
    report = pinned_run["report"].replace(".md", ".json")
    proc = fz(folder, "replay", report, "--json")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["verdict"] == "triple_fault"


def test_generated_regression_test_finds_its_scenario_from_any_cwd(
        tmp_path: Path) -> None:
    """The scenario path in the test is relative to the test file, so the
    test runs from any folder and after the tree is moved."""
    tree = tmp_path / "tree"
    (tree / "models").mkdir(parents=True)
    (tree / "models/pinned.toml").write_text(PINNED.read_text())
    run = fz(tree, "run", "models/pinned.toml", "--seed", "1", "--json",
             "--db", "none")
    assert run.returncode == 1, run.stderr
    out = tree / "tests/regress/test_pinned.py"
    out.parent.mkdir(parents=True)
    proc = fz(tree, "report", json.loads(run.stdout)["trace"], "--pytest",
              "tests/regress/test_pinned.py")
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert 'Path(__file__).parent / "../../models/pinned.toml"' in text
    assert str(tmp_path) not in text
    moved = tmp_path / "moved"
    tree.rename(moved)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "FUZZINIT_SCENARIO"}

    def run_test() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
             str(moved / "tests/regress/test_pinned.py")], cwd=elsewhere,
            capture_output=True, text=True, check=False, env=env)

    before = run_test()
    assert before.returncode == 1, before.stdout + before.stderr
    assert "the replayed ordering still ends in triple_fault" in before.stdout
    (moved / "models/pinned.toml").write_text(FIXED.read_text())
    after = run_test()
    assert after.returncode == 0, after.stdout + after.stderr
    assert "1 passed" in after.stdout
