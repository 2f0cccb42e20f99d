"""Partial-order and symmetry reduction: the same verdicts, outcomes and
shortest lengths as the plain search, on fewer states."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzinit.explore.bfs import COMPLETE, FAILED, Exploration, explore
from fuzzinit.explore.independence import Independence, local_write
from fuzzinit.explore.scaling import scaled
from fuzzinit.explore.store import Parts, State
from fuzzinit.explore.symmetry import Symmetry
from fuzzinit.model import ops_smp as smp
from fuzzinit.model.outcome import OK
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Event, Schedule, well_formed
from fuzzinit.scenario.load import Scenario, load

ROOT = Path(__file__).parent.parent
FIXED = ROOT / "models/upstream-fix-sev-es.toml"
PINNED = ROOT / "models/fred-pinned-sev-es-ap.toml"
COMBOS = ((True, True), (True, False), (False, True))


def summary(ex: Exploration) -> tuple[str, str, int]:
    return (ex.verdict, ex.result.name if ex.result else "",
            len(ex.ordering or []))


def scaled_scenario(tmp_path: Path, source: Path, aps: int,
                    kinds: frozenset[str] | None = None) -> Scenario:
    path = tmp_path / f"{source.stem}-{aps}.toml"
    path.write_text(scaled(source.read_text(), aps, kinds))
    return load(path)


@pytest.mark.parametrize("model", sorted((ROOT / "models").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_reductions_agree_on_every_model(model: Path) -> None:
    sc = load(model)
    k = sum(t.count for t in sc.triggers)
    plain = explore(sc, k, por=False, symmetry=False)
    for por, sym in COMBOS:
        ex = explore(sc, k, por=por, symmetry=sym)
        assert summary(ex) == summary(plain), (por, sym)
        assert ex.shortest


def test_four_aps_two_nmis_exact_counts(tmp_path: Path) -> None:
    """The issue's scale goal: 1 BSP + 4 APs, up to 2 NMIs. Each reduction
    alone and both together; the counts are part of the contract (the
    same every run)."""
    sc = scaled_scenario(tmp_path, FIXED, 4, frozenset({"nmi"}))
    both = explore(sc, 2)
    assert (both.verdict, both.states) == (COMPLETE, 24_241)
    assert explore(sc, 2, symmetry=False).states == 241_185


def test_three_aps_reduced_and_plain_agree(tmp_path: Path) -> None:
    sc = scaled_scenario(tmp_path, FIXED, 3, frozenset({"nmi"}))
    plain = explore(sc, 2, por=False, symmetry=False)
    assert (plain.verdict, plain.states) == (COMPLETE, 27_091)
    for por, sym in COMBOS:
        ex = explore(sc, 2, por=por, symmetry=sym)
        assert ex.verdict == COMPLETE and ex.states < plain.states


def test_scaled_pinned_scenario_keeps_its_shortest_counterexample(
        tmp_path: Path) -> None:
    sc = scaled_scenario(tmp_path, PINNED, 3)
    plain = explore(sc, 2, por=False, symmetry=False)
    assert summary(plain)[:2] == (FAILED, "triple_fault")
    for por, sym in COMBOS:
        ex = explore(sc, 2, por=por, symmetry=sym)
        assert summary(ex) == summary(plain)
        assert ex.ordering is not None
        # The ordering is real: the schedule allows it, step by step.
        assert well_formed(sc, ex.ordering) == ""


def reachable(sc: Scenario, limit: int) -> list[tuple[tuple[int, ...],
                                                       tuple[object, ...]]]:
    """Concrete states of the plain search, breadth first, no triggers."""
    m = sc.machine
    sched = Schedule(sc)
    seen = {(tuple(initial_state(m)), sched.snapshot())}
    frontier = list(seen)
    while frontier and len(seen) < limit:
        nxt = []
        for st0, snap in frontier:
            sched.restore(snap)
            for ev in sched.program_candidates():
                st1 = list(st0)
                if step(m, st1, ev.cpu, ev.op, [], []) != OK:
                    continue
                sched.restore(snap)
                sched.take(ev)
                state = (tuple(st1), sched.snapshot())
                if state not in seen:
                    seen.add(state)
                    nxt.append(state)
        frontier = nxt
    return sorted(seen, key=repr)


def test_the_op_por_keeps_alone_commutes_with_every_other_move(
        tmp_path: Path) -> None:
    """Independence, checked where it is used: from the first 4,000
    reachable states (breadth first, no trigger) where POR keeps one op t,
    t and each other enabled move u (triggers included) give the same
    state and the same outcome per event in either order. Condition 3 is
    about everything the other CPUs can still run; this checks the moves
    enabled now."""
    sc = scaled_scenario(tmp_path, FIXED, 3)
    m = sc.machine
    indep = Independence(sc)
    sched = Schedule(sc)
    checked = 0

    def run(st0: tuple[int, ...],
            *events: Event) -> tuple[list[int], dict[Event, int]]:
        st1 = list(st0)
        outcomes = {e: step(m, st1, e.cpu, e.op, [], []) for e in events}
        return st1, outcomes

    for st0, snap in reachable(sc, 4000):
        sched.restore(snap)
        moves = sched.program_candidates() + sched.trigger_candidates()
        for t in indep.candidates(sched, moves, True):
            after_t, out = run(st0, t)
            if out[t] != OK or not local_write(list(st0), after_t, t.cpu):
                continue
            for u in moves:
                if u.cpu == t.cpu:
                    continue
                assert run(st0, t, u) == run(st0, u, t), (t, u)
                checked += 1
            break
    assert checked > 1000


def test_symmetric_states_share_a_key_only_when_the_boot_cpu_allows(
        tmp_path: Path) -> None:
    sc = scaled_scenario(tmp_path, FIXED, 2, frozenset())
    sym = Symmetry(sc)
    assert sym.groups == [[1, 2]]
    m = sc.machine
    sched = Schedule(sc)
    st0 = initial_state(m)
    # The boot CPU up to its waits: both APs started.
    while sched.program_candidates()[0].cpu == 0:
        ev = sched.program_candidates()[0]
        if m.op_kind[ev.op] == smp.WAIT_ONLINE:
            break
        assert step(m, st0, 0, ev.op, [], []) == OK
        sched.take(ev)
    snap = sched.snapshot()
    parts = Parts(sc, sym.trigger_order)

    def after(ev: Event) -> State:
        st1 = list(st0)
        assert step(m, st1, ev.cpu, ev.op, [], []) == OK
        sched.restore(snap)
        sched.take(ev)
        return parts.encode(st1, sched.snapshot(), 0, False)

    sched.restore(snap)
    ap1, ap2 = (e for e in sched.program_candidates() if e.cpu)
    a, b = after(ap1), after(ap2)
    assert a != b
    assert sym.canonical(a, parts.table) == sym.canonical(b, parts.table)


def test_a_started_ap_is_not_swapped_with_one_still_to_start(
        tmp_path: Path) -> None:
    sc = scaled_scenario(tmp_path, FIXED, 2, frozenset())
    sym = Symmetry(sc)
    m = sc.machine
    sched = Schedule(sc)
    st0 = initial_state(m)
    # Run the boot CPU through `start 1` only.
    while True:
        ev = sched.program_candidates()[0]
        assert step(m, st0, 0, ev.op, [], []) == OK
        sched.take(ev)
        if sc.op_text(ev.op) == "start 1":
            break
    parts = Parts(sc, sym.trigger_order)
    state = parts.encode(st0, sched.snapshot(), 0, False)
    assert sym.canonical(state, parts.table) == state


# --- random scenarios -----------------------------------------------------

AP_OPS = ("nop x", "printk", "cr4_set fsgsbase", "cr4_set fred",
          "cr4_set smep", "cr4_clear smep", "cr4_clear smep",
          "cr4_clear smep", "wrmsr FRED_CONFIG entry", "wrmsr FRED_RSP0 0",
          "lidt full", "lidt bringup", "setup_ghcb", "rdgsbase", "cr4_init",
          "cpuid", "port_io", "ltr", "patch_alternatives", "console_init")
BSP_OPS = ("setup_cr_pinning", "cr4_set smep", "sev_es_init_vc_handling",
           "setup_ghcb", "lidt full", "console_init", "printk")
KINDS = ("nmi", "printk", "pf", "cpuid", "clear_online", "cr4_gadget -smep")


@st.composite
def scenarios(draw: st.DrawFn) -> str:
    aps = draw(st.integers(1, 3))
    guest = draw(st.sampled_from(("bare", "sev-es", "sev-snp", "tdx")))
    gate = draw(st.sampled_from(("static_key", "online")))
    shared = draw(st.lists(st.sampled_from(AP_OPS), min_size=1, max_size=4))
    programs = []
    for _ in range(aps):
        same = draw(st.booleans())
        ops = shared if same else draw(
            st.lists(st.sampled_from(AP_OPS), min_size=1, max_size=4))
        programs.append(ops + ["online"])
    bsp = ["cr4_set smep"] + draw(st.lists(st.sampled_from(BSP_OPS),
                                           max_size=2))
    starts = [f"start {i}" for i in range(1, aps + 1)]
    waits = [f"wait_online {i}" for i in range(1, aps + 1)]
    smp = starts + waits
    # Boot CPU ops after the starts race with the APs' ops.
    bsp += smp[:aps] + draw(st.lists(st.sampled_from(BSP_OPS), max_size=3)) \
        + smp[aps:]
    lines = ['[scenario]', 'name = "random"',
             'fail_on = ["triple_fault", "guest_terminated", "unhandled",'
             ' "hang", "warn", "never_online", "pin_cleared"]',
             '[platform]', f'guest = "{guest}"',
             'features = ["fred", "smep", "fsgsbase"]',
             '[kernel]', 'pinned_cr4 = ["smep"]', f'pinning = "{gate}"']
    for program in [bsp] + programs:
        lines += ["[[cpu]]", "program = [" + ", ".join(
            f'"{op}"' for op in program) + "]"]
    mode = draw(st.sampled_from(("interleave", "permute")))
    lines += ["[orderings]", f'mode = "{mode}"']
    for kind in draw(st.lists(st.sampled_from(KINDS), max_size=2,
                              unique=True)):
        cpus = draw(st.lists(st.integers(1, aps), min_size=1, unique=True))
        lines += ["[[orderings.trigger]]", f'kind = "{kind}"',
                  f"cpus = {sorted(cpus)}"]
    if aps > 1 and draw(st.booleans()):
        # A boot CPU trigger window that points into its wait run.
        lines += ["[[orderings.trigger]]", 'kind = "printk"', "cpus = [0]",
                  'after = "wait_online 1"']
    return "\n".join(lines) + "\n"


@settings(max_examples=120, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=scenarios(), k=st.integers(0, 2))
def test_random_scenarios_agree_with_the_plain_search(
        tmp_path: Path, text: str, k: int) -> None:
    path = tmp_path / "random.toml"
    path.write_text(text)
    sc = load(path)
    plain = explore(sc, k, budget=200_000, por=False, symmetry=False)
    for por, sym in COMBOS:
        ex = explore(sc, k, budget=200_000, por=por, symmetry=sym)
        assert summary(ex) == summary(plain), (por, sym, text)
        assert well_formed(sc, ex.ordering or []) == ""
        assert ex.states <= plain.states or ex.reduced_states


def test_snapshot_after_is_take_from_restore(tmp_path: Path) -> None:
    """The explorer's shortcut builds the same snapshot as restore + take,
    for program ops, starts, onlines and triggers, in both modes."""
    for mode in ("interleave", "permute"):
        path = tmp_path / f"{mode}.toml"
        path.write_text(scaled(FIXED.read_text(), 2).replace(
            'mode = "interleave"', f'mode = "{mode}"'))
        sc = load(path)
        sched = Schedule(sc)
        frontier = [sched.snapshot()]
        seen = set(frontier)
        kinds = set()
        while frontier and len(seen) < 3000:
            snap = frontier.pop()
            sched.restore(snap)
            for ev in sched.program_candidates() + \
                    sched.trigger_candidates():
                sched.restore(snap)
                sched.take(ev)
                assert sched.snapshot_after(snap, ev) == sched.snapshot()
                kinds.add(sc.machine.op_kind[ev.op] if ev.slot >= 0
                          else -1)
                if sched.snapshot() not in seen:
                    seen.add(sched.snapshot())
                    frontier.append(sched.snapshot())
        assert {-1, smp.START, smp.ONLINE_OP} <= kinds
