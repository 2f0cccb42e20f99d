"""The generators keep program order, start/online sync, `before`
constraints and trigger windows; the minimiser's cores are 1-minimal."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzinit.search as search_module
from fuzzinit.explore.scaling import scaled
from fuzzinit.minimise.core import causal_core
from fuzzinit.minimise.displacement import displaced
from fuzzinit.model import ops_smp as smp
from fuzzinit.orderings import strategies
from fuzzinit.orderings.schedule import (
    Event,
    Schedule,
    program_order,
    well_formed,
)
from fuzzinit.orderings.strategies import Ordering, orderings
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.search import search
from fuzzinit.verdict import evaluate, fails

ROOT = Path(__file__).parent.parent
SEED = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
FIX = load(ROOT / "models/upstream-fix-sev-snp.toml")

TWO_APS = """
[scenario]
name = "two-aps"
[platform]
guest = "bare"
[[cpu]]
program = ["start 1", "start 2", "wait_online 1", "wait_online 2", "printk"]
[[cpu]]
program = ["cr4_init", "printk", "online"]
[[cpu]]
program = ["cr4_init", "cpuid", "online"]
[orderings]
before = [["cpu2: cpuid", "cpu1: printk"]]
[[orderings.trigger]]
kind = "nmi"
cpus = [1, 2]
after = "online"
[[orderings.trigger]]
kind = "pf"
cpus = [2]
after = "start"
before = "cpuid"
"""


def _two_aps(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    path = tmp_path_factory.mktemp("s") / "two.toml"
    path.write_text(TWO_APS)
    return load(path)


@pytest.fixture(scope="module")
def two_aps(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    return _two_aps(tmp_path_factory)


def _check_ordering(sc: Scenario, ordering: Ordering) -> None:
    """Checks written apart from Schedule, so that they can catch it."""
    assert ordering.complete
    assert well_formed(sc, list(ordering)) == ""
    m = sc.machine
    # Every program op appears once, in program order (interleave mode).
    for cpu, program in enumerate(sc.programs):
        slots = [e.slot for e in ordering if e.cpu == cpu and e.slot >= 0]
        assert slots == list(range(len(program)))
    done: set[tuple[int, int]] = set()
    for ev in ordering:
        text = sc.op_text(ev.op)
        # A CPU runs only after another CPU's `start N` for it.
        if ev.cpu:
            assert any(sc.op_text(sc.programs[c][s]) == f"start {ev.cpu}"
                       for c, s in done), (ev, "before its start")
        if m.op_kind[ev.op] == smp.WAIT_ONLINE:
            target = m.op_a[ev.op]
            assert target == 0 or any(
                c == target and sc.op_text(sc.programs[c][s]) == "online"
                for c, s in done), (ev, "waits past an offline CPU")
        if ev.slot < 0:
            t = sc.triggers[ev.trigger]
            assert t.kind == text and t.cpu == ev.cpu
            assert all((ev.cpu, s) in done for s in t.after), ev
            assert not any((ev.cpu, s) in done for s in t.before), ev
        else:
            for a, b in sc.before:
                if b == (ev.cpu, ev.slot):
                    assert a in done, (ev, "before constraint")
            done.add((ev.cpu, ev.slot))
    for i, t in enumerate(sc.triggers):
        assert sum(e.trigger == i for e in ordering) <= t.count


@settings(max_examples=200, suppress_health_check=list(HealthCheck),
          deadline=None)
@given(data=st.data())
def test_drawn_orderings_keep_program_order_sync_and_windows(
        data: st.DataObject) -> None:
    for sc in (SEED, FIX):
        _check_ordering(sc, data.draw(orderings(sc)))


def test_two_ap_orderings_respect_before_and_trigger_windows(
        two_aps: Scenario) -> None:
    seen_orders = set()

    @settings(max_examples=300, suppress_health_check=list(HealthCheck),
              deadline=None, database=None)
    @given(orderings(two_aps))
    def check(ordering: Ordering) -> None:
        _check_ordering(two_aps, ordering)
        names = [(e.cpu, two_aps.op_text(e.op)) for e in ordering]
        # before: cpu2's cpuid precedes cpu1's printk.
        assert names.index((2, "cpuid")) < names.index((1, "printk"))
        # Start before the AP's first op; wait_online after online.
        assert names.index((0, "start 1")) < names.index((1, "cr4_init"))
        assert names.index((1, "online")) < names.index((0, "wait_online 1"))
        # The #PF trigger only between cpu2's start and its cpuid.
        for i, (cpu, op) in enumerate(names):
            if op == "pf":
                assert names.index((0, "start 2")) < i < \
                    names.index((2, "cpuid"))
            if op == "nmi":
                assert i > names.index((cpu, "online"))
        seen_orders.add(tuple(names))

    check()
    assert len(seen_orders) > 20  # the APs really interleave


def test_program_order_is_the_lowest_ready_cpu_first(
        two_aps: Scenario) -> None:
    names = [(e.cpu, two_aps.op_text(e.op)) for e in program_order(two_aps)]
    assert names == [
        (0, "start 1"), (0, "start 2"), (1, "cr4_init"), (2, "cr4_init"),
        (2, "cpuid"), (1, "printk"), (1, "online"), (0, "wait_online 1"),
        (2, "online"), (0, "wait_online 2"), (0, "printk")]


def test_well_formed_names_the_first_bad_event() -> None:
    order = program_order(SEED)
    swapped = [order[1], order[0]] + order[2:]
    assert well_formed(SEED, swapped) == \
        "event 0 (cpu0: setup_ghcb) is not allowed at that point"


def test_same_seed_gives_the_same_finding() -> None:
    a = search(SEED, examples=500, seed=7)
    b = search(SEED, examples=500, seed=7)
    assert a.finding is not None and b.finding is not None
    assert a.finding.shrunk == b.finding.shrunk
    assert a.finding.core == b.finding.core
    assert a.examples == b.examples


@pytest.mark.parametrize("name", ["fred-pinned-sev-es-ap",
                                  "pinning-offline-snp-idt",
                                  "fred-bsp-early-vc-sev-es",
                                  "upstream-fix-tdx",
                                  "fred-pinned-bare-ap-lint1"])
def test_causal_core_is_one_minimal(name: str) -> None:
    """Removing any single event of the core changes outcome or chain."""
    sc = load(ROOT / "models" / f"{name}.toml")
    report = search(sc, examples=2000, seed=3)
    assert report.finding is not None
    core = report.finding.core
    want = evaluate(sc, core)
    assert fails(sc, want)
    for i in range(len(core)):
        r = evaluate(sc, core[:i] + core[i + 1:])
        assert (r.outcome, r.chain) != (want.outcome, want.chain), i


def test_minimiser_drops_everything_after_the_failing_event() -> None:
    order = program_order(SEED)
    result = evaluate(SEED, order)
    core = causal_core(SEED, order + [Event(0, order[0].op, 0)], result)
    assert len(core) == 5


def test_interrupt_while_shrinking_reports_the_smallest_failure(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing found is lost on Ctrl-C: the smallest failing ordering seen
    so far is reduced to its core and reported."""
    import fuzzinit.search as search_module

    def interrupted_find(strategy: object, condition: Any,
                         **kwargs: object) -> None:
        order = program_order(SEED)
        longer = Ordering(order + [Event(1, SEED.op_index["nmi"], -1, 1)])
        assert condition(longer)
        assert condition(Ordering(order))
        raise KeyboardInterrupt

    monkeypatch.setattr(search_module, "find", interrupted_find)
    report = search_module.search(SEED, examples=10, seed=0)
    assert report.interrupted
    assert report.finding is not None
    assert report.finding.shrunk == program_order(SEED)
    assert [SEED.op_text(e.op) for e in report.finding.core] == [
        "cr4_set fred", "setup_cr_pinning", "start 1", "cr4_init", "printk"]


