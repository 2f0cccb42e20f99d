"""Run SPIN on a scenario's Promela model: `verify(sc, max_triggers,
workdir)` writes the model, builds the verifier, searches every state,
and on a failure replays SPIN's trail into fuzzinit Events.

The search is exhaustive or an error: no bitstate hashing (the full state
is stored; the hash table size only changes speed), `-b` makes the depth
limit an error, and a search that stops early (memory) is a SpinError -
never a "complete".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from fuzzinit.errors import FuzzinitError
from fuzzinit.export.promela import promela
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

COMPLETE = "complete"
FAILED = "failing ordering"
MODEL = "model.pml"
CFLAGS = ("-O2", "-DSAFETY", "-DREACH")
HASH_BITS = 20          # 2**20 slots to start; the table chains, never drops
MEMLIM_MB = 4096        # pan stops (an error here) rather than swap
# runtime.pml's assertions name the failing outcome: fail_<outcome>.
_ASSERTION = re.compile(r"assertion violated\s+!\(fail_[a-z_]+\)")
_EV = re.compile(r"^\s*EV (-?\d+) (-?\d+) (-?\d+) (-?\d+)\s*$", re.M)
_TRACE = re.compile(r"^(EV|OUT|ST|GL)((?: -?\d+)+)\s*$", re.M)
_SPIN_ASSERT = re.compile(r"failed assertion: assert\(!\((fail_[a-z_]+)\)\)")


class SpinError(FuzzinitError):
    """SPIN could not give an exhaustive answer, or is not installed."""


@dataclass
class SpinResult:
    verdict: str                  # COMPLETE or FAILED
    errors: int                   # errors pan found (it stops at the first)
    states: int                   # states stored
    transitions: int
    depth: int                    # depth reached
    compile_s: float              # spin -a and gcc
    run_s: float                  # ./pan's search, wall clock (to the
    #                               first error when it fails)
    pan_elapsed_s: float          # ./pan's own count
    outcome: str | None           # the failing outcome (fail_on name)
    ordering: list[Event] | None  # the failing ordering, from the trail
    output: str                   # ./pan's report
    shorten_s: float = 0.0        # ./pan -i for a shortest trail


def spin_path() -> str | None:
    return shutil.which("spin")


def max_depth(sc: Scenario, max_triggers: int) -> int:
    """A depth bound no run reaches: an event is 7 steps (runtime.pml:
    the choice, then event's d_steps), a run has at most one event per
    program slot and per trigger allowed, and start-up and the stuck check
    take a few more. Reaching it anyway is an error (pan -b)."""
    triggers = min(max_triggers, sum(t.count for t in sc.triggers))
    events = sum(len(p) for p in sc.programs) + max(0, triggers)
    return 64 * (events + 8)


def _run(cmd: list[str], cwd: Path, what: str) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              check=False)
    except OSError as exc:
        raise SpinError(f"{what}: cannot run {cmd[0]}: {exc.strerror}") from exc
    return proc


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def build(sc: Scenario, max_triggers: int, workdir: Path,
          cflags: tuple[str, ...] = CFLAGS,
          memlim_mb: int = MEMLIM_MB) -> float:
    """Write the model and compile its verifier in `workdir`; the seconds
    it took."""
    spin = spin_path()
    if spin is None:
        raise SpinError("spin is not on PATH; fix: install SPIN (Debian"
                        " package 'spin')")
    workdir.mkdir(parents=True, exist_ok=True)
    for old in (f"{MODEL}.trail", "pan", "pan.c"):
        (workdir / old).unlink(missing_ok=True)   # nothing from a past run
    (workdir / MODEL).write_text(promela(sc, max_triggers), encoding="utf-8")
    start = time.monotonic()
    proc = _run([spin, "-a", MODEL], workdir, "spin -a")
    if proc.returncode != 0 or not (workdir / "pan.c").exists():
        raise SpinError(f"spin -a {workdir / MODEL} failed:"
                        f" {_tail(proc.stdout + proc.stderr)}")
    proc = _run(["gcc", *cflags, f"-DMEMLIM={memlim_mb}", "-o", "pan",
                 "pan.c"], workdir, "gcc")
    if proc.returncode != 0:
        raise SpinError(f"gcc pan.c in {workdir} failed:"
                        f" {_tail(proc.stderr)}")
    return time.monotonic() - start


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0


def _pan(workdir: Path, options: list[str]) -> tuple[str, float]:
    start = time.monotonic()
    proc = _run(["./pan", *options], workdir, "pan")
    out = proc.stdout + proc.stderr
    if "out of memory" in out or "MEMLIM" in out:
        raise SpinError("pan ran out of memory (its -DMEMLIM bound): the"
                        " search is not exhaustive")
    return out, time.monotonic() - start


def verify(sc: Scenario, max_triggers: int, workdir: Path,
           cflags: tuple[str, ...] = CFLAGS, depth: int | None = None,
           memlim_mb: int = MEMLIM_MB) -> SpinResult:
    """SPIN's exhaustive answer for `sc` with up to `max_triggers`
    triggers: COMPLETE, or FAILED with the outcome and a shortest failing
    ordering (as explore gives one). `depth` overrides pan's depth bound
    (default: max_depth) and `memlim_mb` its memory bound; a search that
    reaches either is a SpinError, never an answer."""
    workdir = Path(workdir)
    compile_s = build(sc, max_triggers, workdir, cflags, memlim_mb)
    if depth is None:
        depth = max_depth(sc, max_triggers)
    # -b: reaching the depth bound is an error, not a silent cut-off.
    out, run_s = _pan(workdir, ["-b", "-n", f"-m{depth}", f"-w{HASH_BITS}"])
    if "max search depth too small" in out or "depth limit" in out.lower():
        raise SpinError(f"pan: the depth limit {depth} was reached: the"
                        " search is not exhaustive")
    errors = re.search(r"errors: (\d+)", out)
    if errors is None:
        raise SpinError(f"pan gave no verdict: {_tail(out)}")
    states = _number(r"(\d+) states, stored", out)
    transitions = _number(r"(\d+) transitions", out)
    reached = _number(r"depth reached (\d+)", out)
    elapsed = re.search(r"pan: elapsed time ([\d.e+-]+) seconds", out)
    pan_s = float(elapsed.group(1)) if elapsed else run_s
    if int(errors.group(1)) == 0:
        if "Search not completed" in out:
            raise SpinError(f"pan did not complete the search: {_tail(out)}")
        return SpinResult(COMPLETE, 0, states, transitions, reached,
                          compile_s, run_s, pan_s, None, None, out)
    if _ASSERTION.search(out) is None:
        raise SpinError(f"pan found an error that is not a failing outcome"
                        f" (a bug in the export): {_tail(out)}")
    # Again with -i (iterative shortening, built with -DREACH): the trail
    # left is a shortest one. Every event takes the same number of steps
    # (runtime.pml), so shortest in steps is shortest in events.
    _, shorten_s = _pan(workdir, ["-i", "-n", f"-m{depth}", f"-w{HASH_BITS}"])
    events, outcome = replay(workdir)
    if outcome is None:
        raise SpinError(f"the shortest trail in {workdir} ends in an error"
                        " that is not a failing outcome (a bug in the"
                        " export)")
    return SpinResult(FAILED, int(errors.group(1)), states, transitions,
                      reached, compile_s, run_s, pan_s, outcome,
                      events, out, shorten_s)


def replay(workdir: Path) -> tuple[list[Event], str | None]:
    """The events of the trail pan wrote in `workdir` (`spin -t`), and the
    outcome its failing assertion names."""
    spin = spin_path()
    if spin is None:
        raise SpinError("spin is not on PATH")
    proc = _run([spin, "-T", "-B", "-t", MODEL], Path(workdir), "spin -t")
    if proc.returncode != 0:
        raise SpinError(f"spin -t failed: {_tail(proc.stdout + proc.stderr)}")
    failed = _SPIN_ASSERT.search(proc.stdout + proc.stderr)
    events = [Event(int(c), int(op), int(slot), int(trig))
              for c, op, slot, trig in _EV.findall(proc.stdout)]
    return events, failed.group(1)[len("fail_"):] if failed else None


@dataclass
class TracedStep:
    """One event of a SPIN simulation (`spin -DTRACE`): its outcome,
    whether it WARNed, and the model's state after it in machine.py's flat
    layout (64-bit fields as unsigned numbers)."""
    event: Event
    outcome: int
    warned: bool
    state: list[int]


@dataclass
class Simulation:
    steps: list[TracedStep]
    failed: str | None       # the outcome a failing assertion names
    output: str


def _u64(lo: int, hi: int) -> int:
    return (lo & 0xFFFFFFFF) | (hi & 0xFFFFFFFF) << 32


def _cpu_fields(v: list[int]) -> list[int]:
    """An ST line's numbers (after the cpu) as machine.py's NF fields.
    F_MMU and F_LIFE are 0: runtime.pml has no page tables, offline CPUs or
    images, and the export refuses a scenario that has them."""
    rsps = [_u64(v[10 + 2 * i], v[11 + 2 * i]) for i in range(4)]
    return [v[0] & 0xFFFFFFFF, v[1], _u64(v[2], v[3]), _u64(v[4], v[5]),
            _u64(v[6], v[7]), _u64(v[8], v[9]), *rsps, v[18], v[19], v[20],
            v[21], 0, 0, v[22]]


def simulate(sc: Scenario, max_triggers: int, workdir: Path,
             seed: int) -> Simulation:
    """A random run of the model in SPIN's simulator (no compile), traced
    event by event: for stepping the Python model alongside."""
    spin = spin_path()
    if spin is None:
        raise SpinError("spin is not on PATH")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / MODEL).write_text(promela(sc, max_triggers), encoding="utf-8")
    proc = _run([spin, "-DTRACE", f"-n{seed}", "-T", "-B", MODEL], workdir,
                "spin")
    out = proc.stdout + proc.stderr
    steps: list[TracedStep] = []
    cpus: list[int] = []
    for tag, numbers in _TRACE.findall(proc.stdout):
        v = [int(x) for x in numbers.split()]
        if tag == "EV":
            steps.append(TracedStep(Event(*v), 0, False, []))
        elif tag == "OUT":
            steps[-1].outcome, steps[-1].warned = v[0], v[1] > 0
        elif tag == "ST":
            cpus += _cpu_fields(v[1:])
        else:
            steps[-1].state = cpus + [v[0], _u64(v[1], v[2]), v[3], 0]
            cpus = []
    failed = _SPIN_ASSERT.search(out)
    return Simulation(steps, failed.group(1)[len("fail_"):] if failed
                      else None, out)
