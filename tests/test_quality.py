"""Quality tier: every scenario in models/ meets its expectation, and the
seed scenario shrinks to exactly the known causal core."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from fuzzinit.scenario.load import FAILABLE, load
from fuzzinit.search import search

ROOT = Path(__file__).parent.parent
MODELS = sorted(ROOT.joinpath("models").glob("*.toml"))


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.stem)
def test_scenario_meets_its_expectation(path: Path) -> None:
    """`expect` is what the model must say with --examples 2000."""
    sc = load(path)
    assert sc.expect is not None, f"{path} has no expect"
    if sc.expect == "ok":
        # "ok" means no failure of any kind, whatever the scenario's fail_on
        # (a WARN is a warning: scenarios opt in to failing on it), except
        # an outcome the scenario `accepts` as its design (a guest that
        # asks to be ended).
        strict = dataclasses.replace(
            sc, fail_on=frozenset(FAILABLE) - {"warn"} - sc.accepts)
        report = search(strict, examples=2000, seed=1)
        assert report.finding is None, report.finding and \
            report.finding.result.chain
        return
    report = search(sc, examples=2000, seed=1)
    assert report.finding is not None
    assert report.finding.result.name == sc.expect
    assert sc.expect in sc.fail_on


def _core(path: Path, seed: int) -> list[tuple[int, str]]:
    sc = load(path)
    report = search(sc, examples=2000, seed=seed)
    assert report.finding is not None
    return [(e.cpu, sc.op_text(e.op)) for e in report.finding.core]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_pinned_fred_sev_es_core_is_exactly_the_five_events(seed: int) -> None:
    """Boot CPU sets CR4.FRED and pins it; the AP starts, cr4_init applies
    the pinned FRED, and its pr_info raises #VC through FRED."""
    assert _core(ROOT / "models/fred-pinned-sev-es-ap.toml", seed) == [
        (0, "cr4_set fred"), (0, "setup_cr_pinning"), (0, "start 1"),
        (1, "cr4_init"), (1, "printk")]


def test_pinned_fred_chain_names_the_missing_prerequisite() -> None:
    sc = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    report = search(sc, examples=200, seed=1)
    assert report.finding is not None
    assert report.finding.result.chain == [
        "cpu1: printk",
        "console output: port I/O raises #VC in a sev-es guest",
        "#VC delivered through FRED (CR4.FRED = 1) with FRED_CONFIG = 0: no"
        " entry point",
        "entry RIP 0x100 faults, #PF -> #DF through the same FRED setup ->"
        " SHUTDOWN (triple fault)",
    ]


def test_online_gated_pinning_core_is_the_05243d490bb7_walkthrough() -> None:
    """cccc0c8ff0a9 without 05243d490bb7: the APIC-base RDMSR's #VC hits
    RDGSBASE in paranoid_entry with CR4.FSGSBASE clear."""
    assert _core(ROOT / "models/pinning-offline-snp-idt.toml", 1) == [
        (0, "patch_alternatives"), (0, "start 1"), (1, "tss_setup_ist"),
        (1, "ltr"), (1, "lidt full"), (1, "rdmsr APIC_BASE")]


def test_lint1_window_is_found_by_an_nmi_after_cr4_init() -> None:
    assert _core(ROOT / "models/fred-pinned-bare-ap-lint1.toml", 1) == [
        (0, "cr4_set fred"), (0, "setup_cr_pinning"), (0, "start 1"),
        (1, "cr4_init"), (1, "nmi")]
