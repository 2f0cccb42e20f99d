"""Explanations never claim more than the scenario allows: the causal core
keeps a trigger inside its window, the fault window and the shaded
timeline start where the trigger may fire, verify-fix's closed windows
are matched by position and respect trigger windows, the Problem
timeline says whose state it shows, and a fix check says when its
examples were the whole space."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit.explore.windows import timeline, windows
from fuzzinit.minimise.core import causal_core, in_windows
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import html
from fuzzinit.report.document import Report, build, to_json
from fuzzinit.report.fixes import FIX_CHECK_S, Checks, passes_search
from fuzzinit.report.markdown import render
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.search import search
from fuzzinit.verdict import evaluate

ROOT = Path(__file__).parent.parent
SCENARIOS = ROOT / "tests/scenarios"
NMI_ONLINE = SCENARIOS / "nmi-after-online.toml"
ONLINE_FIRST = SCENARIOS / "online-before-idt.toml"


def fz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          capture_output=True, text=True, check=False)


def names(sc: Scenario, events: list[Event]) -> list[tuple[int, str]]:
    return [(e.cpu, sc.op_text(e.op)) for e in events]


def report_of(path: Path, seed: int = 1) -> Report:
    sc = load(path)
    finding = search(sc, 300, seed).finding
    assert finding is not None
    return build(sc, finding.core, finding.shrunk, finding.result, seed, "t")


@pytest.mark.parametrize("seed", range(3))
def test_core_keeps_the_op_that_opens_the_nmi_window(seed: int) -> None:
    """The NMI may fire only after `online`; the model fails it as soon
    as `lidt full` ran, but a core without `online` is an ordering the
    scenario does not allow."""
    sc = load(NMI_ONLINE)
    finding = search(sc, 300, seed).finding
    assert finding is not None
    assert names(sc, finding.core) == [
        (0, "start 1"), (1, "lidt full"), (1, "online"), (1, "nmi")]
    assert in_windows(sc, finding.core)


def test_core_is_one_minimal_counting_trigger_windows() -> None:
    """Removing any one event changes outcome or chain, or leaves the
    trigger outside its window - which only `online` does."""
    sc = load(NMI_ONLINE)
    finding = search(sc, 300, 1).finding
    assert finding is not None
    core, want = finding.core, evaluate(sc, finding.core)
    outside = []
    for i in range(len(core)):
        rest = core[:i] + core[i + 1:]
        r = evaluate(sc, rest)
        if (r.outcome, r.chain) == (want.outcome, want.chain):
            assert not in_windows(sc, rest)
            outside.append(sc.op_text(core[i].op))
    assert outside == ["online"]


def test_program_order_implies_an_earlier_window_opener() -> None:
    """A pf allowed after `nop 1` needs no `nop 1` in the core once a later
    op of the same program (`lidt bringup`) is there: the planted
    rare-trigger minimum stays two events."""
    sc = load(ROOT / "tests/planted/rare-trigger.toml")
    order = [Event(0, op, slot) for slot, op in enumerate(sc.programs[0])]
    pf = next(i for i, t in enumerate(sc.triggers) if t.kind == "pf")
    trigger = Event(0, sc.triggers[pf].op, -1, pf)
    bringup = next(e for e in order if sc.op_text(e.op) == "lidt bringup")
    assert in_windows(sc, [bringup, trigger])
    assert not in_windows(sc, [order[0], trigger])  # only `lidt early`
    shrunk = order[:order.index(bringup) + 1] + [trigger]
    core = causal_core(sc, shrunk, evaluate(sc, shrunk))
    assert names(sc, core) == [(0, "lidt bringup"), (0, "pf")]


def test_fault_window_starts_where_the_trigger_may_fire() -> None:
    report = report_of(NMI_ONLINE)
    w = report.window
    assert w is not None
    assert (report.label(w.opens), report.label(w.closes)) == \
        ("cpu1 online", "cpu1 ltr")
    assert w.by_trigger == (True, False)
    assert [(s.op, s.in_window) for s in report.steps] == [
        ("start 1", False), ("lidt full", False), ("online", True),
        ("nmi", True)]
    assert report.summary() == (
        "On bare metal, cpu1 (an application processor) ends in unhandled:"
        " cpu1 nmi - NMI arrives. The same event fails the same way"
        " anywhere from after cpu1 online until cpu1 ltr runs; it would"
        " fail earlier too, but the scenario lets the nmi fire only after"
        " cpu1 online. The causal core has 4 events (of 8 in the shrunk"
        " ordering): removing any one of them changes the verdict, except"
        " cpu1 online: the model does not need it, but without it a"
        " trigger in the core would fire outside the window the scenario"
        " gives it.")
    doc = to_json(report)
    assert doc["window"] == {
        "opens": {"cpu": 1, "op": "online", "slot": 1},
        "closes": {"cpu": 1, "op": "ltr", "slot": 2},
        "by_trigger": {"opens": True, "closes": False}}
    assert doc["window_only"] == [{"cpu": 1, "op": "online", "slot": 1}]


def test_shaded_timeline_starts_at_the_window_opening_step() -> None:
    """The shading starts at step 3 (`online`), the third column."""
    svg = html.timeline_svg(report_of(NMI_ONLINE))
    rects = re.findall(r'<rect class="window" x="(\d+)" y="(\d+)"'
                       r' width="(\d+)"', svg)
    x0 = html.LEFT + html.COL * 2 - 4
    # cpu1's lane starts below cpu0's (54 px: one box plus padding); the
    # shading runs to the ghost `ltr` in the fifth column.
    assert rects == [(str(x0), "58", str(html.LEFT + html.COL * 5 - 10 - x0))]


def test_no_trigger_window_no_clipping_and_no_window_only_events() -> None:
    """The pinned-FRED SEV-ES core has no trigger: its window and core are
    the model's alone."""
    report = report_of(ROOT / "models/fred-pinned-sev-es-ap.toml")
    assert report.window is not None
    assert report.window.by_trigger == (False, False)
    assert report.window_only == ()
    assert report.summary().endswith(
        "removing any one of them changes the verdict.")


