"""The mypyc-compiled model and the interpreted one agree on every verdict."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from fuzzinit import compiled
from fuzzinit.model.run import run
from fuzzinit.orderings.random_walk import random_ordering
from fuzzinit.scenario.load import load

MODELS = sorted(Path(__file__).parent.parent.joinpath("models").glob("*.toml"))
ORDERINGS = 10_000


@pytest.mark.slow
def test_compiled_and_interpreted_models_give_identical_verdicts(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """10,000 random orderings over every scenario: same outcome, failing
    event, chain and warnings from both builds."""
    dest = compiled.build(tmp_path_factory.mktemp("mypyc"))
    crun = compiled.load(dest)
    cmachine = __import__(f"{compiled.PACKAGE}.machine",
                          fromlist=["Machine"])
    rng = random.Random(20261126)
    checked = 0
    outcomes: set[str] = set()
    per_model = ORDERINGS // len(MODELS) + 1
    for path in MODELS:
        sc = load(path)
        cm = cmachine.Machine(**sc.machine_args)
        for _ in range(per_model):
            ordering = random_ordering(sc, rng, trigger_chance=0.2)
            cpus = [e.cpu for e in ordering]
            ops = [e.op for e in ordering]
            a = run(sc.machine, cpus, ops)
            b = crun.run(cm, cpus, ops)
            assert (b.outcome, b.at, b.chain, b.warnings) == \
                (a.outcome, a.at, a.chain, a.warnings), (path, ordering)
            outcomes.add(a.name)
            checked += 1
    assert checked >= ORDERINGS
    # The comparison covered passing and failing verdicts of several kinds.
    assert {"ok", "triple_fault", "unhandled"} <= outcomes
