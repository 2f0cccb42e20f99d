"""The explore, windows and verify-fix commands."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from fuzzinit.errors import FuzzinitError
from fuzzinit.explore.bfs import (
    BUDGET,
    COMPLETE,
    FAILED,
    INTERRUPTED,
    Exploration,
    explore,
)
from fuzzinit.explore.windows import (
    Point,
    allowed,
    survivable_order,
    timeline,
    windows,
)
from fuzzinit.explore.windows import closed as windows_closed
from fuzzinit.progress import Progress
from fuzzinit.reach.command import probe_for
from fuzzinit.reach.result import Reach
from fuzzinit.reach.summary import lines as reach_lines
from fuzzinit.reach.summary import to_json as reach_json
from fuzzinit.reach.summary import verdict_note
from fuzzinit.report import trace as tracefile
from fuzzinit.scenario.load import Scenario, load

# Exit status of explore/verify-fix when the budget ran out: not 0, which
# would claim "no failing ordering", and not 1 (none was found).
EXIT_BUDGET = 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as every other command


def run_command(args: argparse.Namespace) -> int:
    if args.command == "windows":
        return _windows(args)
    if args.max_triggers is not None and args.max_triggers < 0:
        raise FuzzinitError(f"--max-triggers {args.max_triggers}: expected 0"
                            " or more")
    if args.budget < 1:
        raise FuzzinitError(f"--budget {args.budget}: expected at least 1"
                            " state")
    if args.command == "explore":
        sc = load(args.model)
        if args.mode:
            sc = dataclasses.replace(sc, mode=args.mode)
        bar = Progress(not args.json and sys.stderr.isatty())
        probe = probe_for(args, sc, "expanded states")
        ex = explore(sc, _triggers(args, sc), args.budget,
                     por=not args.no_por, symmetry=not args.no_symmetry,
                     on_progress=bar.show, interruptible=True, probe=probe,
                     memory=args.memory, hash_compact=args.hash_compact)
        bar.done()
        reach = probe.result() if probe is not None else None
        out = _explore_json(sc, ex, args, reach)
        if args.json:
            print(json.dumps(out))
        else:
            for line in _explore_lines(sc, ex, reach):
                print(line)
        return _status(ex)
    return _verify_fix(args)


def _triggers(args: argparse.Namespace, sc: Scenario) -> int:
    """--max-triggers, by default every trigger the scenario allows - so
    that "complete" means complete."""
    if args.max_triggers is not None:
        return int(args.max_triggers)
    return sum(t.count for t in sc.triggers)


def _status(ex: Exploration) -> int:
    if ex.verdict == COMPLETE:
        return 0
    if ex.verdict == INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_BUDGET if ex.verdict == BUDGET else 1


def _explore_json(sc: Scenario, ex: Exploration, args: argparse.Namespace,
                  reach: Reach | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "scenario": sc.path, "name": sc.name, "mode": sc.mode,
        "result": ex.verdict.replace(" ", "_"), "states": ex.states,
        "transitions": ex.transitions, "elapsed_s": round(ex.elapsed_s, 4),
        "states_per_s": round(ex.states_per_s, 1),
        "max_triggers": _triggers(args, sc), "budget": args.budget,
        "memory": args.memory, "limit": ex.limit or None,
        "hash_compact": ex.hash_compact,
        "miss_probability": ex.miss_probability if ex.hash_compact
        else None,
        "por": not getattr(args, "no_por", False),
        "symmetry": not getattr(args, "no_symmetry", False),
        "shortest": ex.shortest if ex.ordering is not None else None,
        "verdict": "ok" if ex.verdict == COMPLETE else None,
        "events": [], "chain": []}
    if ex.ordering is not None and ex.result is not None:
        out.update(verdict=ex.result.name, chain=ex.result.chain,
                   events=[tracefile.event_json(sc, e) for e in ex.ordering])
    if reach is not None:
        out["rule_coverage"] = reach_json(reach)
    return out


def _explore_lines(sc: Scenario, ex: Exploration,
                   reach: Reach | None = None) -> list[str]:
    """The verdict (with the triggers that never fired, when measured)
    and, with a Reach, the rule coverage table after it."""
    lines = _verdict_lines(sc, ex, verdict_note(reach) if reach else "")
    return lines + (reach_lines(reach) if reach is not None else [])


def _verdict_lines(sc: Scenario, ex: Exploration, note: str) -> list[str]:
    stats = (f"{ex.states} states, {ex.transitions} transitions,"
             f" {ex.states_per_s:,.0f} states/s")
    if ex.hash_compact:
        stats += (f"; hash compaction: probability that a state was missed"
                  f" <= {ex.miss_probability:.1e}")
    if ex.verdict == COMPLETE:
        return [f"{sc.name}: complete: no failing ordering in {stats}{note}"]
    if ex.verdict == BUDGET:
        which = "memory budget (--memory)" if ex.limit == "memory" \
            else "budget"
        return [f"{sc.name}: {which} exhausted after {stats}: no failing"
                f" ordering found so far{note}"]
    if ex.verdict == INTERRUPTED:
        return [f"{sc.name}: interrupted after {stats}: no failing"
                f" ordering found so far{note}"]
    assert ex.ordering is not None and ex.result is not None
    which = "a shortest" if ex.shortest else "a (not proven shortest)"
    lines = [f"{sc.name}: {ex.result.name}: {which} failing ordering"
             f" ({len(ex.ordering)} events) after {stats}"]
    if ex.reduced_states:
        lines.append(f"  (found in {ex.reduced_states} states with"
                     " partial-order reduction, then searched again"
                     " without it for a shortest one)")
    lines += [f"  {i:2d}. cpu{e.cpu} {sc.op_text(e.op)}"
              + ("  (trigger)" if e.slot < 0 else "")
              for i, e in enumerate(ex.ordering, 1)]
    lines.append("chain:")
    lines += [f"  {link}" for link in ex.result.chain]
    return lines


def _windows(args: argparse.Namespace) -> int:
    sc = load(args.model)
    points = windows(sc)
    _, skipped = survivable_order(sc)
    if args.json:
        print(json.dumps({
            "scenario": sc.path, "name": sc.name,
            "failing_as_written": [tracefile.event_json(sc, e)
                                   for e in skipped],
            "points": [dataclasses.asdict(p) for p in points],
            "timeline": timeline(points)}))
    else:
        print(f"{sc.name}: where a trigger is fatal (programs as written)")
        for e in skipped:
            print(f"  (cpu{e.cpu} {sc.op_text(e.op)} fails where it stands;"
                  " left out to map the rest)")
        for line in timeline(points) or ["no fatal point"]:
            print(f"  {line}")
    return 1 if any(p.outcome != "ok" for p in points) or skipped else 0


def _closed_windows(before: Scenario,
                    after: Scenario) -> tuple[list[Point], list[Point]]:
    """The fatal points of BEFORE that AFTER closes (windows.closed),
    split into those where BEFORE lets a trigger of that kind fire
    (windows.allowed) and what-ifs outside every trigger window."""
    shut = windows_closed(before, windows(before), after, windows(after))
    return ([p for p in shut if allowed(before, p)],
            [p for p in shut if not allowed(before, p)])


def _where(sc: Scenario, p: Point) -> str:
    """"after OP", with the slot when OP occurs twice in the program."""
    texts = [sc.op_text(op) for op in sc.programs[p.cpu]]
    if p.after and texts.count(p.after_op) > 1:
        return f"after {p.after_op} (slot {p.after - 1})"
    return f"after {p.after_op}"


def _closed_json(points: list[Point]) -> list[dict[str, Any]]:
    # A restart or parked point says so (rule 30); others keep the old keys.
    return [{"cpu": p.cpu, "after": p.after_op, "slot": p.after - 1,
             **({"restart": True} if p.restart else {}),
             **({"parked": True} if p.parked else {}), "kind": p.kind}
            for p in points]


def _verify_fix(args: argparse.Namespace) -> int:
    before, after = load(args.before), load(args.after)
    probe_before = probe_for(args, before, "expanded states")
    probe_after = probe_for(args, after, "expanded states")
    ex_before = explore(before, _triggers(args, before), args.budget,
                        interruptible=True, probe=probe_before,
                        memory=args.memory, hash_compact=args.hash_compact)
    if ex_before.verdict == INTERRUPTED:
        ex_after = Exploration(INTERRUPTED, 0, 0, 0.0, None, None)
    else:
        ex_after = explore(after, _triggers(args, after), args.budget,
                           interruptible=True, probe=probe_after,
                           memory=args.memory,
                           hash_compact=args.hash_compact)
    reach_before = probe_before.result() if probe_before else None
    reach_after = probe_after.result() if probe_after else None
    closed, what_if = _closed_windows(before, after)
    ok = ex_before.verdict == FAILED and ex_after.verdict == COMPLETE
    if args.json:
        print(json.dumps({
            "before": _explore_json(before, ex_before, args, reach_before),
            "after": _explore_json(after, ex_after, args, reach_after),
            "closed_windows": _closed_json(closed),
            "closed_outside_trigger_windows": _closed_json(what_if),
            "verified": ok}))
    else:
        print("before:")
        print("\n".join("  " + x for x in _explore_lines(before, ex_before,
                                                          reach_before)))
        print("after:")
        print("\n".join("  " + x for x in _explore_lines(after, ex_after,
                                                          reach_after)))
        if closed:
            print("windows closed by the fix:")
            for p in closed:
                print(f"  cpu{p.cpu} {_where(before, p)}: {p.kind}")
        if what_if:
            print("also closed, where BEFORE lets no such trigger fire"
                  " (what-if):")
            for p in what_if:
                print(f"  cpu{p.cpu} {_where(before, p)}: {p.kind}")
        note = verdict_note(reach_after, "in AFTER ") if reach_after else ""
        if ex_after.hash_compact:
            note += ("; with hash compaction: AFTER may have missed a state"
                     f" with probability <= {ex_after.miss_probability:.1e}")
        print("fix verified: BEFORE fails, AFTER explores complete and clean"
              + note
              if ok else "fix NOT verified")
    if ok:
        return 0
    if INTERRUPTED in (ex_before.verdict, ex_after.verdict):
        return EXIT_INTERRUPTED
    if ex_before.verdict == COMPLETE or ex_after.verdict not in (COMPLETE,
                                                               BUDGET):
        return 1  # decided: BEFORE cannot fail, or AFTER does
    # A budget ran out where the answer was still open: inconclusive.
    return EXIT_BUDGET
