"""The pytest plugin and fuzzinit.testing, as a user's test suite uses them
(pytest in a subprocess, in a folder of the user's own)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"


def pytest_in(folder: Path, *args: str,
              env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         *args], cwd=folder, capture_output=True, text=True, check=False,
        env={**os.environ, **(env or {})})


def three_line_test(folder: Path, scenario: Path) -> None:
    (folder / "test_user.py").write_text(
        "from fuzzinit.testing import assert_no_failing_ordering\n"
        "def test_bringup():\n"
        f"    assert_no_failing_ordering({str(scenario)!r})\n")


def test_three_line_test_finds_the_pinned_fred_triple_fault(
        tmp_path: Path) -> None:
    three_line_test(tmp_path, PINNED)
    proc = pytest_in(tmp_path, "--fuzzinit-profile", "ci")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "fuzzinit profile: ci" in out
    assert "FailingOrdering: fred-pinned-sev-es-ap: triple_fault - causal" \
        " core (5 events):" in out
    for line in ("   1. cpu0 cr4_set fred", "   2. cpu0 setup_cr_pinning",
                 "   3. cpu0 start 1", "   4. cpu1 cr4_init",
                 "   5. cpu1 printk",
                 "replay: fuzzinit replay corpus/fred-pinned-sev-es-ap/",
                 f"search: fuzzinit run {PINNED} --seed 0"):
        assert line in out, line
    trace = next((tmp_path / "corpus/fred-pinned-sev-es-ap").glob("*.json"))
    replay = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "replay", str(trace)],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert replay.returncode == 1
    assert replay.stdout.startswith("fred-pinned-sev-es-ap: triple_fault")


def test_three_line_test_passes_against_the_upstream_fix(
        tmp_path: Path) -> None:
    three_line_test(tmp_path, FIXED)
    proc = pytest_in(tmp_path, env={"FUZZINIT_PROFILE": "ci"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "fuzzinit profile: ci" in proc.stdout
    assert "1 passed" in proc.stdout


def test_unknown_profile_is_a_usage_error(tmp_path: Path) -> None:
    three_line_test(tmp_path, FIXED)
    proc = pytest_in(tmp_path, env={"FUZZINIT_PROFILE": "weekly"})
    assert proc.returncode == 4  # pytest's usage-error status
    assert "FUZZINIT_PROFILE='weekly': unknown profile; expected one of" \
        " dev, ci, nightly" in proc.stderr


def test_given_test_over_orderings_with_check_ordering(
        tmp_path: Path) -> None:
    (tmp_path / "test_given.py").write_text(
        "from hypothesis import given, settings\n"
        "from fuzzinit.testing import check_ordering, orderings\n"
        f"SCENARIO = {str(PINNED)!r}\n"
        "@settings(settings.get_profile('fuzzinit-ci'))\n"
        "@given(orderings(SCENARIO))\n"
        "def test_orderings(ordering):\n"
        "    check_ordering(SCENARIO, ordering)\n")
    proc = pytest_in(tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FailingOrdering: fred-pinned-sev-es-ap: triple_fault" \
        in proc.stdout
    # Hypothesis shows the failing ordering it shrank to.
    assert "ordering=[Event(cpu=0, op=0, slot=0, trigger=-1)" in proc.stdout
