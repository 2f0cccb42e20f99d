"""The fix checks of a report share a time bound (report/fixes.Checks,
`--fix-check-time`); a search stops at its deadline and says so; a check
that only asks whether a failure exists does not shrink it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from fuzzinit.report.fixes import Checks, suggest
from fuzzinit.scenario.load import load
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
PINNED = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
FIXED = load(ROOT / "models/upstream-fix-sev-es.toml")
NOTE = ("Fix checks share a 1e-06 s bound (--fix-check-time); it ran out:"
        " 22 candidate changes not checked (not offered)")


def fz(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          cwd=cwd, capture_output=True, text=True,
                          check=False, timeout=300)


def test_fixes_within_the_bound_and_past_it() -> None:
    finding = search(PINNED, 200, 1).finding
    assert finding is not None
    roomy = Checks(60.0)
    fixes = suggest(PINNED, finding.shrunk, finding.core, ["fred"], roomy)
    assert [f.text for f in fixes] == [
        "run cpu1 `wrmsr FRED_CONFIG entry` before `cr4_init`",
        "take fred out of the pinned CR4 mask (kernel.pinned_cr4):"
        " cr4_init() then no longer applies it"]
    assert (roomy.searches, roomy.stopped, roomy.not_checked) == (22, 0, 0)
    assert roomy.note() == ""
    spent = Checks(1e-6)
    assert suggest(PINNED, finding.shrunk, finding.core, ["fred"],
                   spent) == []
    assert (spent.searches, spent.not_checked) == (0, 22)
    assert spent.note() == NOTE


def test_search_stops_at_its_deadline() -> None:
    start = time.monotonic()
    report = search(FIXED, 10**6, 0, deadline=start + 0.5)
    assert report.out_of_time and report.finding is None
    assert 0 < report.examples < 10**6
    assert report.elapsed_s < 5


def test_a_check_without_shrinking_keeps_the_ordering_as_drawn() -> None:
    report = search(PINNED, 200, 1, shrink=False)
    assert report.finding is not None
    assert report.examples == 2
    # The core is not taken either: the check only asks whether one fails.
    assert len(report.finding.shrunk) == len(report.finding.core) == 57
    assert report.finding.result.name == "triple_fault"


def test_run_and_report_take_the_bound(tmp_path: Path) -> None:
    model = str(ROOT / "models/fred-pinned-sev-es-ap.toml")
    proc = fz(tmp_path, "run", model, "--seed", "1", "--db", "none",
              "--fix-check-time", "1e-6")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(next((tmp_path / "reports").glob("*.json"))
                     .read_text())
    assert doc["fixes"] == []
    assert doc["fix_checks"] == {"bound_s": 1e-6, "searches": 0,
                                 "stopped": 0, "not_checked": 22,
                                 "note": NOTE}
    md = next((tmp_path / "reports").glob("*.md")).read_text()
    assert NOTE.replace("\n", " ") in " ".join(md.split())
    trace = next((tmp_path / "corpus").rglob("*.json"))
    shown = fz(tmp_path, "report", str(trace), "--fix-check-time", "1e-6",
               "--format", "html")
    assert shown.returncode == 1
    assert f"<p>{NOTE}.</p>" in shown.stdout
    bad = fz(tmp_path, "run", model, "--fix-check-time", "0")
    assert bad.returncode == 2
    assert "argument --fix-check-time: '0': expected a positive number of" \
        " seconds" in bad.stderr
