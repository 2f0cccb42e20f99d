"""The fuzzer's byte decoder: every input is an allowed ordering, and the
interleave-mode shortcut decodes exactly as the general Schedule path."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzzinit.fuzz.decode import decode
from fuzzinit.orderings.schedule import program_order, well_formed
from fuzzinit.scenario.load import load

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted(ROOT.joinpath("models").glob("*.toml")) + \
    sorted(ROOT.joinpath("tests/planted").glob("*.toml"))


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_input_decodes_to_an_allowed_ordering(path: Path) -> None:
    sc = load(path)
    rng = random.Random(path.stem)
    for _ in range(200):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(150)))
        events, complete = decode(sc, data)
        assert well_formed(sc, events) == ""
        assert complete
        assert decode(sc, data, fast=False) == (events, complete)


def test_empty_input_is_the_program_as_written() -> None:
    sc = load(ROOT / "models/upstream-fix-sev-es.toml")
    assert decode(sc, b"") == (program_order(sc), True)
