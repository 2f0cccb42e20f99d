"""What the model can say about repairs: changes that make the failing
ordering pass, each checked against the model.

Two kinds:
- reorder: move one op of the failing CPU's program - the failing event
  itself later, or a set-up op that had not run yet earlier - next to a
  core event. Checked twice: the shrunk ordering with the move passes, and
  a bounded search of the scenario with its program so changed finds no
  failing ordering.
- kernel: drop a pinned CR4 bit the failing CPU had, turn on
  fred_vc_dispatch / boot_ghcb_fallback (the halves of 3645eb7e3915) or
  turn off paranoid_rdpid (6a3ea3e68b8a), and re-run the same ordering and
  a bounded search under that kernel.

The searches of one report share a time bound (Checks, default
FIX_CHECK_S; `--fix-check-time`): at 128 APs a 300-example search takes
about a minute, and a report may run tens of them (22 for the pinned-FRED
seed). A search the
bound stops says how many orderings it ran; a change left when the bound
has run out is not offered, and the report says how many were left.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

from fuzzinit.explore.bfs import COMPLETE, FAILED, explore
from fuzzinit.model import machine as mc
from fuzzinit.model.arch import CR4_BITS
from fuzzinit.model.outcome import INVALID
from fuzzinit.orderings.schedule import Event, program_order
from fuzzinit.report.timeline import positions
from fuzzinit.scenario.load import Scenario
from fuzzinit.search import search_or_raise
from fuzzinit.verdict import evaluate, fails

SEARCH_BUDGET = 300
# States the explorer may take to confirm a search that ran out of
# orderings before SEARCH_BUDGET covered the whole space.
EXPLORE_BUDGET = 20_000
MAX_REORDERS = 3
# Seconds the fix checks of one report may take together.
FIX_CHECK_S = 60.0


@dataclass(frozen=True)
class Fix:
    kind: str            # "reorder" or "kernel"
    text: str
    checked: str         # what the model confirmed


@dataclass
class Checks:
    """The time a report's fix checks share, and what they did in it."""
    bound_s: float
    deadline: float = field(init=False)
    searches: int = 0        # searches run
    stopped: int = 0         # of those, stopped by the bound
    not_checked: int = 0     # changes left unchecked: the bound had run out

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.bound_s

    def note(self) -> str:
        """"" when every check ran to its budget, else what the bound cut."""
        if not self.stopped and not self.not_checked:
            return ""
        parts = []
        if self.stopped:
            parts.append(f"{self.stopped} of {self.searches} searches"
                         " stopped early")
        if self.not_checked:
            n = self.not_checked
            parts.append(f"{n} candidate change{'s' if n != 1 else ''} not"
                         " checked (not offered)")
        return (f"Fix checks share a {self.bound_s:g} s bound"
                " (--fix-check-time); it ran out: " + ", ".join(parts))


def _remap(slots: tuple[int, ...], order: list[int]) -> tuple[int, ...]:
    where = {old: new for new, old in enumerate(order)}
    return tuple(sorted(where[s] for s in slots))


def with_program_move(sc: Scenario, cpu: int, slot: int,
                      before_slot: int | None) -> Scenario:
    """`sc` with op `slot` of `cpu` moved to just before `before_slot`
    (None: to the end of the program)."""
    order = [s for s in range(len(sc.programs[cpu])) if s != slot]
    order.insert(len(order) if before_slot is None
                 else order.index(before_slot), slot)
    programs = [list(p) for p in sc.programs]
    routine_of = [list(r) for r in sc.routine_of]
    programs[cpu] = [sc.programs[cpu][s] for s in order]
    routine_of[cpu] = [sc.routine_of[cpu][s] for s in order]
    where = {old: new for new, old in enumerate(order)}

    def move(point: tuple[int, int]) -> tuple[int, int]:
        c, s = point
        return (c, where[s]) if c == cpu else (c, s)

    triggers = [dataclasses.replace(t, after=_remap(t.after, order),
                                    before=_remap(t.before, order))
                if t.cpu == cpu else t for t in sc.triggers]
    before = [(move(a), move(b)) for a, b in sc.before]
    return dataclasses.replace(sc, programs=programs, routine_of=routine_of,
                               triggers=triggers, before=before)


def with_kernel(sc: Scenario, **change: object) -> Scenario:
    args = dict(sc.machine_args, **change)
    return dataclasses.replace(sc, machine=mc.Machine(**args),
                               machine_args=args)


def passes_search(sc: Scenario, checks: Checks) -> str:
    """"" unless a bounded search of `sc` ran and found nothing - a
    program that can deadlock (never_online) counts as failing - else what
    was checked: "no failing ordering in N examples", and ", the whole
    space" only when the search ran out of orderings before its budget and
    the explorer, run to completion, agrees. The search stops at `checks`'
    deadline ("stopped by the time bound"); past it, nothing is checked."""
    total = sum(len(p) for p in sc.programs)
    if len(program_order(sc)) != total:
        return ""  # the changed program cannot even run to the end
    if time.monotonic() >= checks.deadline:
        checks.not_checked += 1
        return ""
    strict = dataclasses.replace(sc, fail_on=sc.fail_on | {"never_online"})
    report = search_or_raise(strict, SEARCH_BUDGET, 0,
                             deadline=checks.deadline, shrink=False)
    checks.searches += 1
    checks.stopped += report.out_of_time
    if report.examples < 1:
        checks.not_checked += report.out_of_time
        return ""
    if report.finding is not None:
        return ""
    n = report.examples
    text = f"no failing ordering in {n} example{'s' if n != 1 else ''}"
    if report.out_of_time:
        return text + " (stopped by the time bound)"
    if n < SEARCH_BUDGET:
        # Hypothesis stopped early: it ran out of new orderings. Say so
        # only once the explorer confirms there is no other one.
        ex = explore(strict, sum(t.count for t in sc.triggers),
                     EXPLORE_BUDGET)
        if ex.verdict == FAILED:
            return ""
        if ex.verdict == COMPLETE:
            text += (", the whole space (fuzzinit explore: complete,"
                     f" {ex.states} states, none failing)")
    return text


