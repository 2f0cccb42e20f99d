"""`fuzzinit report --format commit`: a commit message git keeps line for
line, with the kernel's Fixes:/Link: trailers only where the scenario
cites them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit.report.commit import _fill

ROOT = Path(__file__).parent.parent
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
# The commit that put FRED in the pinned mask, as 411df123c017 cites it.
FIXES = "fixes: ff45746fbf00 x86/cpu: Add X86_CR4_FRED macro"
URL = "https://example.org/fred-thread"


def _git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
         *args], cwd=cwd, input=stdin, capture_output=True, text=True,
        check=True)
    return proc.stdout


def _message(folder: Path, scenario: Path,
             replay_in: Path | None = None) -> str:
    def fz(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                              cwd=folder, capture_output=True, text=True,
                              check=False)
    run = fz("run", str(scenario), "--seed", "1", "--json", "--db", "none")
    assert run.returncode == 1, run.stderr
    against = ["--scenario", str(replay_in)] if replay_in else []
    proc = fz("report", json.loads(run.stdout)["trace"], "--format",
              "commit", *against)
    assert proc.returncode == (0 if replay_in else 1), proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The seed scenario without its `fixes:` citation: no trailer."""
    folder = tmp_path_factory.mktemp("plain")
    text = PINNED.read_text()
    assert f'  "{FIXES}",\n' in text
    scenario = folder / "fred-pinned-sev-es-ap.toml"
    scenario.write_text(text.replace(f'  "{FIXES}",\n', ""))
    return _message(folder, scenario)


