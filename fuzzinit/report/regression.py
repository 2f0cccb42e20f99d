"""`fuzzinit report --pytest`: a regression test a maintainer drops into
their tree. It replays the failing ordering against the scenario and
asserts it no longer fails, so it fails until the bug is fixed and guards
the fix afterwards."""

from __future__ import annotations

import json

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import trace as tracefile
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import signature

TEMPLATE = '''"""Regression test written by `fuzzinit report --pytest` from {trace}.

{name}: {verdict} - the ordering below must not fail. It replays against
the scenario in FUZZINIT_SCENARIO if set, else {path}.

{chain}
"""

import os

from fuzzinit.testing import assert_replay_passes

SCENARIO = os.environ.get("FUZZINIT_SCENARIO", {path_literal})
MODE = {mode!r}  # the ordering mode the failing ordering was found in
EVENTS = {events}


def test_{test_name}():
    assert_replay_passes(SCENARIO, EVENTS, mode=MODE)
'''


def regression_test(sc: Scenario, shrunk: list[Event], result: Result,
                    trace: str) -> str:
    events = [tracefile.event_json(sc, e) for e in shrunk]
    lines = ",\n    ".join(json.dumps(e) for e in events)
    chain = "\n".join(f"    {link}" for link in result.chain)
    return TEMPLATE.format(
        trace=trace, name=sc.name, verdict=result.name, path=sc.path,
        chain=f"Chain:\n{chain}" if chain else "", path_literal=repr(sc.path),
        mode=sc.mode,
        events=f"[\n    {lines},\n]",
        test_name="".join(ch if ch.isalnum() else "_" for ch in sc.name)
        + f"_{signature(result)}")
