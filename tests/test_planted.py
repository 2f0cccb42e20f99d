"""Quality tier: planted ordering bugs (tests/planted/) are found within a
fixed example budget and shrunk exactly to their known minimum."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzzinit.minimise.displacement import displaced
from fuzzinit.scenario.load import load
from fuzzinit.search import search

PLANTED = Path(__file__).parent / "planted"
BUDGET = 300
SEEDS = range(5)

# scenario file -> the causal core every search must end with.
MINIMA: dict[str, list[tuple[int, str]]] = {
    "swap-two-ops": [(0, "cr4_set fred"), (0, "nmi")],
    "three-event-window": [(0, "start 1"), (1, "mov_cr4 +fred"), (1, "nmi")],
    "two-aps": [(0, "start 1"), (0, "start 2"), (2, "cr4_set fred"),
                (2, "setup_cr_pinning"), (1, "cr4_init"), (1, "nmi")],
    "write-after-write": [(0, "wrmsr FRED_CONFIG entry"),
                          (0, "wrmsr FRED_STKLVLS linux"),
                          (0, "cr4_set fred"), (0, "nmi")],
    "rare-trigger": [(0, "lidt bringup"), (0, "pf")],
    "masked-by-another-kind": [(0, "lidt bringup"), (0, "nmi")],
}


def test_every_planted_bug_has_a_known_minimum() -> None:
    assert sorted(p.stem for p in PLANTED.glob("*.toml")) == sorted(MINIMA)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", sorted(MINIMA))
def test_planted_bug_found_and_shrunk_to_its_minimum(name: str,
                                                     seed: int) -> None:
    sc = load(PLANTED / f"{name}.toml")
    report = search(sc, examples=BUDGET, seed=seed)
    assert report.finding is not None, f"{name} not found in {BUDGET}"
    assert report.finding.result.name == sc.expect
    assert [(e.cpu, sc.op_text(e.op)) for e in report.finding.core] == \
        MINIMA[name]


@pytest.mark.parametrize("name", ["swap-two-ops", "write-after-write"])
def test_permuted_planted_bugs_shrink_to_one_displaced_op(name: str) -> None:
    sc = load(PLANTED / f"{name}.toml")
    for seed in SEEDS:
        report = search(sc, examples=BUDGET, seed=seed)
        assert report.finding is not None
        assert displaced(report.finding.shrunk) == 1