def test_problem_timeline_says_the_state_is_the_shrunk_orderings() -> None:
    """The states come from the shrunk ordering (which also runs the
    events between core steps); the report says so in every format."""
    report = report_of(NMI_ONLINE)
    md = render(report)
    problem = md.split("## Problem\n\n")[1].split("\n\n")[0]
    assert " ".join(problem.split()) == (
        "The causal core, in order, with the acting CPU's state after each"
        " step as the shrunk ordering had it (the events between core steps"
        " ran too; [window]: inside the fault window):")
    assert "<th>state after (in the shrunk ordering)</th>" in \
        html.render(report)
    assert to_json(report)["states_of"] == "shrunk_events"


def test_fix_check_says_when_its_examples_were_the_whole_space() -> None:
    report = report_of(ONLINE_FIRST)
    assert [(f.text, f.checked) for f in report.fixes] == [
        ("run cpu1 `lidt full` before `online`",
         "the shrunk ordering with this move passes; with the program so"
         " changed, no failing ordering in 11 examples, the whole space"
         " (fuzzinit explore: complete, 8 states, none failing)")]


def test_fix_check_claims_no_whole_space_when_the_budget_ran_out() -> None:
    sc = load(ROOT / "models/upstream-fix-sev-es.toml")
    assert passes_search(sc, Checks(FIX_CHECK_S)) == \
        "no failing ordering in 300 examples"


BEFORE = """
[scenario]
name = "vf-before"
[[cpu]]
program = ["start 1", "wait_online 1"]
[[cpu]]
program = ["nop pad", "online", "nop mid", "lidt full"]
[[orderings.trigger]]
kind = "nmi"
cpus = [1]
after = "online"
"""
AP = '["nop pad", "online", "nop mid", "lidt full"]'


def pair(tmp_path: Path, program: str) -> tuple[str, str]:
    before, after = tmp_path / "before.toml", tmp_path / "after.toml"
    before.write_text(BEFORE)
    after.write_text(BEFORE.replace(AP, program))
    return str(before), str(after)


def test_verify_fix_keeps_a_window_open_when_the_fix_removes_an_op(
        tmp_path: Path) -> None:
    """Dropping `nop mid` leaves online .. lidt full fatal, as `fuzzinit
    windows` shows: no window is closed (by op text alone, the points
    after `nop mid` looked closed)."""
    before, after = pair(tmp_path, '["nop pad", "online", "lidt full"]')
    assert "cpu1: start .. lidt full: nmi, pf fatal" in \
        timeline(windows(load(after)))
    proc = fz("verify-fix", before, after, "--json")
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert (out["closed_windows"], out["closed_outside_trigger_windows"],
            out["verified"]) == ([], [], False)
    text = fz("verify-fix", before, after).stdout
    assert "closed" not in text


def test_verify_fix_closed_windows_respect_trigger_windows(
        tmp_path: Path) -> None:
    """Loading the IDT before `online` closes the NMI window the scenario
    allows; the #PF points it closes are what-ifs: BEFORE has no pf
    trigger."""
    before, after = pair(tmp_path,
                         '["nop pad", "lidt full", "online", "nop mid"]')
    proc = fz("verify-fix", before, after, "--json")
    assert proc.returncode == 0
    out = json.loads(proc.stdout)
    assert out["closed_windows"] == [
        {"cpu": 1, "after": "online", "slot": 1, "kind": "nmi"},
        {"cpu": 1, "after": "nop mid", "slot": 2, "kind": "nmi"}]
    assert out["closed_outside_trigger_windows"] == [
        {"cpu": 1, "after": "online", "slot": 1, "kind": "pf"},
        {"cpu": 1, "after": "nop mid", "slot": 2, "kind": "pf"}]
    text = fz("verify-fix", before, after).stdout
    assert text.split("after:\n")[1].split("\n", 1)[1] == (
        "windows closed by the fix:\n"
        "  cpu1 after online: nmi\n"
        "  cpu1 after nop mid: nmi\n"
        "also closed, where BEFORE lets no such trigger fire (what-if):\n"
        "  cpu1 after online: pf\n"
        "  cpu1 after nop mid: pf\n"
        "fix verified: BEFORE fails, AFTER explores complete and clean\n")


def test_verify_fix_names_the_slot_of_a_repeated_op(tmp_path: Path) -> None:
    """With `nop mid` twice, the one whose window closed is named by
    slot."""
    before = tmp_path / "before.toml"
    before.write_text(BEFORE.replace(
        AP, '["nop mid", "online", "nop mid", "lidt full"]'))
    after = tmp_path / "after.toml"
    after.write_text(BEFORE.replace(
        AP, '["nop mid", "lidt full", "online", "nop mid"]'))
    text = fz("verify-fix", str(before), str(after)).stdout
    assert "  cpu1 after nop mid (slot 2): nmi\n" in text
    assert "  cpu1 after online: nmi\n" in text
    assert "slot 0" not in text
