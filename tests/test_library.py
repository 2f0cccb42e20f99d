"""The library: every scenario names its category and meets its
expectation under `explore` (tests/test_quality.py does `run`), every
pre-fix scenario is verified against its fix as `verify-fix` does it, and
no verdict depends on a scenario's name or path."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from fuzzinit.explore.bfs import COMPLETE, FAILED, Exploration, explore
from fuzzinit.scenario.load import CATEGORIES, Scenario, load
from fuzzinit.scenario.profiles import LIBRARY

SCENARIOS = sorted(LIBRARY.glob("*.toml"))
PAIRS = [p for p in SCENARIOS if load(p).fixed_in is not None]


def exhaust(sc: Scenario) -> Exploration:
    return explore(sc, sum(t.count for t in sc.triggers), 1_000_000)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_scenario_has_a_category_and_meets_its_expectation_in_explore(
        path: Path) -> None:
    sc = load(path)
    assert sc.category in CATEGORIES and sc.expect is not None
    ex = exhaust(sc)
    if sc.expect == "ok":
        assert ex.verdict == COMPLETE, ex.result and ex.result.chain
    else:
        assert ex.verdict == FAILED and ex.result is not None
        assert ex.result.name == sc.expect


@pytest.mark.parametrize("path", PAIRS, ids=lambda p: p.stem)
def test_every_pre_fix_scenario_is_verified_against_its_fix(
        path: Path) -> None:
    """BEFORE fails with its expectation, AFTER expects ok and explores
    complete and clean: what `fuzzinit verify-fix` calls verified."""
    before = load(path)
    assert before.fixed_in is not None
    after = load(before.fixed_in)
    assert before.expect != "ok" and after.expect == "ok"
    assert after.category == before.category
    ex_before, ex_after = exhaust(before), exhaust(after)
    assert ex_before.verdict == FAILED and ex_after.verdict == COMPLETE


def test_the_library_has_pairs() -> None:
    assert len(PAIRS) >= 4


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_no_verdict_depends_on_a_scenario_name_or_path(
        path: Path, tmp_path: Path) -> None:
    """The same file under another name, in another folder, with another
    `scenario.name` and title: the same verdict, the same number of states
    and the same shortest ordering."""
    copy = tmp_path / "elsewhere" / "renamed-scenario.toml"
    copy.parent.mkdir()
    text = path.read_text(encoding="utf-8")
    text = re.sub(r'^name = "[^"]*"', 'name = "zz-other"', text, count=1,
                  flags=re.M)
    text = re.sub(r'^title = "[^"]*"', 'title = "another title"', text,
                  count=1, flags=re.M)
    copy.write_text(text, encoding="utf-8")
    for include in re.findall(r'"([^"]+\.toml)"', text):
        if (path.parent / include).is_file():   # a sibling (fixed_in)
            shutil.copy(path.parent / include, copy.parent / include)
    original, renamed = load(path), load(copy)
    assert renamed.name == "zz-other" and renamed.path != original.path
    a, b = exhaust(original), exhaust(renamed)
    assert (a.verdict, a.states, a.transitions) == \
        (b.verdict, b.states, b.transitions)
    assert (a.result and a.result.chain) == (b.result and b.result.chain)
    assert [(e.cpu, original.op_text(e.op)) for e in a.ordering or []] == \
        [(e.cpu, renamed.op_text(e.op)) for e in b.ordering or []]


def test_the_model_package_never_reads_a_scenario() -> None:
    """The model is a function of the machine tables and the ordering: no
    module of fuzzinit/model imports the scenario loader."""
    model = Path(__file__).parent.parent / "fuzzinit/model"
    for module in model.glob("*.py"):
        text = module.read_text(encoding="utf-8")
        assert "fuzzinit.scenario" not in text, module.name


def test_the_pcid_report_shows_the_pcid_bits_of_cr3() -> None:
    """The PCID pair's story is CR3[11:0] != 0 when PCIDE is set: the
    per-step state shows CR3's PCID once it is non-zero (and not before)."""
    from fuzzinit.report.timeline import describe, states_after
    from fuzzinit.search import search

    sc = load(LIBRARY / "pcid-hibernate-resume.toml")
    found = search(sc, 300, 1).finding
    assert found is not None and found.result.name == "unhandled"
    lines = [describe(s) for s in states_after(sc, found.core, found.shrunk)]
    assert "CR3.PCID=0x1" in lines[-1]
    assert "CR3.PCID" not in describe(states_after(sc, found.core[:1])[0])