WARNS = """
[scenario]
name = "warns"
fail_on = ["warn"]
[platform]
features = ["smep"]
[[cpu]]
program = ["cr4_set smep", "setup_cr_pinning", "nop a", "cr4_clear smep",
  "nop b", "cr0_clear wp", "nop c"]
"""


def test_core_of_a_warn_keeps_every_warning(tmp_path: Path) -> None:
    """The warn verdict's chain lists every WARN, so the core must keep the
    event of each - and nothing else."""
    path = tmp_path / "warns.toml"
    path.write_text(WARNS)
    sc = load(path)
    report = search(sc, examples=50, seed=0)
    assert report.finding is not None
    assert [sc.op_text(e.op) for e in report.finding.core] == [
        "cr4_set smep", "setup_cr_pinning", "cr4_clear smep", "cr0_clear wp"]
    assert report.finding.result.chain == [
        "WARN: pinned CR4 bits changed: 0x100000!?",
        "WARN: CR0 WP bit went missing!?"]


PERMUTED = dataclasses.replace(FIX, mode="permute")


@settings(max_examples=150, suppress_health_check=list(HealthCheck),
          deadline=None, database=None)
@given(orderings(PERMUTED))
def test_permuted_orderings_move_ops_only_between_sync_points(
        ordering: Ordering) -> None:
    sc = PERMUTED
    m = sc.machine
    assert ordering.complete
    assert well_formed(sc, list(ordering)) == ""
    for cpu, program in enumerate(sc.programs):
        slots = [e.slot for e in ordering if e.cpu == cpu and e.slot >= 0]
        assert sorted(slots) == list(range(len(program)))
        # Sync ops stay in place: every op before a sync op in the program
        # runs before it, every op after it runs after it.
        position = {s: i for i, s in enumerate(slots)}
        for s, op in enumerate(program):
            if m.op_kind[op] in (smp.START, smp.ONLINE_OP, smp.WAIT_ONLINE):
                assert all(position[x] < position[s] for x in range(s))
                assert all(position[x] > position[s]
                           for x in range(s + 1, len(program)))


