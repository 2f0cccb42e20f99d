"""How the explorer stores states (fuzzinit/explore/store.py): per-CPU
parts, hash compaction, the memory budget."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit.explore.bfs import BUDGET, COMPLETE, explore
from fuzzinit.explore.options import parse_size
from fuzzinit.explore.scaling import scaled
from fuzzinit.explore.store import Parts, Tree, miss_probability, packed_hash
from fuzzinit.model.outcome import OK
from fuzzinit.model.run import initial_state, step
from fuzzinit.orderings.schedule import Schedule
from fuzzinit.scenario.load import Scenario, load

ROOT = Path(__file__).resolve().parent.parent
FIXED = ROOT / "models" / "upstream-fix-sev-es.toml"


def _scaled(tmp_path: Path, aps: int, kinds: frozenset[str]) -> Scenario:
    path = tmp_path / f"fixed-{aps}.toml"
    path.write_text(scaled(FIXED.read_text(), aps, kinds))
    return load(path)


def test_a_successor_is_encoded_as_from_scratch(tmp_path: Path) -> None:
    # Parts.successor looks up only the CPUs whose part changed; it must
    # give the state encode() gives from the whole state.
    sc = _scaled(tmp_path, 3, frozenset({"nmi", "printk"}))
    order = [[i for i, t in enumerate(sc.triggers) if t.cpu == c]
             for c in range(sc.ncpu)]
    rng = random.Random(7)
    steps = 0
    view = Schedule(sc)
    for _ in range(40):
        parts = Parts(sc, order)
        sched = Schedule(sc)
        st = initial_state(sc.machine)
        used = 0
        state = parts.encode(st, sched.snapshot(), used, False)
        while True:
            moves = sched.program_candidates() + sched.trigger_candidates()
            if not moves:
                break
            ev = rng.choice(moves)
            snap = sched.snapshot()
            after = st.copy()
            if step(sc.machine, after, ev.cpu, ev.op, [], []) != OK:
                break
            used += ev.slot < 0
            snap_after = sched.snapshot_after(snap, ev)
            nxt = parts.successor(state, st, snap, after, snap_after, used,
                                  False, ev.cpu)
            assert nxt == parts.encode(after, snap_after, used, False)
            assert parts.unpack(parts.pack(nxt)) == nxt
            sched.take(ev)
            # Schedule.load() from the parts gives the schedule take() did.
            assert parts.load(nxt, view) == (after, snap_after)
            assert (view.program_candidates(), view.trigger_candidates(),
                    view.first, view.ndone, view.finished()) == \
                (sched.program_candidates(), sched.trigger_candidates(),
                 sched.first, sched.ndone, sched.finished())
            st, state = after, nxt
            steps += 1
    assert steps > 500


def test_hash_compaction_finds_the_same_states_and_says_how_sure(
        tmp_path: Path) -> None:
    sc = _scaled(tmp_path, 2, frozenset({"nmi"}))
    exact = explore(sc, 2)
    compact = explore(sc, 2, hash_compact=True)
    assert (exact.verdict, exact.hash_compact) == (COMPLETE, False)
    assert (compact.verdict, compact.states, compact.transitions) == \
        (exact.verdict, exact.states, exact.transitions)
    n = compact.states
    assert compact.miss_probability == n * (n - 1) / 2 ** 65
    assert miss_probability(1) == 0.0


def test_the_tree_keeps_parents_and_hashes() -> None:
    tree = Tree(compact=True)
    a = bytes([1, 2, 3])
    assert tree.add(a, -1, None) == 0
    assert tree.add(bytes([1, 2, 3]), 0, None) == -1
    assert tree.add(bytes([3, 2, 1]), 0, None) == 1
    assert tree.parent.tolist() == [-1, 0]
    assert packed_hash(a) != packed_hash(bytes([3, 2, 1]))


def test_the_memory_budget_stops_the_search(tmp_path: Path) -> None:
    # 4 APs and 2 NMIs without symmetry: 241,185 states, far over 1 MiB.
    sc = _scaled(tmp_path, 4, frozenset({"nmi"}))
    ex = explore(sc, 2, symmetry=False, memory=1 << 20)
    assert (ex.verdict, ex.limit) == (BUDGET, "memory")
    assert ex.states < 241_185
    ex = explore(sc, 2, budget=100, symmetry=False)
    assert (ex.verdict, ex.limit) == (BUDGET, "states")


def test_memory_sizes() -> None:
    assert parse_size("512M") == 512 << 20
    assert parse_size("1.5g") == 3 << 29
    assert parse_size("4GiB") == 4 << 30
    assert parse_size("2000000") == 2_000_000
    for bad, why in (("10", "expected at least 1M"),
                     ("lots", "expected a size such as 512M, 4G or"
                      " 1000000")):
        with pytest.raises(Exception, match=why):
            parse_size(bad)


def _explore(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", "explore",
                           *args], capture_output=True, text=True,
                          check=False, timeout=300)


def test_explore_prints_the_probability_and_which_budget_ran_out(
        tmp_path: Path) -> None:
    proc = _explore(str(FIXED), "--hash-compact")
    assert proc.returncode == 0, proc.stderr
    # 87 states: 87 * 86 / 2^65 = 2.0e-16
    line = proc.stdout.splitlines()[0]
    assert line.startswith("upstream-fix-sev-es: complete: no failing"
                           " ordering in 87 states, 111 transitions, ")
    assert line.endswith(" states/s; hash compaction: probability that a"
                         " state was missed <= 2.0e-16")
    big = tmp_path / "big.toml"
    big.write_text(scaled(FIXED.read_text(), 4, frozenset({"nmi"})))
    proc = _explore(str(big), "--no-symmetry", "--memory", "1M")
    assert proc.returncode == 3, proc.stderr
    assert "memory budget (--memory) exhausted after" in proc.stdout
    proc = _explore(str(big), "--memory", "10")
    assert proc.returncode == 2
    assert "argument --memory: '10': expected at least 1M" in proc.stderr