def _reorders(sc: Scenario, shrunk: list[Event], core: list[Event],
              k: int, checks: Checks) -> list[Fix]:
    failing = shrunk[k]
    cpu = failing.cpu
    program = sc.programs[cpu]
    ran = {e.slot for e in shrunk[:k] if e.cpu == cpu and e.slot >= 0}
    core_slots = [e.slot for e in core if e.cpu == cpu and e.slot >= 0]
    candidates: list[tuple[int, str, list[Event], int, int | None]] = []
    # Set-up that had not run yet, moved to just before a core event.
    for target in core_slots:
        t_event = next(e for e in shrunk if e.cpu == cpu and e.slot == target)
        for slot in range(len(program)):
            if slot in ran or slot == target or slot in core_slots:
                continue
            x = next((e for e in shrunk if e.cpu == cpu and e.slot == slot),
                     None)
            if x is None:
                continue
            moved = [e for e in shrunk if e != x]
            moved.insert(moved.index(t_event), x)
            text = (f"run cpu{cpu} `{sc.op_text(x.op)}` before"
                    f" `{sc.op_text(t_event.op)}`")
            candidates.append((abs(slot - target), text, moved, slot,
                               target))
    # The failing op itself, later: after an op that had not run yet.
    if failing.slot >= 0:
        for slot in range(failing.slot + 1, len(program)):
            x = next((e for e in shrunk if e.cpu == cpu and e.slot == slot),
                     None)
            if x is None:
                continue
            moved = [e for e in shrunk if e != failing]
            moved.insert(moved.index(x) + 1, failing)
            text = (f"run cpu{cpu} `{sc.op_text(failing.op)}` after"
                    f" `{sc.op_text(x.op)}`")
            nxt = slot + 1
            candidates.append((slot - failing.slot, text, moved,
                               failing.slot, nxt if nxt < len(program)
                               else None))
    out: list[Fix] = []
    for _, text, moved, slot, before_slot in sorted(candidates,
                                                    key=lambda c: (c[0], c[1])):
        if len(out) == MAX_REORDERS:
            break
        moved_result = evaluate(sc, moved)
        if moved_result.outcome == INVALID or fails(sc, moved_result):
            continue
        changed = with_program_move(sc, cpu, slot, before_slot)
        verdict = passes_search(changed, checks)
        if not verdict:
            continue  # the move alone leaves another failing ordering
        out.append(Fix("reorder", text, "the shrunk ordering with this move"
                       f" passes; with the program so changed, {verdict}"))
    return out


def _kernel_fixes(sc: Scenario, shrunk: list[Event],
                  state_cr4: list[str], checks: Checks) -> list[Fix]:
    out: list[Fix] = []
    mask = sc.machine.pinned_mask
    for name in state_cr4:
        bit = 1 << CR4_BITS[name]
        if not mask & bit:
            continue
        changed = with_kernel(sc, pinned_mask=mask & ~bit)
        if fails(changed, evaluate(changed, shrunk)):
            continue
        verdict = passes_search(changed, checks)
        if verdict:
            out.append(Fix("kernel", f"take {name} out of the pinned CR4"
                           " mask (kernel.pinned_cr4): cr4_init() then no"
                           f" longer applies it", "the shrunk ordering"
                           f" passes; {verdict}"))
    both = ("fred_vc_dispatch", "boot_ghcb_fallback")
    for flags, what in ((both[:1], "give fred_hwexc() a #VC case"
                         " (half of 3645eb7e3915)"),
                        (both[1:], "let __sev_get_ghcb() fall back to the"
                         " boot GHCB (half of 3645eb7e3915)"),
                        (both, "apply 3645eb7e3915: a #VC case in"
                         " fred_hwexc() and the boot-GHCB fallback")):
        if any(sc.machine_args[f] for f in flags) or \
                (len(flags) == 2 and out and out[-1].kind == "kernel"
                 and "half of 3645eb7e3915" in out[-1].text):
            continue
        changed = with_kernel(sc, **{f: True for f in flags})
        if fails(changed, evaluate(changed, shrunk)):
            continue
        verdict = passes_search(changed, checks)
        if verdict:
            out.append(Fix("kernel", what,
                           f"the shrunk ordering passes; {verdict}"))
    if sc.machine_args["paranoid_rdpid"]:
        changed = with_kernel(sc, paranoid_rdpid=False)
        if not fails(changed, evaluate(changed, shrunk)):
            verdict = passes_search(changed, checks)
            if verdict:
                out.append(Fix("kernel", "apply 6a3ea3e68b8a: paranoid_entry"
                               " takes the CPU number from the GDT (LSL),"
                               " not RDPID", "the shrunk ordering passes;"
                               f" {verdict}"))
    return out


def suggest(sc: Scenario, shrunk: list[Event], core: list[Event],
            failing_cr4: list[str], checks: Checks | None = None
            ) -> list[Fix]:
    """Model-checked repairs of the failure `result` of `shrunk`; the
    searches share `checks`' bound (default: FIX_CHECK_S from now)."""
    if not fails(sc, evaluate(sc, shrunk)):
        return []  # nothing to repair in this scenario
    if checks is None:
        checks = Checks(FIX_CHECK_S)
    k = positions(shrunk, core)[-1]
    return _reorders(sc, shrunk, core, k, checks) + \
        _kernel_fixes(sc, shrunk, failing_cr4, checks)