def test_permutation_search_shrinks_to_one_displaced_op() -> None:
    """The upstream fix is safe as written; in permutation mode a single
    op moved is enough to fail, and the shrinker finds such an order."""
    for seed in range(4):
        report = search(PERMUTED, examples=2000, seed=seed)
        assert report.finding is not None
        assert displaced(report.finding.shrunk) == 1
        assert report.finding.result.name == "triple_fault"


def test_displaced_counts_ops_out_of_program_order() -> None:
    def ev(slot: int, cpu: int = 0) -> Event:
        return Event(cpu, 0, slot)
    assert displaced([ev(0), ev(1), ev(2)]) == 0
    assert displaced([ev(1), ev(0), ev(2)]) == 1
    assert displaced([ev(0), ev(2), ev(6), ev(1), ev(3)]) == 2
    assert displaced([ev(1), ev(0), ev(0, cpu=1), Event(0, 0, -1, 0)]) == 1


def _every_model(two_aps: Scenario) -> list[Scenario]:
    """TWO_APS (it has `before` pairs) and every scenario in models/."""
    return [two_aps] + [load(p) for p in sorted(
        (ROOT / "models").glob("*.toml"))]


def _scaled(tmp_path: Path, model: str, aps: int) -> Scenario:
    """models/`model` with `aps` APs (explore.scaling.scaled)."""
    path = tmp_path / f"{aps}aps.toml"
    path.write_text(scaled((ROOT / "models" / model).read_text(), aps))
    return load(path)


def _walk_checking_candidates(sc: Scenario, permute: bool,
                              rng: random.Random) -> int:
    """Take random events; at every step the built schedule's candidates
    are those of a schedule restored from its snapshot (a full scan)."""
    sched = Schedule(sc, permute)
    fresh = Schedule(sc, permute)
    steps = 0
    while True:
        fresh.restore(sched.snapshot())
        moves = sched.program_candidates()
        assert moves == fresh.program_candidates(), (sc.name, steps)
        moves += sched.trigger_candidates()
        if not moves:
            return steps
        sched.take(rng.choice(moves))
        steps += 1


def test_built_schedule_candidates_match_a_full_scan(
        two_aps: Scenario) -> None:
    rng = random.Random(3)
    steps = 0
    for sc in _every_model(two_aps):
        for permute in (False, True):
            for _ in range(3):
                steps += _walk_checking_candidates(sc, permute, rng)
    assert steps > 10_000