@pytest.fixture(scope="module")
def cited(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("cited")
    text = PINNED.read_text()   # cites FIXES as written
    text = text.replace("[scenario]\n",
                        f'[scenario]\nnotes = "Discussion: {URL}."\n', 1)
    assert FIXES in text and URL in text
    scenario = folder / "fred-pinned-sev-es-ap.toml"
    scenario.write_text(text)
    return _message(folder, scenario)


def test_subject_then_blank_line_then_72_columns(plain: str) -> None:
    lines = plain.splitlines()
    assert lines[0] == ("fred-pinned-sev-es-ap: triple_fault when cpu1"
                        " printk runs after cr4_init")
    assert lines[1] == ""
    assert max(len(line) for line in lines) <= 72
    assert plain.isascii()
    assert not [line for line in lines if line.startswith("#")]
    assert "Background" not in plain
    assert "\n\n\n" not in plain and plain.endswith(".\n")


def test_core_chain_window_and_checked_fix_in_order(plain: str) -> None:
    paragraphs = plain.split("\n\n")
    assert paragraphs[2] == (
        "On a sev-es guest, cpu1 (an application processor) ends in"
        " triple_fault:\ncpu1 printk - console output: port I/O raises #VC"
        " in a sev-es guest.")
    core = paragraphs[paragraphs.index(
        "The causal core, 5 of the 57 events of the shrunk ordering:"
        " removing any\none of them changes the verdict ([window]: inside"
        " the fault window).") + 1]
    assert core.splitlines() == [
        "    1. cpu0 cr4_set fred (start_kernel/setup_arch/",
        "       cpu_init_fred_exceptions)",
        "    2. cpu0 setup_cr_pinning (start_kernel/arch_cpu_finalize_init/",
        "       identify_boot_cpu)",
        "    3. cpu0 start 1 (start_kernel/smp_init)",
        "    4. cpu1 cr4_init (start_secondary) [window]",
        "    5. cpu1 printk (start_secondary/cpu_init_exception_handling/",
        "       cpu_init_fred_exceptions) [window]"]
    chain = paragraphs[paragraphs.index("Chain:") + 1]
    assert chain.splitlines() == [
        "  - cpu1: printk",
        "  - console output: port I/O raises #VC in a sev-es guest",
        "  - #VC delivered through FRED (CR4.FRED = 1) with FRED_CONFIG ="
        " 0: no",
        "    entry point",
        "  - entry RIP 0x100 faults, #PF -> #DF through the same FRED"
        " setup ->",
        "    SHUTDOWN (triple fault)"]
    window = paragraphs.index(
        "Fault window: the failing event fails the same way anywhere from"
        " after\ncpu1 cr4_init until cpu1 wrmsr FRED_CONFIG entry runs"
        " (core steps 4-5).")
    fixes = paragraphs.index("Checked fix (the model confirms each removes"
                             " this failure):")
    assert paragraphs.index("Chain:") < window < fixes
    assert paragraphs[fixes + 1].splitlines()[0] == (
        "  - run cpu1 `wrmsr FRED_CONFIG entry` before `cr4_init`.")
    assert paragraphs[fixes + 2] == (
        'Fixed upstream by 411df123c017 ("x86/cpu: Remove X86_CR4_FRED from'
        ' the\nCR4 pinned bits mask").')
    assert paragraphs[-1] == ("Found by fuzzinit on fred-pinned-sev-es-ap.toml"
                              " (sev-es, seed 1,\nsignature 0fbf95b2e0e0).\n")


def test_trailers_only_where_the_scenario_cites_them(plain: str, cited: str,
                                                     tmp_path: Path) -> None:
    # An upstream fix ("fix: ...") is not the commit a Fixes: tag names.
    assert _git(tmp_path, "interpret-trailers", "--parse", stdin=plain) == ""
    assert _git(tmp_path, "interpret-trailers", "--parse", stdin=cited) == (
        'Fixes: ff45746fbf00 ("x86/cpu: Add X86_CR4_FRED macro")\n'
        f"Link: {URL}\n")
    assert cited.endswith(
        'signature 0fbf95b2e0e0).\n\nFixes: ff45746fbf00 ("x86/cpu: Add'
        f' X86_CR4_FRED macro")\nLink: {URL}\n')


def test_git_keeps_every_line(plain: str, cited: str, tmp_path: Path) -> None:
    assert _git(tmp_path, "stripspace", "--strip-comments",
                stdin=plain) == plain
    _git(tmp_path, "init", "-q")
    for message in (plain, cited):
        (tmp_path / "msg").write_text(message)
        _git(tmp_path, "commit", "-q", "--allow-empty", "--cleanup=strip",
             "-F", "msg")
        assert _git(tmp_path, "log", "-1", "--format=%B") == message + "\n"


def test_a_trace_that_no_longer_fails_claims_no_failure(
        tmp_path: Path) -> None:
    """The pinned-FRED ordering replayed on bare metal, where console
    output raises nothing: no core, chain, window or fix is claimed."""
    message = _message(tmp_path, PINNED,
                       replay_in=ROOT / "models/fred-pinned-bare-ap.toml")
    paragraphs = message.split("\n\n")
    assert paragraphs[0] == ("fred-pinned-bare-ap: ok: the recorded ordering"
                             " no longer fails")
    assert paragraphs[2] == "On bare metal, the recorded ordering ends in ok."
    assert paragraphs[3] == ("Its 5 events, in order; this scenario does"
                             " not count ok as a failure:")
    assert paragraphs[4].splitlines() == [
        "    1. cpu0 cr4_set fred", "    2. cpu0 setup_cr_pinning",
        "    3. cpu0 start 1", "    4. cpu1 cr4_init", "    5. cpu1 printk"]
    assert paragraphs[-1].startswith("Replayed by fuzzinit on"
                                     " fred-pinned-bare-ap.toml (bare,")
    for claim in ("Chain:", "Fault window", "Checked fix", "causal core",
                  "no single reordering", "Fixes:"):
        assert claim not in message


@pytest.mark.parametrize("words", range(1, 30))
def test_no_wrapped_line_starts_with_a_hash(words: int) -> None:
    text = "the event " * words + "#VC then #PF -> #DF -> #GP in turn"
    lines = _fill(text)
    assert [line for line in lines if line.startswith("#")] == []
    assert " ".join(lines) == " ".join(text.split())
    assert max(len(line) for line in lines) <= 72


def test_format_commit_is_a_choice() -> None:
    proc = subprocess.run([sys.executable, "-m", "fuzzinit", "report",
                           "--help"], capture_output=True, text=True,
                          check=False, env={**os.environ, "COLUMNS": "200"})
    assert "--format {md,json,html,commit}" in proc.stdout
