"""Rule coverage as the commands print it: a short table, a verdict note
and a JSON object."""

from __future__ import annotations

from typing import Any

from fuzzinit.reach.result import DIMENSIONS, Reach, TriggerReach


def verdict_note(reach: Reach, where: str = "") -> str:
    """What a clean verdict must say about triggers that never fired
    ("" when every trigger fired); `where` names the search ("in AFTER
    ")."""
    never = reach.never_fired()
    if not never:
        return ""
    names = ", ".join(t.label for t in never)
    return (f"; {where}{len(never)} of {len(reach.triggers)} triggers"
            " never fired"
            f" ({names}): their windows were never tested")


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} ({v})" for k, v in sorted(
        counter.items(), key=lambda kv: (-kv[1], kv[0])))


def trigger_line(t: TriggerReach, unit: str) -> str:
    if not t.fired:
        opened = "; ".join(f"{dim} {', '.join(sorted(t.open_states[dim]))}"
                           for dim in DIMENSIONS if dim in t.open_states)
        if not opened:
            return f"{t.label}: never fired: its window never opened"
        why = (f"; the model ruled out all {t.ruled_out} firings there"
               " (they cannot happen)" if t.ruled_out else "")
        return f"{t.label}: never fired; its window was open with {opened}{why}"
    states = "; ".join(f"{dim}: {_counts(t.states.get(dim, {}))}"
                       for dim in DIMENSIONS)
    times = "once" if t.fired == 1 else f"{t.fired} times"
    where = unit[:-1] if t.units == 1 else unit
    line = (f"{t.label}: fired {times} in {t.units} {where}"
            f" ({states}; outcome: {_counts(t.outcomes)})")
    never = t.never_with()
    if never:
        line += f"; never with {', '.join(never)} (its window was open there)"
    return line


def lines(reach: Reach) -> list[str]:
    reached = reach.reached()
    out = [f"rule coverage of {reach.scenario} (interpreted model,"
           f" {reach.units} {reach.unit}): {len(reached)} of"
           f" {len(reach.rules)} rules reached"]
    if reached:
        width = max(10, len(reach.unit))
        out.append(f"  {'rule':28s} {reach.unit:>{width}s}  statements run")
        for r in reached:
            name = f"{r.rule.number:2d} {r.rule.id}"
            out.append(f"  {name:28s} {r.units:{width}d}"
                       f"  {r.hit}/{r.statements}")
    unreached = reach.unreached()
    if unreached:
        out.append("  not reached: " + ", ".join(
            f"{r.rule.number} {r.rule.id}" for r in unreached))
    if reach.triggers:
        out.append("  triggers:")
        out += [f"    {trigger_line(t, reach.unit)}" for t in reach.triggers]
    return out


def to_json(reach: Reach) -> dict[str, Any]:
    return {
        "scenario": reach.scenario,
        "unit": reach.unit, "units": reach.units,
        "rules_reached": len(reach.reached()), "rules_total": len(reach.rules),
        "rules": [{"id": r.rule.id, "number": r.rule.number,
                   "title": r.rule.title, "units": r.units,
                   "statements": r.statements, "statements_run": r.hit}
                  for r in reach.rules],
        "not_reached": [r.rule.id for r in reach.unreached()],
        "triggers": [{"trigger": t.label, "index": t.index, "fired": t.fired,
                      "units": t.units, "ruled_out": t.ruled_out,
                      "window_open_with": {d: sorted(t.open_states[d])
                                           for d in DIMENSIONS
                                           if d in t.open_states},
                      "states": {d: dict(t.states.get(d, {}))
                                 for d in DIMENSIONS},
                      "outcomes": dict(t.outcomes),
                      "never_with": t.never_with()}
                     for t in reach.triggers],
        "triggers_never_fired": [t.label for t in reach.never_fired()],
        "trigger_lines": [trigger_line(t, reach.unit)
                          for t in reach.triggers],
    }
