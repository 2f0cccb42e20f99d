"""The `fuzzinit` command line, run in a subprocess as users and CI run it.

Each test works in its own tmp_path (the cwd of the subprocess), so
reports/ and corpus/ land there.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

PINNED = """\
[scenario]
name = "pinned"
expect = "triple_fault"
[platform]
guest = "sev-es"
features = ["fred", "smep", "fsgsbase", "pcid"]
[kernel]
pinned_cr4 = ["smep", "fsgsbase", "fred"]
[routines]
early_setup_idt = ["setup_ghcb", "lidt bringup_ghcb"]
cpu_init_fred_exceptions = ["printk", "wrmsr FRED_CONFIG entry", \
"wrmsr FRED_STKLVLS 0", "wrmsr FRED_RSP0 stack", "cr4_set FRED", "lidt null"]
[[cpu]]
program = ["lidt bringup", "early_setup_idt", "lidt early", \
"cpu_init_fred_exceptions", "sev_es_init_vc_handling", \
"cr4_set smep fsgsbase", "setup_cr_pinning", "start 1", "wait_online 1"]
[[cpu]]
program = ["early_setup_idt", "cr4_init", "setup_ghcb", \
"cpu_init_fred_exceptions", "online"]
"""

# The same machine on bare metal: the console's port I/O raises nothing.
BARE = (PINNED.replace('"sev-es"', '"bare"')
        .replace('name = "pinned"', 'name = "bare"')
        .replace('expect = "triple_fault"', 'expect = "ok"'))

# Asynchronous triggers give Hypothesis real choices to make.
TRIGGERS = (PINNED.replace('name = "pinned"', 'name = "trig"')
            + "[orderings]\ntriggers = { nmi = 1, printk = 2 }\n")

CORE = [(0, "cr4_set FRED"), (0, "setup_cr_pinning"), (0, "start 1"),
        (1, "cr4_init"), (1, "printk")]


def fz(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def write(cwd: Path, name: str, text: str) -> Path:
    path = cwd / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def pairs(events: list[dict[str, Any]]) -> list[tuple[int, str]]:
    return [(e["cpu"], e["op"]) for e in events]


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 with exactly one line on stderr and no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fuzzinit: ")
    return lines[0]


def run_json(cwd: Path, model: str, *args: str) -> dict[str, Any]:
    proc = fz(cwd, "run", model, "--json", *args)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stderr == ""
    assert len(proc.stdout.splitlines()) == 1, "one JSON object, one line"
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


@pytest.fixture
def finding(tmp_path: Path) -> dict[str, Any]:
    """`run --json` of the pinned scenario in tmp_path."""
    write(tmp_path, "pinned.toml", PINNED)
    return run_json(tmp_path, "pinned.toml")


def test_run_failing_writes_reports_and_trace(tmp_path: Path) -> None:
    scenario = write(tmp_path, "pinned.toml", PINNED)
    proc = fz(tmp_path, "run", "pinned.toml", "--seed", "5")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    traces = list((tmp_path / "corpus" / "pinned").glob("*.json"))
    assert len(traces) == 1
    sig = traces[0].stem
    md = tmp_path / "reports" / f"pinned-{sig}.md"
    report = tmp_path / "reports" / f"pinned-{sig}.json"
    assert md.is_file() and report.is_file()
    # Nothing else: no lock file, no temporary.
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == \
        sorted([md.name, report.name, f"pinned-{sig}.html", "index.json",
                "index.md", "index.html"])

    out = proc.stdout
    assert out.startswith("pinned: triple_fault after ")
    assert "causal core (5 of " in out
    assert "  1. cpu0 cr4_set FRED  (cpu_init_fred_exceptions)\n" in out
    assert "  4. cpu1 cr4_init\n" in out
    assert f"report: reports/pinned-{sig}.md\n" in out
    assert f"trace:  corpus/pinned/{sig}.json" in out

    trace = json.loads(traces[0].read_text(encoding="utf-8"))
    assert trace["scenario"] == "pinned.toml"
    assert trace["scenario_sha256"] == \
        hashlib.sha256(scenario.read_bytes()).hexdigest()
    assert trace["seed"] == 5
    assert trace["verdict"] == "triple_fault"
    assert pairs(trace["events"]) == CORE

    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["fuzzinit_report"] == 1
    assert doc["verdict"] == "triple_fault"
    assert doc["signature"] == sig
    assert pairs(doc["steps"]) == CORE
    assert doc["reproduce"]["trace"] == f"corpus/pinned/{sig}.json"
    assert "\n## Problem\n" in md.read_text(encoding="utf-8")


def test_run_json_object(finding: dict[str, Any]) -> None:
    for key in ("scenario", "verdict", "events", "chain", "seed",
                "elapsed_s", "examples"):
        assert key in finding, key
    assert finding["scenario"] == "pinned.toml"
    assert finding["verdict"] == "triple_fault"
    assert finding["seed"] == 0
    assert isinstance(finding["elapsed_s"], float)
    assert finding["elapsed_s"] >= 0
    assert isinstance(finding["examples"], int) and finding["examples"] >= 1
    assert all(isinstance(e["cpu"], int) and isinstance(e["op"], str)
               for e in finding["events"])
    assert pairs(finding["events"]) == CORE
    assert finding["chain"] and all(isinstance(c, str)
                                    for c in finding["chain"])
    assert finding["chain"][0] == "cpu1: printk"
    assert "triple fault" in finding["chain"][-1]


def test_run_same_seed_same_result(tmp_path: Path) -> None:
    write(tmp_path, "trig.toml", TRIGGERS)
    first = run_json(tmp_path, "trig.toml", "--seed", "3", "--db", "none")
    second = run_json(tmp_path, "trig.toml", "--seed", "3", "--db", "none")
    for doc in (first, second):
        del doc["elapsed_s"], doc["first_failure_s"]
    assert first == second
    assert pairs(first["events"]) == CORE


def test_run_replays_a_saved_failure_from_the_default_database(
        tmp_path: Path) -> None:
    write(tmp_path, "trig.toml", TRIGGERS)
    first = run_json(tmp_path, "trig.toml", "--seed", "3")
    assert first["from_database"] is False
    assert list((tmp_path / ".hypothesis" / "fuzzinit").iterdir())
    again = run_json(tmp_path, "trig.toml", "--seed", "4")
    assert again["from_database"] is True
    assert again["examples"] == 1
    assert again["events"] == first["events"]


def test_replay_gives_the_same_verdict(tmp_path: Path,
                                       finding: dict[str, Any]) -> None:
    proc = fz(tmp_path, "replay", finding["trace"], "--json")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert out["verdict"] == finding["verdict"] == "triple_fault"
    assert out["events"] == finding["events"]
    assert out["chain"] == finding["chain"]
    assert out["seed"] == 0
    assert isinstance(out["elapsed_s"], float)

    proc = fz(tmp_path, "replay", finding["trace"])
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.splitlines()[0] == "pinned: triple_fault (5 events)"


def test_replay_after_editing_the_scenario_warns(
        tmp_path: Path, finding: dict[str, Any]) -> None:
    with (tmp_path / "pinned.toml").open("a", encoding="utf-8") as fh:
        fh.write("# edited after the run\n")
    proc = fz(tmp_path, "replay", finding["trace"], "--json")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        "fuzzinit: warning: pinned.toml changed since the trace was written"
        " (sha256 differs); replaying anyway\n")
    assert json.loads(proc.stdout)["verdict"] == "triple_fault"


def test_replay_of_a_vanished_op_exits_2(tmp_path: Path,
                                         finding: dict[str, Any]) -> None:
    write(tmp_path, "pinned.toml", PINNED.replace(
        '"early_setup_idt", "cr4_init"', '"early_setup_idt", "nop"'))
    proc = fz(tmp_path, "replay", finding["trace"])
    line = one_error_line(proc)
    assert line == (
        f"fuzzinit: error: {finding['trace']}: event 3: cpu1 op 'cr4_init'"
        " is not in pinned.toml (neither an unused op of cpu1's program nor"
        " one of its triggers); fix: replay against the scenario the trace"
        " was made from")
    assert proc.stdout == ""


@pytest.mark.parametrize(("trace", "expected"), [
    ("{", "e.json:1: not JSON:"),
    ('{"events": []}', "e.json: not a fuzzinit trace"),
    ('{"scenario": "gone.toml", "events": []}',
     "e.json: scenario gone.toml not found"),
    ('{"scenario": "pinned.toml", "events": [{"cpu": 7, "op": "x"}]}',
     "e.json: event 0: pinned.toml has no cpu 7"),
    ('{"scenario": "pinned.toml", "events": [{"cpu": 1, "op": "cr4_init"}]}',
     "e.json: the ordering cannot happen in pinned.toml"),
    ('{"scenario": "pinned.toml", "events": []}',
     "e.json: the trace has no events; expected at least one"),
], ids=["not-json", "not-trace", "no-scenario", "no-cpu", "impossible",
        "empty"])
def test_replay_of_a_bad_trace_exits_2(tmp_path: Path, trace: str,
                                       expected: str) -> None:
    write(tmp_path, "pinned.toml", PINNED)
    write(tmp_path, "e.json", trace)
    line = one_error_line(fz(tmp_path, "replay", "e.json"))
    assert line.startswith(f"fuzzinit: error: {expected}")


def test_malformed_scenario_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "bad.toml", PINNED.replace('"cr4_init"', '"cr4_inti"'))
    proc = fz(tmp_path, "run", "bad.toml")
    line = one_error_line(proc)
    assert line.startswith("fuzzinit: error: bad.toml:15: cpu[1].program[1]:"
                           " unknown op 'cr4_inti'; expected ")
    assert line.endswith("; fix: did you mean 'cr4_init'?")
    assert proc.stdout == ""
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "corpus").exists()


@pytest.mark.parametrize("argv", [
    ["run", "--bogus", "pinned.toml"],
    [],
    ["run"],
    ["frobnicate"],
    ["run", "pinned.toml", "--examples", "many"],
], ids=["unknown-flag", "no-command", "no-model", "unknown-command",
        "bad-int"])
def test_bad_usage_exits_2(tmp_path: Path, argv: list[str]) -> None:
    write(tmp_path, "pinned.toml", PINNED)
    line = one_error_line(fz(tmp_path, *argv))
    assert line.startswith("fuzzinit: usage error: ")
    assert line.endswith("--help'")


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "pinned.toml", "--examples", "0"],
     "fuzzinit: error: --examples 0: expected a positive number of"
     " orderings"),
    (["run", "missing.toml"],
     "fuzzinit: error: missing.toml: cannot read: No such file or directory;"
     " expected a readable .toml file; fix: check the path (fuzzinit models"
     " lists them)"),
    (["models", "nowhere"],
     "fuzzinit: error: nowhere: no such folder; expected a folder of scenario"
     " files; fix: run from the project root or name the folder"),
    (["models", "pinned.toml"],
     "fuzzinit: error: pinned.toml: is a file; expected a folder of scenario"
     " files; fix: name its folder, e.g. 'fuzzinit models .'"),
], ids=["zero-examples", "missing-model", "missing-folder", "file-not-folder"])
def test_bad_input_exits_2(tmp_path: Path, argv: list[str],
                           expected: str) -> None:
    write(tmp_path, "pinned.toml", PINNED)
    assert one_error_line(fz(tmp_path, *argv)) == expected


@pytest.mark.parametrize("flag", ["--reports", "--corpus"])
def test_unwritable_output_folder_exits_2(tmp_path: Path, flag: str) -> None:
    write(tmp_path, "pinned.toml", PINNED)
    write(tmp_path, "taken", "a file where a folder should be\n")
    one_error_line(fz(tmp_path, "run", "pinned.toml", flag, "taken"))


def test_models_json_lists_the_folder(tmp_path: Path) -> None:
    write(tmp_path, "m/pinned.toml", PINNED)
    write(tmp_path, "m/bare.toml", BARE)
    write(tmp_path, "m/notes.txt", "not a scenario\n")
    proc = fz(tmp_path, "models", "m", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = json.loads(proc.stdout)
    assert [(r["path"], r["name"], r["guest"], r["expect"]) for r in rows] \
        == [("m/bare.toml", "bare", "bare", "ok"),
            ("m/pinned.toml", "pinned", "sev-es", "triple_fault")]

    assert [(r["category"], r["kernel"], r["fix"], r["fixed_in"])
            for r in rows] == [(None, None, None, None)] * 2

    proc = fz(tmp_path, "models", "m")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "(no category):",
        "  m/bare.toml" + " " * 36 + "expect ok            bare     -",
        "      bare",
        "  m/pinned.toml" + " " * 34 + "expect triple_fault  sev-es   -",
        "      pinned"]


def test_models_groups_the_library_by_category(tmp_path: Path) -> None:
    proc = fz(tmp_path, "models", "--json")
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    seed = rows["fred-pinned-sev-es-ap"]
    assert (seed["category"], seed["kernel"], seed["fix"]) == (
        "ap-bringup", "v6.12", "411df123c017 x86/cpu: Remove X86_CR4_FRED"
        " from the CR4 pinned bits mask")
    assert seed["fixed_in"].endswith("fuzzinit/library/upstream-fix-sev-es"
                                     ".toml")
    text = fz(tmp_path, "models").stdout.splitlines()
    heads = [line for line in text if not line.startswith(" ")]
    assert heads == sorted(heads) and "ap-bringup:" in heads


def test_models_with_a_broken_file_exits_2(tmp_path: Path) -> None:
    write(tmp_path, "m/pinned.toml", PINNED)
    write(tmp_path, "m/broken.toml", "[scenario\n")
    proc = fz(tmp_path, "models", "m")
    assert one_error_line(proc) == \
        "fuzzinit: error: 1 scenario file(s) do not load"
    lines = proc.stdout.splitlines()
    assert lines[:2] == ["(no category):", "  m/pinned.toml" + " " * 34
                         + "expect triple_fault  sev-es   -"]
    assert lines[-1].startswith("m/broken.toml: ERROR m/broken.toml:1:"
                                " invalid TOML: ")

    proc = fz(tmp_path, "models", "m", "--json")
    assert proc.returncode == 2
    rows = json.loads(proc.stdout)
    assert rows[0]["path"] == "m/broken.toml"
    assert rows[0]["error"].startswith("m/broken.toml:1: invalid TOML: ")
    assert rows[1]["name"] == "pinned"


def test_passing_scenario_exits_0(tmp_path: Path) -> None:
    write(tmp_path, "bare.toml", BARE)
    proc = fz(tmp_path, "run", "bare.toml", "--json", "--examples", "50")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    out = json.loads(proc.stdout)
    assert out["verdict"] == "ok"
    assert out["events"] == [] and out["chain"] == []
    assert out["scenario"] == "bare.toml"
    assert 1 <= out["examples"] <= 50
    assert not (tmp_path / "reports").exists()
    assert not (tmp_path / "corpus").exists()

    proc = fz(tmp_path, "run", "bare.toml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("bare: no failing ordering in ")


def test_minimize_prints_the_core(tmp_path: Path,
                                  finding: dict[str, Any]) -> None:
    # Replace the trace's events by the long ordering Hypothesis shrank to,
    # and let `minimize` find the causal core again.
    trace = json.loads((tmp_path / finding["trace"]).read_text("utf-8"))
    long = trace.pop("shrunk_events")
    assert len(long) > len(CORE)
    for key in ("verdict", "chain", "signature"):
        del trace[key]
    trace["events"] = long
    write(tmp_path, "long.json", json.dumps(trace))

    proc = fz(tmp_path, "minimize", "long.json")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.splitlines()
    assert lines[:6] == [
        "pinned: triple_fault (5 events)",
        "   1. cpu0 cr4_set FRED  (cpu_init_fred_exceptions)",
        "   2. cpu0 setup_cr_pinning",
        "   3. cpu0 start 1",
        "   4. cpu1 cr4_init",
        "   5. cpu1 printk  (cpu_init_fred_exceptions)",
    ]

    proc = fz(tmp_path, "minimize", "long.json", "--json")
    assert proc.returncode == 1, proc.stderr
    assert pairs(json.loads(proc.stdout)["events"]) == CORE


def test_report_prints_markdown(tmp_path: Path,
                               finding: dict[str, Any]) -> None:
    proc = fz(tmp_path, "report", finding["trace"])
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == ""
    md = proc.stdout
    assert md.startswith("# pinned: triple_fault\n")
    assert "\n## Problem\n" in md
    assert "- cpu1: printk\n" in md
    assert f"fuzzinit replay {finding['trace']}" in md


def test_report_of_a_json_report_file(tmp_path: Path,
                                      finding: dict[str, Any]) -> None:
    """The JSON report `run` writes replays as a trace too."""
    report = finding["report"].replace(".md", ".json")
    shrunk = json.loads((tmp_path / report).read_text())["shrunk_events"]
    assert len(shrunk) > 5
    proc = fz(tmp_path, "report", report)
    assert proc.returncode == 1, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "The causal core has 5 events (of" \
        f" {len(shrunk)} in the shrunk ordering)" in text


def test_replay_of_a_non_utf8_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "t.json").write_bytes(b"\xff\xfe")
    assert one_error_line(fz(tmp_path, "replay", "t.json")) == (
        "fuzzinit: error: t.json: not UTF-8 text (byte 0); fix: pass a trace"
        " written by fuzzinit run")


BIG = """
[scenario]
name = "big"
[platform]
guest = "bare"
[[cpu]]
program = ["start 1", "start 2", "wait_online 1", "wait_online 2", "printk"]
[[cpu]]
program = ["cr4_init", "printk", "cpuid", "printk", "online"]
[[cpu]]
program = ["cr4_init", "cpuid", "printk", "cpuid", "online"]
[orderings]
triggers = { printk = 8, cpuid = 8 }
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_signal_ends_a_long_run_with_a_summary(tmp_path: Path,
                                               signum: int) -> None:
    """Ctrl-C (or SIGTERM) mid-search: a summary line, exit 130, no
    traceback, within a second."""
    write(tmp_path, "big.toml", BIG)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fuzzinit", "run", "big.toml", "--examples",
         "1000000"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(1.5)
    proc.send_signal(signum)
    sent = time.monotonic()
    out, err = proc.communicate(timeout=10)
    assert time.monotonic() - sent < 1.0
    assert proc.returncode == 130
    assert re.fullmatch(r"big: interrupted after \d+ orderings"
                        r" \(\d+\.\d\d s, seed 0\)\n", out)
    assert err == ""


def test_replay_names_the_stub_handlers_that_ran(tmp_path: Path) -> None:
    """An explicit IDT table: #DE has no gate, the #GP for it makes #DF
    (SDM table 6-5), whose stub runs: replay names it."""
    write(tmp_path, "t.toml", '[scenario]\nname = "t"\n'
          'fail_on = ["triple_fault"]\n'
          '[[cpu]]\nprogram = ["lidt gates 8,13", "div0"]\n')
    write(tmp_path, "t.json", json.dumps({
        "fuzzinit_trace": 1, "scenario": "t.toml",
        "events": [{"cpu": 0, "op": "lidt gates 8,13"},
                   {"cpu": 0, "op": "div0"}]}))
    proc = fz(tmp_path, "replay", "t.json", "--json")
    assert (proc.returncode, proc.stderr) == (0, "")
    out = json.loads(proc.stdout)
    assert (out["verdict"], out["handled"]) == (
        "ok", [{"cpu": 0, "vector": 8, "name": "#DF"}])
    proc = fz(tmp_path, "replay", "t.json")
    assert proc.stdout.splitlines() == [
        "t: ok (2 events)", "  stub handlers that ran: cpu0 #DF"]
