"""Rule coverage (fuzzinit/reach/): rule ids, markers, the probe and
`--rule-coverage` on run, explore, verify-fix and fuzz."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit import model_build
from fuzzinit.cli import main
from fuzzinit.errors import FuzzinitError
from fuzzinit.explore.bfs import explore
from fuzzinit.reach import probe as probe_module
from fuzzinit.reach.corpus import measure_corpus
from fuzzinit.reach.markers import MarkerError, scan, scan_source, unmarked
from fuzzinit.reach.probe import Probe
from fuzzinit.reach.rules import RULES
from fuzzinit.scenario.load import load
from fuzzinit.search import search
from fuzzinit.testing import TooLittleReached, assert_no_failing_ordering

# Rule coverage traces the model's Python code: in a process that imported
# the compiled build, the probe refuses (make test runs the suite with
# FUZZINIT_MODEL=interpreted).
pytestmark = pytest.mark.skipif(
    model_build.build() == "compiled",
    reason="rule coverage needs the interpreted model: run pytest with"
    " FUZZINIT_MODEL=interpreted (make test does)")

ROOT = Path(__file__).parent.parent
MODELS = ROOT / "models"
NEVER = Path(__file__).parent / "scenarios" / "printk-in-user-mode.toml"


def _readme_rules() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Model rules and their sources"):
                   text.index("### Findings the model reports")]
    return [(int(n), rid) for n, rid in
            re.findall(r"^(\d+)\. \(`([a-z0-9-]+)`\)", section, re.M)]


def test_every_readme_rule_carries_its_id_in_order() -> None:
    assert _readme_rules() == [(r.number, r.id) for r in RULES]


def test_every_rule_is_marked_in_the_model() -> None:
    spans = scan()
    assert unmarked(spans) == []
    assert all(spans[r.id].statements for r in RULES)


def test_markers_cover_a_branch_body_not_its_test_or_elses() -> None:
    src = ("def f(a):\n"
           "    # rule: cr-gp\n"
           "    if a:\n"
           "        return 1\n"
           "    # rule: lass\n"
           "    elif a > 2:\n"
           "        b = (1,\n"
           "             2)\n"
           "        return b\n"
           "    else:\n"
           "        return 3\n")
    spans = scan_source(src, "t.py")
    assert [(s.line, s.lines) for s in spans["cr-gp"].statements] == \
        [(4, (4,))]
    assert [(s.line, s.lines) for s in spans["lass"].statements] == \
        [(7, (7, 8)), (9, (9,))]


def test_a_marked_def_covers_its_body_and_ids_may_be_listed() -> None:
    src = ("def f(a):  # rule: gdt, msrs\n"
           '    """A docstring is not a statement that runs."""\n'
           "    x = a\n"
           "    return x\n")
    spans = scan_source(src, "t.py")
    assert sorted(spans) == ["gdt", "msrs"]
    assert [s.line for s in spans["msrs"].statements] == [3, 4]


@pytest.mark.parametrize(("src", "message"), [
    ("# rule: gdt\nX = 1\n",
     "t.py:1: a statement outside a function runs at import; mark the"
     " function that applies it"),
    ("if True:\n    # rule: gdt\n    X = 1\n",
     "t.py:2: a statement outside a function runs at import; mark the"
     " function that applies it"),
    ("def f(a):\n    if a:\n        return 1\n        # rule: gdt\n"
     "    return 2\n",
     "t.py:4: marker at column 9 but the next statement (line 5) is at"
     " column 5; indent the marker like the statement it marks"),
    ("def f(a):\n    g(1,\n      # rule: gdt\n      2)\n    return 2\n",
     "t.py:3: marker inside a statement that starts on line 2; put it on"
     " the line above that statement"),
    ("def f(a):\n    if a:\n        return 1\n    else:  # rule: gdt\n"
     "        return 2\n",
     "t.py:4: no statement starts on this line; put the marker on its own"
     " line above the statement it marks"),
    ("def f():\n    # rule: no-such-rule\n    return 1\n",
     "t.py:2: unknown rule id 'no-such-rule'; the ids are in"
     " fuzzinit/reach/rules.py"),
    ("def f():\n    return 1  # rule: GDT\n",
     "t.py:2: malformed rule id 'GDT'"),
    ("def f():\n    return 1\n# rule: gdt\n",
     "t.py:3: marker with no statement after it"),
])
def test_bad_markers_are_named(src: str, message: str) -> None:
    with pytest.raises(MarkerError) as err:
        scan_source(src, "t.py")
    assert str(err.value) == message


def test_run_json_lists_rules_reached_and_triggers_fired(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", str(MODELS / "upstream-fix-sev-es.toml"),
                   "--rule-coverage", "--json", "--db", "none",
                   "--examples", "300"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    cov = out["rule_coverage"]
    assert cov["unit"] == "orderings" and cov["units"] == out["examples"]
    reached = {r["id"] for r in cov["rules"] if r["units"]}
    assert {"fred-delivery", "cr-pinning", "console",
            "vc-handlers"} <= reached
    assert {"stop-cpus", "lazy-msr", "kernel-images"}.isdisjoint(reached)
    fired = {t["trigger"]: t for t in cov["triggers"]}
    assert sorted(fired) == ["nmi on cpu1", "printk on cpu1"]
    assert all(t["fired"] > 0 for t in fired.values())
    assert cov["triggers_never_fired"] == []
    # An NMI goes to online CPUs only, and this AP turns FRED on first.
    assert fired["nmi on cpu1"]["states"]["CPU"] == {
        "online": fired["nmi on cpu1"]["fired"]}


def test_a_trigger_that_can_never_fire_is_named_in_the_verdict_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", str(NEVER), "--rule-coverage", "--db", "none",
                   "--examples", "100", "--seed", "0"])
    out = capsys.readouterr().out.splitlines()
    assert status == 0
    assert re.fullmatch(
        r"printk-in-user-mode: no failing ordering in 100 orderings"
        r" \(\d+\.\d\d s, seed 0\); 1 of 2 triggers never fired \(printk on"
        r" cpu0\): their windows were never tested", out[0])
    line = next(x for x in out if "printk on cpu0:" in x).strip()
    assert re.fullmatch(
        r"printk on cpu0: never fired; its window was open with IDT null;"
        r" FRED on; CPU in user mode; the model ruled out all \d+ firings"
        r" there \(they cannot happen\)", line)


def test_explore_says_so_too_and_json_names_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(NEVER), "--rule-coverage"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.endswith("; 1 of 2 triggers never fired (printk on cpu0):"
                          " their windows were never tested")
    assert main(["explore", str(NEVER), "--rule-coverage", "--json"]) == 0
    cov = json.loads(capsys.readouterr().out)["rule_coverage"]
    assert cov["unit"] == "expanded states"
    assert cov["triggers_never_fired"] == ["printk on cpu0"]
    printk = cov["triggers"][0]
    assert (printk["fired"], printk["window_open_with"]) == (
        0, {"IDT": ["null"], "FRED": ["on"], "CPU": ["in user mode"]})
    assert printk["ruled_out"] > 0


def test_without_the_flag_nothing_is_measured(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explore", str(NEVER), "--json"]) == 0
    assert "rule_coverage" not in json.loads(capsys.readouterr().out)


def test_folding_contexts_in_chunks_changes_no_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    sc = load(MODELS / "upstream-fix-sev-es.toml")
    whole = Probe(sc, "expanded states")
    explore(sc, 2, probe=whole)
    monkeypatch.setattr(probe_module, "CHUNK", 3)
    chunked = Probe(sc, "expanded states")
    explore(sc, 2, probe=chunked)
    a, b = whole.result(), chunked.result()
    assert a.units == b.units > 3
    assert a.rules == b.rules
    assert [(t.fired, t.units, t.states, t.outcomes) for t in a.triggers] == \
        [(t.fired, t.units, t.states, t.outcomes) for t in b.triggers]


def test_a_rule_counts_the_units_it_ran_in() -> None:
    """The pinned-FRED AP: every ordering that runs cr4_init with the key
    on applies the pinned bits (cr-pinning); a search of n orderings
    reaches it in at most n of them and in at least one."""
    sc = load(MODELS / "fred-pinned-sev-es-ap.toml")
    probe = Probe(sc)
    report = search(sc, examples=50, seed=0, probe=probe)
    reach = probe.result()
    assert reach.units == report.examples
    rules = {r.rule.id: r for r in reach.rules}
    assert 0 < rules["cr-pinning"].units <= reach.units
    assert 0 < rules["cr-pinning"].hit <= rules["cr-pinning"].statements
    assert rules["stop-cpus"].units == 0


def test_verify_fix_measures_both_sides(
        capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify-fix", str(MODELS / "fred-pinned-sev-es-ap.toml"),
                   str(MODELS / "upstream-fix-sev-es.toml"),
                   "--rule-coverage", "--json"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    for side in ("before", "after"):
        cov = out[side]["rule_coverage"]
        assert cov["unit"] == "expanded states" and cov["units"] > 0
        assert cov["rules_reached"] > 0
    assert out["after"]["rule_coverage"]["triggers_never_fired"] == []


def test_min_rule_coverage_fails_a_clean_search_that_left_a_trigger_unfired(
        tmp_path: Path) -> None:
    with pytest.raises(TooLittleReached) as err:
        assert_no_failing_ordering(NEVER, examples=100, seed=0,
                                   corpus=tmp_path,
                                   min_rule_coverage=["stop-cpus"])
    first = str(err.value).splitlines()[0]
    assert first == ("printk-in-user-mode: no failing ordering in 100"
                     " orderings, but it never reached stop-cpus; trigger"
                     " printk on cpu0 never fired")


def test_min_rule_coverage_as_a_fraction(tmp_path: Path) -> None:
    fixed = MODELS / "upstream-fix-sev-es.toml"
    assert_no_failing_ordering(fixed, examples=200, seed=0, corpus=tmp_path,
                               min_rule_coverage=["fred-delivery",
                                                  "cr-pinning"])
    with pytest.raises(TooLittleReached) as err:
        assert_no_failing_ordering(fixed, examples=200, seed=0,
                                   corpus=tmp_path, min_rule_coverage=1.0)
    assert re.match(r"upstream-fix-sev-es: no failing ordering in \d+"
                    r" orderings, but it reached \d+ of 34 model rules"
                    r" \(\d+%\), below min_rule_coverage 100%\n",
                    str(err.value))
    with pytest.raises(ValueError) as bad:
        assert_no_failing_ordering(fixed, examples=10, seed=0,
                                   corpus=tmp_path,
                                   min_rule_coverage=["fred"])
    assert str(bad.value) == ("min_rule_coverage: unknown rule ids fred; the"
                              " ids are in fuzzinit/reach/rules.py")


def test_the_plugin_option_measures_every_search(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        "from fuzzinit.testing import assert_no_failing_ordering\n"
        "def test_bringup():\n"
        f"    assert_no_failing_ordering({str(NEVER)!r})\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--fuzzinit-profile", "ci", "--fuzzinit-min-rule-coverage", "0.1"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "TooLittleReached: printk-in-user-mode: no failing ordering in" \
        in proc.stdout
    assert "trigger printk on cpu0 never fired" in proc.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--fuzzinit-min-rule-coverage", "2"],
        cwd=tmp_path, capture_output=True, text=True, check=False)
    assert bad.returncode == 4
    assert "--fuzzinit-min-rule-coverage: min_rule_coverage 2.0: expected a" \
        " fraction from 0 to 1" in bad.stderr


def test_a_finding_report_shows_what_the_search_reached(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["run", str(MODELS / "fred-pinned-sev-es-ap.toml"),
                   "--rule-coverage", "--db", "none", "--seed", "1",
                   "--reports", str(tmp_path / "r"),
                   "--corpus", str(tmp_path / "c")])
    assert status == 1
    out = capsys.readouterr().out
    # The finding comes first, the table after it.
    assert out.index("trace:") < out.index("rule coverage of")
    html = next((tmp_path / "r").glob("fred-pinned-sev-es-ap-*.html"))
    text = html.read_text()
    assert "<h2>What the search reached</h2>" in text
    assert "<code>fred-delivery</code>" in text
    doc = json.loads(html.with_suffix(".json").read_text())
    assert doc["rule_coverage"]["rules_reached"] > 0
    md = html.with_suffix(".md").read_text()
    assert "## What the search reached" in md


def test_fuzz_measures_its_corpus_after_the_campaign(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fuzzinit", "fuzz",
         str(MODELS / "upstream-fix-sev-es.toml"), "--runs", "2000",
         "--seed", "1", "--corpus", str(tmp_path / "c"),
         "--reports", str(tmp_path / "r"), "--rule-coverage", "--json"],
        capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    cov = out["rule_coverage"]
    inputs = list((tmp_path / "c/upstream-fix-sev-es/inputs").iterdir())
    assert (cov["unit"], cov["units"]) == ("corpus inputs", len(inputs))
    assert cov["units"] > 0 and cov["rules_reached"] > 0
    assert (cov["interrupted"], cov["error"]) == (False, None)


def test_an_unreadable_corpus_input_is_an_error(tmp_path: Path) -> None:
    sc = load(MODELS / "upstream-fix-sev-es.toml")
    inputs = tmp_path / "inputs"
    (inputs / "dir-not-file").mkdir(parents=True)
    (inputs / "a").write_bytes(b"\x01\x02\x03")
    (inputs / "b").symlink_to(tmp_path / "missing")
    with pytest.raises(FuzzinitError) as err:
        measure_corpus(sc, inputs, Probe(sc, "corpus inputs"))
    assert str(err.value).startswith(f"cannot read {inputs / 'b'}: ENOENT")


def test_a_failing_exploration_counts_only_the_states_it_expanded() -> None:
    """The replay of the failing path after the search is not a unit: it
    once added its rules to the last expanded state's count."""
    sc = load(MODELS / "fred-pinned-sev-es-ap.toml")
    probe = Probe(sc, "expanded states")
    ex = explore(sc, 2, probe=probe)
    reach = probe.result()
    assert (ex.states, reach.units) == (34, 34)
    assert {r.rule.id: r.units for r in reach.reached()} == {
        "idt-states": 1, "fred-delivery": 12, "cr-pinning": 2,
        "linux-handlers": 1, "vc-handlers": 6, "vc-ve-sources": 3,
        "console": 2, "trampoline-cr4": 1, "intercepted-msrs": 1,
        "gdt": 1, "feature-flags": 2}


@pytest.mark.parametrize(("wanted", "message"), [
    ("stop-cpus", "min_rule_coverage 'stop-cpus': expected a fraction or a"
     ' list of rule ids, e.g. ["fred-delivery"]'),
    (1.5, "min_rule_coverage 1.5: expected a fraction from 0 to 1"),
])
def test_a_bad_min_rule_coverage_is_named_before_the_search(
        wanted: object, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as bad:
        # The scenario fails at once: the check comes before the search.
        assert_no_failing_ordering(MODELS / "fred-pinned-sev-es-ap.toml",
                                   examples=10, seed=0, corpus=tmp_path,
                                   min_rule_coverage=wanted)  # type: ignore
    assert str(bad.value) == message
