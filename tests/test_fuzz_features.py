"""The fuzzer's per-input loop (fuzzinit/model/features.py, compiled with
the model) against straightforward reference implementations kept here:
the decoder's general Schedule path (decode(fast=False)), the model's
run() through verdict.evaluate, and the features as the original
run_with_features built them - one tuple per event - hashed as feature()
documents. Every library and planted scenario, random inputs, through the
memo and without it."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from fuzzinit.fuzz.decode import decode
from fuzzinit.fuzz.execute import execute
from fuzzinit.fuzz.features import plan_of, run_input
from fuzzinit.model import features as mf
from fuzzinit.model import machine as mc
from fuzzinit.model import ops_smp
from fuzzinit.model import run as model_run
from fuzzinit.model.arch import CR4_FRED, CR4_FSGSBASE, CR4_PCIDE
from fuzzinit.model.outcome import INVALID, NAMES, NEVER_ONLINE, OK, WARN
from fuzzinit.model.run import initial_state
from fuzzinit.orderings import schedule
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario, load
from fuzzinit.verdict import evaluate, signature

ROOT = Path(__file__).parent.parent
SCENARIOS = sorted(ROOT.joinpath("models").glob("*.toml")) + \
    sorted(ROOT.joinpath("tests/planted").glob("*.toml"))
CR4_SEEN = CR4_FRED | CR4_FSGSBASE | CR4_PCIDE
FLAGS_SEEN = mc.ONLINE | mc.USER | mc.SS_KERNEL | mc.FRAME_OPEN \
    | mc.FRAME_FRED | mc.FRAME_SS_KERNEL | mc.APIC_EXTD | mc.APIC_OFF \
    | mc.STARTED | mc.TSC_AUX_GUEST
GLOBAL_SEEN = mc.GHCBS_ALLOCATED | mc.ALT_PATCHED | mc.ALT_FSGSBASE
COMPILED = str(mf.__file__).endswith(".so")


def reference(sc: Scenario, events: list[Event]
              ) -> tuple[int, list[tuple[Any, ...]]]:
    """The original run_with_features: (outcome, one tuple per event run,
    then the end's)."""
    m = sc.machine
    st = initial_state(m)
    tuples: list[tuple[Any, ...]] = []
    chain: list[str] = []
    warnings: list[str] = []
    outcome = OK
    for ev in events:
        outcome = model_run.step(m, st, ev.cpu, ev.op, chain, warnings)
        tuples.append(state_tuple(m, st, ev.cpu, ev.op, outcome))
        if outcome != OK:
            break
        if chain:
            chain.clear()
    if outcome == INVALID:
        return INVALID, tuples
    tuples.append((-1, outcome, len(warnings) > 0))
    return (WARN if outcome == OK and warnings else outcome), tuples


def state_tuple(m: mc.Machine, st: list[int], cpu: int, op: int,
                outcome: int) -> tuple[Any, ...]:
    """The feature of event `op` on `cpu`, as run_with_features had it."""
    base = cpu * mc.NF
    g = m.glob
    return (m.op_kind[op], cpu == 0, st[base + mc.F_IDT],
            st[base + mc.F_CR4] & CR4_SEEN, st[base + mc.F_FRED_CONFIG] != 0,
            st[base + mc.F_GHCB], st[base + mc.F_FLAGS] & FLAGS_SEEN,
            st[base + mc.F_MMU], st[base + mc.F_LIFE],
            st[base + mc.F_PERCPU], st[g + mc.G_GONE], st[g + mc.G_KEY],
            st[g + mc.G_FLAGS] & GLOBAL_SEEN
            | st[g + mc.G_FLAGS] >> mc.CAP_CLEARED_SHIFT << 16, outcome)


def counter_of(t: tuple[Any, ...]) -> int:
    """A reference tuple's counter, hashed as feature() documents - after
    checking that every field fits the bits it is given there."""
    if t[0] == -1:
        return mf.final_feature(t[1], t[2])
    (kind, boot, idt, cr4, fred_config, ghcb, flags, mmu, life, percpu,
     gone, key, gflags, outcome) = t
    assert 0 <= kind < 256 and 0 <= key < 2 and 0 <= ghcb < 4, t
    assert 0 <= outcome < 16 and 0 <= percpu < 256 and flags <= mf.MASK, t
    assert gflags & 0xFFFF < 1 << 12, t
    words = [
        kind | boot << 8 | fred_config << 9 | key << 10 | outcome << 11
        | ghcb << 15 | (cr4 >> 16 & 3) << 17 | (cr4 >> 32 & 1) << 19,
        flags, mmu, life, percpu | gone << 8,
        gflags & 0xFFFF | gflags >> 16 << 12, idt]
    h = mf.SEED
    for w in words:
        h = mf.wide(h, w)
    return mf.counter(h)


def random_inputs(rng: random.Random, n: int) -> list[bytes]:
    fixed = [b"", b"\xff" * 64, b"\x01" * 64, bytes(range(256))]
    return fixed + [bytes(rng.randrange(256) for _ in range(rng.randrange(150)))
                    for _ in range(n)]


def check(sc: Scenario, data: bytes, ex: mf.Execution,
          keys: dict[object, str], tuples_seen: set[tuple[Any, ...]]) -> None:
    events, complete = decode(sc, data, fast=False)
    outcome, tuples = reference(sc, events)
    result = evaluate(sc, events, complete)
    assert ex.name == result.name, (sc.name, data)
    assert ex.outcome == outcome
    assert ex.features == [counter_of(t) for t in tuples], (sc.name, data)
    tuples_seen.update(tuples)
    if ex.ended:
        assert ex.complete == complete
    # Equal keys, equal signatures: the harness triages one input per key.
    assert keys.setdefault(ex.key(), signature(result)) == signature(result)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_the_fast_path_gives_the_reference_outcome_and_features(
        path: Path) -> None:
    compare(load(path), random.Random(path.stem), 40)


def compare(sc: Scenario, rng: random.Random, n: int) -> None:
    keys: dict[object, str] = {}
    seen: set[tuple[Any, ...]] = set()
    plan = plan_of(sc)
    off = plan_of(sc, memo_budget=0)
    for data in random_inputs(rng, n):
        ex = execute(sc, data)
        check(sc, data, ex, keys, seen)
        if plan is None or off is None:
            continue
        # The memo (filled by the first run of this plan, then hit) and
        # no memo; then the events run, from the start.
        for p in (plan, plan, off):
            again = mf.decode_run(p, data)
            assert (again.name, again.features, again.key()) == \
                (ex.name, ex.features, ex.key())
        trace: list[int] = []
        again = mf.decode_run(plan, data, trace)
        assert again.features == ex.features
        ran = [Event(*trace[i:i + 4]) for i in range(0, len(trace), 4)]
        events, complete = decode(sc, data, fast=False)
        if again.ended:
            assert (ran, again.complete) == (events, complete)
        else:
            assert ran == events[:len(ran)]
    if plan is not None:
        assert off is not None
        assert plan.memo and not off.memo


LIFE = """\
[scenario]
name = "life"
fail_on = ["triple_fault", "unhandled", "hang"]
[platform]
guest = "bare"
features = ["fred", "pcid", "cet"]
[[cpu]]
program = [{cpu0}]
[[cpu]]
program = [{cpu1}]
[[orderings.trigger]]
kind = "nmi"
cpus = [1]
count = 2
[[orderings.trigger]]
kind = "nmi"
cpus = [1]
after = "offline hlt"
[[orderings.trigger]]
kind = "pf"
cpus = [1]
"""


@pytest.mark.parametrize(("cpu0", "cpu1"), [
    ('"start 1", "wait_offline 1", "start 1"',
     '"lidt full", "ltr", "tss_setup_ist", "online", "offline hlt",'
     ' "lidt full", "online"'),
    ('"start 1", "wait_offline 1", "send_init 1", "start 1", "wait_online 1"',
     '"lidt full", "ltr", "tss_setup_ist", "online", "offline hlt",'
     ' "online"'),
    ('"start 1", "start 1"', '"online", "offline hlt"')],
    ids=["restart", "init", "start-waits"])
def test_triggers_on_parked_and_restarted_cpus(tmp_path: Path, cpu0: str,
                                               cpu1: str) -> None:
    """Trigger windows across a CPU's lives (a parked CPU takes an NMI,
    not a #PF; a restarted one does not reopen a window) and start/INIT
    waiting for their CPU: the library has few of these."""
    path = tmp_path / "life.toml"
    path.write_text(LIFE.format(cpu0=cpu0, cpu1=cpu1))
    compare(load(path), random.Random(7), 150)


def test_feature_hashes_every_bit_of_wide_and_negative_fields() -> None:
    """feature() on made-up states whose fields are far wider than the
    model makes them (or negative) still equals the reference hash."""
    sc = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    m = sc.machine
    rng = random.Random(11)
    wide = [0, 1, mf.MASK, mf.MASK + 1, 1 << 47, (1 << 700) + 3, -1, -(1 << 40)]
    for _ in range(300):
        st = [rng.choice(wide) for _ in range(m.ncpu * mc.NF + mc.NG)]
        cpu = rng.randrange(m.ncpu)
        base, g = cpu * mc.NF, m.glob
        st[base + mc.F_GHCB] = rng.randrange(4)
        st[base + mc.F_PERCPU] = rng.randrange(256)
        st[base + mc.F_CR4] = rng.randrange(1 << 40)
        st[base + mc.F_FLAGS] = rng.randrange(1 << 40)
        st[g + mc.G_KEY] = rng.randrange(2)
        st[g + mc.G_FLAGS] = rng.choice(wide[:6]) | rng.randrange(1 << 16)
        op = rng.randrange(len(m.op_kind))
        outcome = rng.randrange(10)
        assert mf.feature(m, st, cpu, op, outcome) == counter_of(
            state_tuple(m, st, cpu, op, outcome))
    assert mf.wide(5, -3) != mf.wide(5, 3)
    assert mf.wide(5, 1 << 30) != mf.wide(5, 1)


def test_names_and_keys_as_evaluate_gives_them() -> None:
    """The outcomes the library's orderings do not reach: an impossible
    ordering, and one that cannot finish (never_online, with or without
    a WARN on the way)."""
    invalid = mf.Execution(INVALID, False, False, 1, 2, ["x"], [], [])
    assert (invalid.name, invalid.key()) == ("invalid", (INVALID, 1, 2, ("x",)))
    for outcome in (OK, WARN):
        stuck = mf.Execution(outcome, True, False, -1, -1, [], ["w"], [])
        assert (stuck.name, stuck.key()) == ("never_online", NEVER_ONLINE)
    warned = mf.Execution(WARN, True, True, -1, -1, [], ["w"], [])
    assert (warned.name, warned.key()) == ("warn", (WARN, ("w",)))
    ok = mf.Execution(OK, True, True, -1, -1, [], [], [])
    assert (ok.name, ok.key()) == ("ok", OK)


def test_an_ordering_that_cannot_finish_is_never_online() -> None:
    """The loader rejects scenarios that can deadlock; a Plan made by hand
    shows the loop's side of it: the boot CPU waits for a CPU that is never
    started."""
    sc = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    m = sc.machine
    wait = m.op_kind.index(ops_smp.WAIT_ONLINE)
    assert m.op_a[wait] == 1
    plan = mf.Plan(m, [[wait], []], [[0, 0], [0]], [], [], [], [], [], [],
                   [], [[[]], []])
    ex = mf.decode_run(plan, b"")
    assert (ex.name, ex.ended, ex.complete) == ("never_online", True, False)
    assert ex.features == [mf.final_feature(OK, False)]


@pytest.mark.parametrize("model", ["fred-pinned-sev-es-ap",
                                   "upstream-fix-sev-es"])
def test_the_memo_stops_growing_at_its_budget(model: str) -> None:
    sc = load(ROOT / "models" / f"{model}.toml")
    plan = plan_of(sc, memo_budget=1000)
    assert plan is not None
    rng = random.Random(3)
    for data in random_inputs(rng, 100):
        for _ in range(2):
            ex = mf.decode_run(plan, data)
            assert (ex.name, ex.features) == \
                (execute(sc, data).name, execute(sc, data).features)
    assert 2 <= len(plan.memo) < 100
    assert 500 < plan.memo_used <= 1000


def test_explicit_idt_tables_hash_the_whole_table(tmp_path: Path) -> None:
    """F_IDT packs an explicit table into an int far above 30 bits: tables
    that differ only in high vectors' gates are different features."""
    features = []
    for gates in ("3", "3,200", "3,201"):
        path = tmp_path / f"t{gates}.toml"
        path.write_text('[scenario]\nname = "t"\n[[cpu]]\nprogram = ['
                        f'"lidt gates {gates}", "int3"]\n')
        sc = load(path)
        ex = execute(sc, b"")
        check(sc, b"", ex, {}, set())
        features.append(ex.features[0])
    assert len(set(features)) == 3


def test_features_spread_over_the_counters_like_a_hash() -> None:
    """Distinct reference tuples land on about as many counters as a
    random function would put them on."""
    seen: set[tuple[Any, ...]] = set()
    for path in SCENARIOS:
        sc = load(path)
        rng = random.Random(path.stem)
        for data in random_inputs(rng, 30):
            check(sc, data, execute(sc, data), {}, seen)
    n = len(seen)
    expected = mf.COUNTERS * (1 - (1 - 1 / mf.COUNTERS) ** n)
    assert n > 500
    assert len({counter_of(t) for t in seen}) > 0.95 * expected


def test_decoder_states_agree_with_the_schedule() -> None:
    assert (mf.WAITING, mf.RUNNING, mf.PARKED) == \
        (schedule.WAITING, schedule.RUNNING, schedule.PARKED)


@pytest.mark.skipif(COMPILED, reason="patches the interpreted model's step")
@pytest.mark.parametrize("path", [
    ROOT / "models/upstream-fix-sev-es.toml",
    ROOT / "tests/planted/swap-two-ops.toml"], ids=lambda p: p.stem)
@pytest.mark.parametrize("planted", [WARN, INVALID], ids=["warn", "invalid"])
def test_a_step_that_returns_warn_or_invalid(
        path: Path, planted: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """No op returns WARN from a step today, and no ordering the decoder
    makes is INVALID. If a step returned WARN the name would depend on
    whether the ordering can finish (verdict.evaluate), which the loop
    then decodes on to learn; INVALID has no end feature."""
    real = model_run.step

    def step(m: mc.Machine, st: list[int], cpu: int, op: int,
             chain: list[str], warnings: list[str]) -> int:
        outcome = real(m, st, cpu, op, chain, warnings)
        if outcome == OK and cpu == 0 and m.op_kind[op] == m.op_kind[
                sc.programs[0][1]]:
            chain.append("planted")
            return planted
        return outcome

    monkeypatch.setattr(model_run, "step", step)
    monkeypatch.setattr(mf, "step", step)
    sc = load(path)
    plan = plan_of(sc)
    rng = random.Random(5)
    keys: dict[object, str] = {}
    names = set()
    for data in random_inputs(rng, 10):
        ex = run_input(sc, plan, data)
        check(sc, data, ex, keys, set())
        names.add(ex.name)
    assert NAMES[planted] in names


@pytest.mark.slow
def test_the_compiled_loop_gives_what_the_interpreted_one_gives(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The loop's integer hashing and decoding under mypyc (a copy of the
    model package built as `make test` runs it elsewhere): the same name,
    features and key as interpreted, for every scenario."""
    if COMPILED:
        pytest.skip("the model here is the compiled one already")
    from fuzzinit import compiled

    compiled.load(compiled.build(tmp_path_factory.mktemp("mypyc")))
    cmf = __import__(f"{compiled.PACKAGE}.features", fromlist=["Plan"])
    cmachine = __import__(f"{compiled.PACKAGE}.machine",
                          fromlist=["Machine"])
    assert str(cmf.__file__).endswith(".so")
    for path in SCENARIOS:
        sc = load(path)
        plan = plan_of(sc)
        if plan is None:
            continue
        cplan = cmf.Plan(
            cmachine.Machine(**sc.machine_args), plan.programs, plan.lives,
            plan.trig_cpu, plan.trig_op, plan.trig_count, plan.trig_lo,
            plan.trig_hi, plan.trig_life, plan.trig_parked, plan.needs)
        rng = random.Random(path.stem)
        for data in random_inputs(rng, 30):
            a = mf.decode_run(plan, data)
            b = cmf.decode_run(cplan, data)
            assert (b.name, b.features, b.key()) == \
                (a.name, a.features, a.key()), (path.stem, data)


def test_line_coverage_runs_every_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`--coverage lines` counts the model lines an input runs: no memo."""
    from fuzzinit.fuzz import execute as execute_module

    monkeypatch.setattr(execute_module, "_memo", True)
    monkeypatch.setattr(execute_module, "_plan", None)
    sc = load(ROOT / "models/fred-pinned-sev-es-ap.toml")
    execute(sc, b"")
    assert execute_module._plan is not None
    assert execute_module._plan[1] is not None and execute_module._plan[1].memo
    execute_module.run_every_event()
    for _ in range(2):
        execute(sc, b"")
    assert execute_module._plan is not None
    assert execute_module._plan[1] is not None
    assert not execute_module._plan[1].memo
