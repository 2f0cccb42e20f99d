"""Trace files: a replayable ordering as JSON.

    {"fuzzinit_trace": 1, "scenario": "models/x.toml",
     "scenario_sha256": "...", "seed": 1,
     "events": [{"cpu": 1, "op": "cr4_init", "slot": 1}, ...]}

`slot` (program index) and `trigger` (trigger kind) are hints; `cpu` and
`op` are what replay needs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fuzzinit.errors import TraceError
from fuzzinit.orderings.schedule import Event
from fuzzinit.scenario.load import Scenario

FORMAT = 1


def event_json(sc: Scenario, ev: Event) -> dict[str, Any]:
    out: dict[str, Any] = {"cpu": ev.cpu, "op": sc.op_text(ev.op)}
    if ev.slot >= 0:
        out["slot"] = ev.slot
    else:
        out["trigger"] = sc.triggers[ev.trigger].kind if ev.trigger >= 0 \
            else sc.op_text(ev.op)
    return out


def to_json(sc: Scenario, events: list[Event], seed: int | None,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "fuzzinit_trace": FORMAT, "scenario": sc.path,
        "scenario_name": sc.name, "scenario_sha256": sc.sha256,
        "mode": sc.mode, "seed": seed,
        "events": [event_json(sc, e) for e in events],
    }
    if extra:
        doc.update(extra)
    return doc


def read(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise TraceError(f"{path}: not UTF-8 text (byte {exc.start}); fix:"
                         " pass a trace written by fuzzinit run") from exc
    except json.JSONDecodeError as exc:
        raise TraceError(f"{path}:{exc.lineno}: not JSON: {exc.msg}; fix:"
                         " pass a trace written by fuzzinit run") from exc
    except RecursionError as exc:
        raise TraceError(f"{path}: JSON nested too deeply to read; expected"
                         " a fuzzinit trace (a few levels deep)") from exc
    if isinstance(doc, dict) and doc.get("fuzzinit_report") is not None:
        doc = _from_report(doc)
    elif isinstance(doc, dict) and "fuzzinit_trace" in doc:
        version = doc["fuzzinit_trace"]
        if type(version) is not int or version != FORMAT:
            raise TraceError(f"{path}: trace format {version!r} is not"
                             f" supported; expected \"fuzzinit_trace\":"
                             f" {FORMAT}; fix: write the trace again with"
                             " this fuzzinit (fuzzinit run or replay)")
    if not isinstance(doc, dict) or not isinstance(doc.get("events"), list) \
            or not isinstance(doc.get("scenario"), str):
        raise TraceError(f"{path}: not a fuzzinit trace; expected an object"
                         " with 'scenario' and 'events'")
    return doc


def _from_report(doc: dict[str, Any]) -> Any:
    """A JSON report (fuzzinit_report) read as a trace of its core."""
    scenario = doc.get("scenario")
    steps = doc.get("steps")
    if not isinstance(scenario, dict) or not isinstance(steps, list):
        return None
    keys = ("cpu", "op", "slot", "trigger")
    return {"scenario": scenario.get("path"),
            "scenario_sha256": scenario.get("sha256"),
            "seed": doc.get("seed"), "verdict": doc.get("verdict"),
            "shrunk_events": doc.get("shrunk_events"),
            "events": [{k: s[k] for k in keys if k in s} for s in steps
                       if isinstance(s, dict)]}


def events_of(sc: Scenario, doc: dict[str, Any], path: str) -> list[Event]:
    """Map a trace's events onto the scenario's programs and triggers."""
    if not doc["events"]:
        raise TraceError(f"{path}: the trace has no events; expected at"
                         " least one; fix: replay a trace written by"
                         " fuzzinit run")
    out: list[Event] = []
    used = [[False] * len(p) for p in sc.programs]
    for i, raw in enumerate(doc["events"]):
        if not isinstance(raw, dict) or not isinstance(raw.get("cpu"), int) \
                or not isinstance(raw.get("op"), str):
            raise TraceError(f"{path}: event {i}: expected"
                             ' {"cpu": N, "op": "..."}')
        cpu, text = raw["cpu"], " ".join(raw["op"].split())
        if not 0 <= cpu < sc.ncpu:
            raise TraceError(f"{path}: event {i}: {sc.path} has no cpu {cpu}")
        op = sc.op_index.get(text)
        program = sc.programs[cpu]
        if "trigger" not in raw and op is not None:
            # The recorded slot if it still holds this op, else the first
            # unused slot that does (permutation mode runs ops out of order).
            hint = raw.get("slot")
            slot = hint if isinstance(hint, int) and 0 <= hint < len(program) \
                and program[hint] == op and not used[cpu][hint] else \
                next((s for s in range(len(program))
                      if program[s] == op and not used[cpu][s]), -1)
            if slot >= 0:
                used[cpu][slot] = True
                out.append(Event(cpu, op, slot))
                continue
        trig = next((t for t, spec in enumerate(sc.triggers)
                     if spec.cpu == cpu and spec.kind == text), -1)
        if op is None or trig < 0:
            raise TraceError(
                f"{path}: event {i}: cpu{cpu} op {text!r} is not in"
                f" {sc.path} (neither an unused op of cpu{cpu}'s program nor"
                " one of its triggers); fix: replay against the scenario the"
                " trace was made from")
        out.append(Event(cpu, op, -1, trig))
    return out


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
