"""Hostile and mistaken input: every case ends with its documented exit
status, one line on stderr naming the problem, no traceback, and nothing
written.

The cases run through `fuzzinit.cli.main` in-process (a traceback would be
an exception escaping `main`, which fails the test), each in its own
working folder, which must hold exactly the files the case wrote before
it ran. `test_subprocess_sample` runs a few of them as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fuzzinit.cli import main

BASE = """\
[scenario]
name = "t"
[platform]
guest = "sev-es"
features = ["fred", "fsgsbase"]
[routines]
r = ["cr4_init"]
[[cpu]]
program = ["start 1", "wait_online 1"]
[[cpu]]
program = ["r", "online"]
"""

# A trace of BASE that replays.
EVENTS = [{"cpu": 0, "op": "start 1"}, {"cpu": 1, "op": "cr4_init"}]
TRACE = {"fuzzinit_trace": 1, "scenario": "s.toml", "events": EVENTS}


@dataclass(frozen=True)
class Case:
    id: str
    argv: list[str]
    needle: str                      # must appear in the stderr line
    status: int = 2
    files: dict[str, str | bytes] = field(default_factory=dict)


def scenario(text: str, needle: str, cid: str) -> Case:
    return Case(f"scenario-{cid}", ["run", "s.toml"], needle,
                files={"s.toml": text})


def sub(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def with_op(op: str) -> str:
    return sub('program = ["r", "online"]', f'program = ["r", {op}, "online"]')


def trace(doc: object, needle: str, cid: str,
          command: str = "replay") -> Case:
    text = doc if isinstance(doc, str | bytes) else json.dumps(doc)
    return Case(f"trace-{command}-{cid}", [command, "t.json"], needle,
                files={"s.toml": BASE, "t.json": text})


SCENARIOS = [
    scenario("", "scenario.name: is missing", "empty"),
    scenario("[scenario\nname='t'", "invalid TOML", "bracket"),
    scenario('[scenario]\nname = "t\n', "invalid TOML", "unclosed-string"),
    scenario("[scenario]\nname\n", "invalid TOML", "no-equals"),
    scenario('[scenario]\nname = "t"\nname = "u"\n', "invalid TOML",
             "duplicate-key"),
    scenario('[scenario]\nname = "\\q"\n', "invalid TOML", "bad-escape"),
    scenario(BASE + "[scenario]\n", "invalid TOML", "duplicate-table"),
    scenario('[scenario]\nname = "t"\x00\n', "invalid TOML", "nul"),
    scenario("a = " + "[" * 100_000 + "]" * 100_000 + "\n",
             "nested too deeply", "deep-arrays"),
    scenario("a = " + "{b = " * 50_000 + "1" + "}" * 50_000 + "\n",
             "nested too deeply", "deep-inline-tables"),
    Case("scenario-bom", ["run", "s.toml"], "byte order mark",
         files={"s.toml": b"\xef\xbb\xbf" + BASE.encode()}),
    Case("scenario-latin1", ["run", "s.toml"], "not UTF-8 text",
         files={"s.toml": BASE.replace('"t"', '"t\xe9"').encode("latin-1")}),
    Case("scenario-missing", ["run", "nope.toml"], "cannot read"),
    Case("scenario-directory", ["run", "d"], "cannot read",
         files={"d/x": "x"}),
    scenario(BASE + "[extra]\n", "unknown table", "unknown-table"),
    scenario(sub('name = "t"', 'name = "t"\ncolour = 1'), "colour",
             "unknown-scenario-key"),
    scenario(sub('guest = "sev-es"', 'guest = "sev-es"\ncolour = 1'),
             "colour", "unknown-platform-key"),
    scenario(BASE + "[kernel]\ncolour = 1\n", "colour", "unknown-kernel-key"),
    scenario(BASE + "[orderings]\ncolour = 1\n", "colour",
             "unknown-orderings-key"),
    scenario(sub('program = ["r", "online"]',
                 'program = ["r", "online"]\ncolour = 1'), "colour",
             "unknown-cpu-key"),
    scenario(sub('name = "t"', "name = 1"), "scenario.name", "name-int"),
    scenario(sub('name = "t"', 'name = ""'), "cannot name", "name-empty"),
    scenario(sub('name = "t"', 'name = "a/b"'), "cannot name", "name-slash"),
    scenario(sub('name = "t"', 'name = ".hidden"'), "cannot name",
             "name-dot"),
    scenario(sub('name = "t"', f'name = "{"n" * 5000}"'), "too long",
             "name-5000"),
    scenario(sub('name = "t"', 'name = "t"\ntitle = []'), "scenario.title",
             "title-list"),
    scenario(sub('name = "t"', 'name = "t"\nsource = "x"'), "source",
             "source-string"),
    scenario(sub('name = "t"', 'name = "t"\nsource = [1]'), "source",
             "source-ints"),
    scenario(sub('name = "t"', 'name = "t"\nnotes = 3'), "notes",
             "notes-int"),
    scenario(sub('name = "t"', 'name = "t"\nexpect = "boom"'),
             "unknown outcome 'boom'", "expect-unknown"),
    scenario(sub('name = "t"', 'name = "t"\nexpect = "invalid"'),
             "unknown outcome 'invalid'", "expect-invalid"),
    scenario(sub('name = "t"', 'name = "t"\nfail_on = ["ok"]'),
             "unknown outcome 'ok'", "fail-on-ok"),
    scenario(sub('name = "t"', 'name = "t"\nfail_on = "triple_fault"'),
             "fail_on", "fail-on-string"),
    scenario("name = 't'\n" + BASE, "unknown table", "top-level-key"),
    scenario(sub("[scenario]", "scenario = 1\n[x]"), "unknown table",
             "scenario-not-table"),
    scenario(sub('guest = "sev-es"', 'guest = "sev"'), "sev", "guest"),
    scenario(sub('guest = "sev-es"', "guest = 2"), "platform.guest",
             "guest-int"),
    scenario(sub('["fred", "fsgsbase"]', '["fred", "warp"]'), "warp",
             "feature"),
    scenario(sub('["fred", "fsgsbase"]', '"fred"'), "features",
             "features-string"),
    scenario(sub('guest = "sev-es"', 'guest = "sev-es"\nconsole = "vga"'),
             "vga", "console"),
    scenario(sub('guest = "sev-es"', 'guest = "sev-es"\nterminate = "x"'),
             "terminate", "terminate"),
    scenario(sub('guest = "sev-es"',
                 'guest = "sev-es"\nintercepted_msrs = ["NOPE"]'), "NOPE",
             "intercepted-msr"),
    scenario(BASE + '[kernel]\npinned_cr4 = ["smepp"]\n', "smepp",
             "pinned-bit"),
    scenario(BASE + '[kernel]\npinning = "sometimes"\n', "sometimes",
             "pinning"),
    scenario(BASE + '[kernel]\nfred_vc_dispatch = "yes"\n',
             "fred_vc_dispatch", "bool"),
    scenario(BASE + '[kernel]\nboot_ghcb_fallback = 1\n',
             "boot_ghcb_fallback", "bool-int"),
    scenario(BASE + '[kernel]\nentry_cr4 = ["fred"]\n', "entry_cr4",
             "entry-cr4-high-bit"),
    scenario(BASE + '[kernel]\nentry_cr4 = ["nope"]\n', "nope",
             "entry-cr4-unknown"),
    scenario(sub('r = ["cr4_init"]', 'r = "cr4_init"'), "routines.r",
             "routine-string"),
    scenario(sub('r = ["cr4_init"]', 'r = ["r"]'), "calls itself",
             "routine-self"),
    scenario(sub('r = ["cr4_init"]', 'r = ["q"]\nq = ["r"]'),
             "calls itself", "routine-mutual"),
    scenario(sub('r = ["cr4_init"]', 'r = ["cr4_init"]\nu = ["boom"]'),
             "boom", "unused-routine-typo"),
    scenario(sub('r = ["cr4_init"]', 'r = ["r1"]\n' + "".join(
        f'r{i} = ["r{i + 1}"]\n' for i in range(1, 3000))
        + 'r3000 = ["cr4_init"]'), "nested", "routine-3000-deep"),
    scenario(sub('r = ["cr4_init"]', 'r = ["x1", "x1"]\n' + "".join(
        f'x{i} = ["x{i + 1}", "x{i + 1}"]\n' for i in range(1, 30))
        + 'x30 = ["nop"]'), "more than", "routine-exponential"),
    scenario(sub('r = ["cr4_init"]', 'r = [1]'), "routines.r",
             "routine-int-item"),
    scenario("[scenario]\nname = 't'\n", "cpu", "no-cpus"),
    scenario(sub('program = ["r", "online"]', 'program = "r"'), "program",
             "program-string"),
    scenario(sub('program = ["r", "online"]', 'program = [["r"]]'),
             "program", "program-nested"),
    scenario(sub('["start 1", "wait_online 1"]',
                 '["start 1", "start 1", "wait_online 1"]'), "start",
             "started-twice"),
    scenario(sub('["start 1", "wait_online 1"]', '["wait_online 1"]'),
             "start", "never-started"),
    scenario(sub('["start 1", "wait_online 1"]', '["start 2"]'),
             "no cpu 2", "start-missing-cpu"),
    scenario(sub('["start 1", "wait_online 1"]',
                 '["wait_online 1", "start 1"]'), "cycle", "deadlock"),
    scenario(BASE + '[orderings]\nmode = "random"\n', "random", "mode"),
    scenario(BASE + '[orderings]\nbefore = [["cpu1: nop", "cpu0: start 1"]]\n',
             "'cpu1: nop': not in cpu 1's program", "before-missing-op"),
    scenario(BASE + '[orderings]\nbefore = [["cpu1: cr4_init",'
             ' "cpu0: start 1"]]\n', "cycle", "before-cycle"),
    scenario(BASE + '[orderings]\nbefore = ["x"]\n', "before",
             "before-shape"),
    scenario(BASE + '[orderings]\ntriggers = { meteor = 1 }\n', "meteor",
             "trigger-kind"),
    scenario(BASE + '[orderings]\ntriggers = { nmi = 17 }\n', "count",
             "trigger-count-17"),
    scenario(BASE + '[orderings]\ntriggers = { nmi = -1 }\n', "count",
             "trigger-count-negative"),
    scenario(BASE + '[orderings]\ntriggers = { nmi = "x" }\n', "nmi",
             "trigger-count-string"),
    scenario(BASE + '[[orderings.trigger]]\nkind = "nmi"\ncpus = [7]\n',
             "cpu", "trigger-cpu"),
    scenario(BASE + '[[orderings.trigger]]\nkind = "nmi"\ncpus = [1]\n'
             'after = "ltr"\n', "ltr", "trigger-after-missing"),
    scenario(BASE + '[[orderings.trigger]]\nkind = "nmi"\ncpus = [1]\n'
             'after = "online"\nbefore = "r"\n', "empty",
             "trigger-empty-window"),
    scenario(BASE + '[[orderings.trigger]]\nkind = "printk"\ncpus = [1]\n'
             'colour = 1\n', "colour", "trigger-key"),
    scenario(BASE + '[[orderings.trigger]]\nkind = "nmi"\ncpus = [true]\n',
             "cpus [True]", "trigger-cpu-bool"),
    scenario('include = ["/"]\n' + BASE, "'/' is not a profile name",
             "include-root"),
    scenario('include = ["."]\n' + BASE, "'.' is not a profile name",
             "include-dot"),
    scenario('include = ["linux/v9"]\n' + BASE,
             "'linux/v9': no profile folder", "include-missing"),
    scenario('include = [1]\n' + BASE, "include: is not a list of"
             " profile names", "include-int"),
    scenario(sub('name = "t"', 'name = "t"\nfixed_in = "/etc/passwd"'),
             "'/etc/passwd' is not a scenario file", "fixed-in-absolute"),
    scenario(sub('name = "t"', 'name = "t"\ncategory = "misc"'),
             "unknown category 'misc'", "category"),
    scenario(BASE + '[overrides]\nr = ["nop"]\n', "overrides a routine"
             " that no included profile defines", "override-no-profile"),
]

BAD_OPS = [
    ('"warp"', "unknown op 'warp'"),
    ('""', "empty op"),
    ('"cr4_set"', "no CR4 bit given"),
    ('"cr4_set smepp"', "unknown CR4 bit 'smepp'"),
    ('"cr4_clear 5"', "unknown CR4 bit '5'"),
    ('"cr0_set xx"', "unknown CR0 bit 'xx'"),
    ('"mov_cr4 smep"', "has no + or - sign"),
    ('"mov_cr4 +"', "has no + or - sign"),
    ('"mov_cr0 +nope"', "unknown CR0 bit 'nope'"),
    ('"cr4_gadget fred"', "has no + or - sign"),
    ('"mov_cr3"', "mov_cr3 takes one number"),
    ('"mov_cr3 1 2"', "mov_cr3 takes one number"),
    ('"mov_cr3 x"', "'x' is not a number"),
    ('"mov_cr3 -1"', "mov_cr3 -1 is out of range"),
    ('"mov_cr3 \u0661\u0662"', "is not a number"),
    ('"mov_cr3 0x1000"', "mov_cr3 0x1000 is out of range"),
    ('"mov_cr3 123456789012345678901234567890"', "is out of range"),
    ('"wrmsr FRED_RSP0"', "wrmsr takes 2 arguments"),
    ('"wrmsr FRED_RSP0 1 2"', "wrmsr takes 2 arguments"),
    ('"wrmsr NOPE 0"', "unknown MSR 'NOPE'"),
    ('"wrmsr FRED_RSP0 -64"', "wrmsr FRED_RSP0 -64 is out of range"),
    (f'"wrmsr FRED_RSP0 {2 ** 160}"', "is out of range"),
    ('"wrmsr FRED_RSP0 0x10000000000000000"', "is out of range"),
    ('"wrmsr FRED_CONFIG entree"', "'entree' is not a number"),
    ('"rdmsr"', "rdmsr takes 1 argument"),
    ('"rdmsr NOPE"', "unknown MSR 'NOPE'"),
    ('"lidt"', "lidt needs an IDT kind"),
    ('"lidt huge"', "lidt needs an IDT kind"),
    ('"start x"', "'x' is not a number"),
    ('"start 99999999999"', "there is no cpu 99999999999"),
    ('"wait_online -1"', "wait_online -1 is out of range"),
    ('"cr4_init now"', "cr4_init takes no argument"),
    ('"online 1"', "online takes no argument"),
    ('1', "program"),
]

TRACES = [
    trace("{", "not JSON", "truncated"),
    trace("", "not JSON", "empty"),
    trace(b"\xff\xfe{}", "not UTF-8", "binary"),
    trace("[" * 100_000 + "]" * 100_000, "nested too deeply", "deep-list"),
    trace('{"a": ' * 100_000 + "1" + "}" * 100_000, "nested too deeply",
          "deep-object"),
    trace([], "not a fuzzinit trace", "list"),
    trace({"events": []}, "not a fuzzinit trace", "no-scenario"),
    trace({"scenario": "s.toml"}, "not a fuzzinit trace", "no-events"),
    trace({"scenario": "s.toml", "events": {}}, "not a fuzzinit trace",
          "events-object"),
    trace(dict(TRACE, fuzzinit_trace=2), "trace format 2 is not supported",
          "version-2"),
    trace(dict(TRACE, fuzzinit_trace="1"),
          "trace format '1' is not supported", "version-string"),
    trace(dict(TRACE, fuzzinit_trace=True),
          "trace format True is not supported", "version-bool"),
    trace(dict(TRACE, scenario="gone.toml"), "scenario gone.toml not found",
          "scenario-missing"),
    trace(dict(TRACE, events=[]), "the trace has no events", "empty-events"),
    trace(dict(TRACE, events=[1]), "event 0: expected", "event-int"),
    trace(dict(TRACE, events=[{"cpu": "0", "op": "start 1"}]),
          "event 0: expected", "cpu-string"),
    trace(dict(TRACE, events=[{"cpu": 5, "op": "start 1"}]),
          "has no cpu 5", "cpu-missing"),
    trace(dict(TRACE, events=[{"cpu": 0, "op": "warp"}]),
          "op 'warp' is not in", "op-missing"),
    trace(dict(TRACE, events=[{"cpu": 0, "op": "start 1"},
                              {"cpu": 0, "op": "start 1"}]),
          "op 'start 1' is not in", "op-twice"),
    trace(dict(TRACE, events=[{"cpu": 1, "op": "cr4_init"}]),
          "cannot happen", "impossible-order"),
    trace(dict(TRACE, fuzzinit_trace=2), "is not supported", "minimize",
          "minimize"),
    trace("{", "not JSON", "report", "report"),
    trace(dict(TRACE, events=[{"cpu": 9, "op": "x"}]), "has no cpu 9",
          "report-cpu", "report"),
    Case("trace-missing", ["replay", "none.json"], "cannot read"),
    Case("trace-directory", ["replay", "d"], "cannot read",
         files={"d/x": "x"}),
    Case("trace-bad-scenario", ["replay", "t.json"], "unknown table",
         files={"s.toml": BASE + "[x]\n", "t.json": json.dumps(TRACE)}),
    Case("report-pytest-directory",
         ["report", "t.json", "--pytest", "d"], "EISDIR",
         files={"s.toml": with_op('"printk"'), "d/x": "x",
                "t.json": json.dumps(dict(TRACE, events=[
                    *EVENTS, {"cpu": 1, "op": "printk"}]))}),
]

FLAGS = [
    Case("flag-no-command", [], "usage error"),
    Case("flag-unknown-command", ["frobnicate"], "usage error"),
    Case("flag-run-no-model", ["run"], "usage error"),
    Case("flag-unknown-option", ["run", "s.toml", "--colour"], "usage error",
         files={"s.toml": BASE}),
    Case("flag-examples-0", ["run", "s.toml", "--examples", "0"],
         "--examples 0", files={"s.toml": BASE}),
    Case("flag-examples-negative", ["run", "s.toml", "--examples", "-5"],
         "--examples -5", files={"s.toml": BASE}),
    Case("flag-examples-text", ["run", "s.toml", "--examples", "many"],
         "usage error", files={"s.toml": BASE}),
    Case("flag-seed-text", ["run", "s.toml", "--seed", "x"], "usage error",
         files={"s.toml": BASE}),
    Case("flag-mode", ["run", "s.toml", "--mode", "shuffle"], "usage error",
         files={"s.toml": BASE}),
    Case("flag-corpus-file", ["run", "s.toml", "--corpus", "s.toml"],
         "--corpus s.toml: s.toml is a file", files={"s.toml": BASE}),
    Case("flag-reports-file", ["run", "s.toml", "--reports", "s.toml"],
         "--reports s.toml: s.toml is a file", files={"s.toml": BASE}),
    Case("flag-reports-under-file", ["run", "s.toml", "--reports",
                                     "s.toml/r"],
         "--reports s.toml/r: s.toml is a file", files={"s.toml": BASE}),
    Case("flag-constraints-corpus-file",
         ["constraints", "s.toml", "--corpus", "s.toml"],
         "--corpus s.toml: s.toml is a file", files={"s.toml": BASE}),
    Case("flag-constraints-examples",
         ["constraints", "s.toml", "--examples", "0"], "--examples 0",
         files={"s.toml": BASE}),
    Case("flag-explore-budget", ["explore", "s.toml", "--budget", "0"],
         "--budget 0", files={"s.toml": BASE}),
    Case("flag-explore-triggers",
         ["explore", "s.toml", "--max-triggers", "-1"], "--max-triggers -1",
         files={"s.toml": BASE}),
    Case("flag-explore-missing", ["explore", "none.toml"], "cannot read"),
    Case("flag-windows-missing", ["windows", "none.toml"], "cannot read"),
    Case("flag-verify-fix-one", ["verify-fix", "s.toml"], "usage error",
         files={"s.toml": BASE}),
    Case("flag-verify-fix-budget",
         ["verify-fix", "s.toml", "s.toml", "--budget", "-1"], "--budget -1",
         files={"s.toml": BASE}),
    Case("flag-report-format", ["report", "t.json", "--format", "pdf"],
         "usage error"),
    Case("flag-models-missing", ["models", "nowhere"], "no such folder"),
    Case("flag-models-file", ["models", "s.toml"], "is a file",
         files={"s.toml": BASE}),
    Case("flag-models-bad-file", ["models", "m"], "1 scenario file(s) do not"
         " load", files={"m/s.toml": "[x"}),
    Case("flag-fuzz-time", ["fuzz", "s.toml", "--time", "0"], "--time 0",
         files={"s.toml": BASE}),
    Case("flag-fuzz-runs", ["fuzz", "s.toml", "--runs", "-3"], "--runs -3",
         files={"s.toml": BASE}),
    Case("flag-fuzz-jobs", ["fuzz", "s.toml", "--jobs", "0"], "--jobs 0",
         files={"s.toml": BASE}),
    Case("flag-fuzz-time-huge", ["fuzz", "s.toml", "--time", "4294967297"],
         "--time 4294967297: expected 1 to 2147483647",
         files={"s.toml": BASE}),
    Case("flag-fuzz-runs-huge", ["fuzz", "s.toml", "--runs", "4294967297"],
         "--runs 4294967297: expected 1 to 2147483647",
         files={"s.toml": BASE}),
    Case("flag-fuzz-seed-huge",
         ["fuzz", "s.toml", "--seed", "99999999999999999999"],
         "--seed 99999999999999999999: expected 0 to 4294967295",
         files={"s.toml": BASE}),
    Case("flag-corpus-scenario-file", ["run", "s.toml", "--corpus", "c"],
         "--corpus c/t: c/t is a file", files={"s.toml": BASE, "c/t": "x"}),
    Case("flag-db-scheme", ["run", "s.toml", "--db", "ftp://x"], "ftp://x",
         files={"s.toml": BASE}),
    Case("flag-export-no-promela", ["export", "s.toml"], "usage error",
         files={"s.toml": BASE}),
    Case("flag-export-triggers",
         ["export", "--promela", "s.toml", "--max-triggers", "-2"],
         "--max-triggers -2", files={"s.toml": BASE}),
]

CASES = SCENARIOS + [
    scenario(with_op(op), needle, f"op-{i}")
    for i, (op, needle) in enumerate(BAD_OPS)] + TRACES + FLAGS


def test_suite_size() -> None:
    """The issue asks for at least 150 cases; their ids are distinct."""
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    for name, text in case.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    before = _tree(tmp_path)
    try:
        status = main(case.argv)
    except SystemExit as exc:   # argparse's usage errors
        status = exc.code if isinstance(exc.code, int) else 2
    out, err = capsys.readouterr()
    assert status == case.status, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fuzzinit: "), err
    assert case.needle in lines[0], lines[0]
    assert "Traceback" not in err
    assert _tree(tmp_path) == before, "a rejected input wrote files"


SAMPLE = ("scenario-deep-arrays", "scenario-routine-3000-deep",
          "trace-replay-deep-list", "trace-replay-version-2",
          "flag-corpus-file")


@pytest.mark.parametrize("cid", SAMPLE)
def test_subprocess_sample(cid: str, tmp_path: Path) -> None:
    """A few cases as a user runs them: a new process, its real stderr."""
    case = next(c for c in CASES if c.id == cid)
    for name, text in case.files.items():
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "fuzzinit", *case.argv],
                          cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, check=False,
                          env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    assert proc.returncode == case.status, proc.stderr
    assert proc.stderr.count("\n") == 1 and case.needle in proc.stderr
    assert "Traceback" not in proc.stderr
