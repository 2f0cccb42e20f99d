"""`fuzzinit report --pytest`: a regression test a maintainer drops into
their tree. It replays the failing ordering against the scenario and
asserts it no longer fails, so it fails until the bug is fixed and guards
the fix afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import trace as tracefile
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import signature

TEMPLATE = '''"""Regression test written by `fuzzinit report --pytest` from {trace}.

{name}: {verdict} - the ordering below must not fail. It replays against
the scenario in FUZZINIT_SCENARIO if set, else {path} (relative to this
file's folder, so the test runs from any working directory).

{chain}
"""

import os
from pathlib import Path

from fuzzinit.testing import assert_replay_passes

SCENARIO = os.environ.get("FUZZINIT_SCENARIO") or str(
    Path(__file__).parent / {path_literal})
MODE = {mode!r}  # the ordering mode the failing ordering was found in
EVENTS = {events}


def test_{test_name}():
    assert_replay_passes(SCENARIO, EVENTS, mode=MODE)
'''


def scenario_path_from(sc: Scenario, test_file: Path) -> str:
    """The scenario's path relative to the test file's folder, "/"-separated:
    the test resolves it with `Path(__file__).parent`, so it does not depend
    on the working directory pytest runs from, and a moved tree still
    works."""
    here = Path(test_file).absolute().parent
    target = Path(sc.path).absolute()
    try:
        rel = os.path.relpath(target, here)
    except ValueError:  # another drive on Windows: no relative path exists
        return target.as_posix()
    return Path(rel).as_posix()


def regression_test(sc: Scenario, shrunk: list[Event], result: Result,
                    trace: str, test_file: Path) -> str:
    """The text of a pytest file to be written at `test_file`."""
    rel = scenario_path_from(sc, test_file)
    events = [tracefile.event_json(sc, e) for e in shrunk]
    lines = ",\n    ".join(json.dumps(e) for e in events)
    chain = "\n".join(f"    {link}" for link in result.chain)
    return TEMPLATE.format(
        trace=trace, name=sc.name, verdict=result.name, path=rel,
        chain=f"Chain:\n{chain}" if chain else "",
        path_literal=json.dumps(rel),
        mode=sc.mode,
        events=f"[\n    {lines},\n]",
        test_name="".join(ch if ch.isalnum() else "_" for ch in sc.name)
        + f"_{signature(result)}")