def test_interleaving_draws_leave_nothing_to_throw_away(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every ordering Hypothesis draws is run: no mutated copy of a drawn
    # ordering runs out of choices (with draws through strategies, 93
    # orderings were drawn for 50 run at 8 APs with their triggers).
    sc = _scaled(tmp_path, "upstream-fix-sev-es.toml", 8)
    drawn = [0]

    def counting(sc_: Scenario) -> Schedule:
        drawn[0] += 1
        return Schedule(sc_)

    monkeypatch.setattr(strategies, "Schedule", counting)
    report = search(sc, examples=50, seed=1)
    assert report.finding is None
    assert (drawn[0], report.examples) == (50, 50)


def test_a_long_failure_is_kept_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 20 APs: a first failure of 589 events (>= AS_WRITTEN_FROM) fails the
    # same way as written, which is where Hypothesis's shrinker ends too.
    sc = _scaled(tmp_path, "fred-pinned-sev-es-ap.toml", 20)
    kept = search(sc, examples=1000, seed=1)
    monkeypatch.setattr(search_module, "AS_WRITTEN_FROM", 10**9)
    shrunk = search(sc, examples=1000, seed=1)
    assert kept.finding is not None and shrunk.finding is not None
    assert len(kept.finding.shrunk) == 589
    assert kept.finding.shrunk == shrunk.finding.shrunk == \
        strategies.as_written(sc, kept.finding.shrunk)
    assert kept.finding.core == shrunk.finding.core
    assert [sc.op_text(e.op) for e in kept.finding.core] == [
        "cr4_set fred", "setup_cr_pinning", "start 1", "cr4_init", "printk"]
    assert kept.examples < shrunk.examples


def _reference_build(sc: Scenario, planned: list[tuple[int, int]],
                     index: Any) -> list[Event]:
    """strategies.build() as first written: every planned trigger
    rechecked at every step."""
    planned = sorted(planned)
    sched = Schedule(sc)
    out: list[Event] = []
    while True:
        pending = [p for p in planned
                   if sched.ndone[sc.triggers[p[1]].cpu] >= p[0]
                   and sched.window_open(p[1])]
        blocked = {sc.triggers[i].cpu for _, i in pending}
        fire = [Event(sc.triggers[i].cpu, sc.triggers[i].op, -1, i)
                for _, i in pending]
        choices = fire + [e for e in sched.program_candidates()
                          if e.cpu not in blocked]
        if not choices:
            return out
        pick = choices[0] if len(choices) == 1 else \
            choices[index(len(choices))]
        if pick.slot < 0:
            planned.remove(pending[fire.index(pick)])
            sched.left[pick.trigger] -= 1
        else:
            sched.take(pick)
        out.append(pick)


def test_build_fires_the_planned_triggers_as_a_full_recheck_does(
        two_aps: Scenario) -> None:
    fired = 0
    for k, sc in enumerate(_every_model(two_aps)):
        for permute in ("interleave", "permute"):
            sc = dataclasses.replace(sc, mode=permute)
            for seed in range(3):
                rng = random.Random(k * 10 + seed)
                planned = [(rng.randrange(len(sc.programs[t.cpu]) + 1), i)
                           for i, t in enumerate(sc.triggers)
                           for _ in range(t.count) if rng.random() < 0.5]
                ours = strategies.build(sc, sorted(planned),
                                        random.Random(seed).randrange)
                assert ours == _reference_build(
                    sc, planned, random.Random(seed).randrange), sc.name
                fired += sum(e.trigger >= 0 for e in ours)
    assert fired > 100


def test_a_long_failure_that_passes_as_written_is_shrunk(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # When the as-written ordering does not fail the same way (here: it
    # is replaced by one that never finishes), Hypothesis shrinks.
    sc = _scaled(tmp_path, "fred-pinned-sev-es-ap.toml", 20)
    tried: list[int] = []

    def unfinished(sc_: Scenario, events: list[Event]) -> Ordering:
        tried.append(len(events))
        out = Ordering()
        out.complete = False
        return out

    monkeypatch.setattr(search_module, "as_written", unfinished)
    report = search(sc, examples=1000, seed=1)
    monkeypatch.setattr(search_module, "AS_WRITTEN_FROM", 10**9)
    shrunk = search(sc, examples=1000, seed=1)
    assert tried == [589]
    assert report.finding is not None and shrunk.finding is not None
    assert report.finding.shrunk == shrunk.finding.shrunk
    assert report.examples == shrunk.examples
