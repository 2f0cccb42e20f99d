"""Atheris campaigns, run as a user runs them: `fuzzinit fuzz` in a
subprocess; the OSS-Fuzz-style targets in fuzz/ run as executables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("atheris", reason="atheris is not installed: fuzz"
                    " campaigns need it (pip install 'fuzzinit[fuzz]';"
                    " make test installs it)")

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
LINT1 = ROOT / "models/fred-pinned-bare-ap-lint1.toml"


def fuzz(cwd: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "fuzz", *args, "--json"], cwd=cwd,
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.stdout, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout)
    return proc.returncode, out


def test_campaign_finds_the_pinned_fred_triple_fault(tmp_path: Path) -> None:
    status, out = fuzz(tmp_path, str(PINNED), "--runs", "20000", "--seed",
                       "1")
    assert status == 1
    assert out["distinct_failures"] == 1
    [finding] = out["new_failures"]
    assert finding["verdict"] == "triple_fault"
    assert finding["core_events"] == 5
    crashes = list((tmp_path / "corpus/fred-pinned-sev-es-ap/crashes")
                   .glob("*.json"))
    assert [c.stem for c in crashes] == [finding["signature"]]
    trace = json.loads(crashes[0].read_text())
    assert [(e["cpu"], e["op"]) for e in trace["events"]] == [
        (0, "cr4_set fred"), (0, "setup_cr_pinning"), (0, "start 1"),
        (1, "cr4_init"), (1, "printk")]
    replay = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "replay", str(crashes[0])],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert replay.returncode == 1
    assert (tmp_path / "reports" / f"fred-pinned-sev-es-ap-"
            f"{finding['signature']}.md").is_file()


def test_line_coverage_campaign_finds_the_lint1_triple_fault(
        tmp_path: Path) -> None:
    status, out = fuzz(tmp_path, str(LINT1), "--coverage", "lines", "--runs",
                       "5000", "--seed", "1")
    assert status == 1 and out["coverage"] == "lines"
    assert [f["verdict"] for f in out["new_failures"]] == ["triple_fault"]


def test_campaign_on_the_upstream_fix_finds_nothing(tmp_path: Path) -> None:
    status, out = fuzz(tmp_path, str(FIXED), "--runs", "20000", "--seed", "1")
    assert status == 0
    assert out["distinct_failures"] == 0 and out["new_failures"] == []
    assert out["execs"] >= 16384


def test_rerun_resumes_from_the_corpus(tmp_path: Path) -> None:
    _, first = fuzz(tmp_path, str(LINT1), "--runs", "5000", "--seed", "1")
    assert first["distinct_failures"] == 1 and len(first["new_failures"]) == 1
    inputs = tmp_path / "corpus/fred-pinned-bare-ap-lint1/inputs"
    kept = {p.name for p in inputs.iterdir()}
    assert kept, "the first run left a corpus"
    status, second = fuzz(tmp_path, str(LINT1), "--runs", "2000", "--seed",
                          "2")
    assert status == 1
    assert second["new_failures"] == []          # known: not written again
    assert second["distinct_failures"] == 1
    assert kept <= {p.name for p in inputs.iterdir()}


def _campaign(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fuzzinit", "fuzz", *args], cwd=cwd,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_the_campaign_within_a_second(tmp_path: Path,
                                                  signum: int) -> None:
    proc = _campaign(tmp_path, str(LINT1))
    time.sleep(3)
    proc.send_signal(signum)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - sent < 1.0
    assert "campaign interrupted after" in out, err
    assert "distinct failures" in out
    traces = list((tmp_path / "corpus").glob("*/crashes/*.json"))
    for trace in traces:
        json.loads(trace.read_text())   # complete, never half written
    status, again = fuzz(tmp_path, str(LINT1), "--runs", "500")
    assert status == 1 and again["new_failures"] == []
    # Reports an interrupted campaign left unwritten come with the rerun.
    for trace in traces:
        assert (tmp_path / "reports" /
                f"fred-pinned-bare-ap-lint1-{trace.stem}.md").is_file()


def test_sigkill_leaves_a_corpus_the_next_run_reads(tmp_path: Path) -> None:
    proc = _campaign(tmp_path, str(FIXED))
    time.sleep(3)
    proc.kill()
    proc.wait(timeout=10)
    time.sleep(0.5)   # the harness dies with its parent (PDEATHSIG)
    status, out = fuzz(tmp_path, str(FIXED), "--runs", "2000")
    assert status == 0 and out["execs"] >= 1024


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="--jobs is capped at the cores")
def test_two_jobs_share_one_corpus(tmp_path: Path) -> None:
    status, out = fuzz(tmp_path, str(LINT1), "--jobs", "2", "--time", "6")
    assert status == 1
    assert out["jobs"] == 2 and out["distinct_failures"] == 1
    # Workers' findings are seen through crashes/, and get their report.
    [new] = out["new_failures"]
    assert new["verdict"] == "triple_fault"
    assert (tmp_path / "reports" / f"fred-pinned-bare-ap-lint1-"
            f"{new['signature']}.md").is_file()
    assert len(list((tmp_path / "corpus/fred-pinned-bare-ap-lint1/crashes")
                    .glob("*.json"))) == 1


@pytest.mark.parametrize(("target", "crashes"), [
    ("fred_pinned_sev_es_fuzzer.py", True),
    ("pinning_offline_snp_fuzzer.py", True),
    ("upstream_fix_sev_es_fuzzer.py", False)])
def test_oss_fuzz_targets_run_as_executables(tmp_path: Path, target: str,
                                            crashes: bool) -> None:
    env = dict(os.environ, PATH=os.path.dirname(sys.executable)
               + os.pathsep + os.environ["PATH"])
    proc = subprocess.run([str(ROOT / "fuzz" / target), "-runs=20000",
                           "-seed=1"], cwd=tmp_path, capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    if crashes:
        assert proc.returncode != 0
        assert "FailingOrdering: " in proc.stdout + proc.stderr
        assert list(tmp_path.glob("crash-*"))
    else:
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Done 20000 runs" in proc.stderr


def test_campaign_finds_a_warn_when_the_scenario_fails_on_it(
        tmp_path: Path) -> None:
    path = tmp_path / "warns.toml"
    path.write_text('[scenario]\nname = "warns"\nfail_on = ["warn"]\n'
                    '[platform]\nfeatures = ["smep"]\n[[cpu]]\nprogram = ['
                    '"cr4_set smep", "setup_cr_pinning", "cr4_clear smep"]\n')
    status, out = fuzz(tmp_path, str(path), "--runs", "300")
    assert status == 1
    assert [f["verdict"] for f in out["new_failures"]] == ["warn"]
