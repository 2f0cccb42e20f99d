"""A failure report as data: what every format (Markdown, JSON, HTML)
renders. Building it runs the model (state per step, the fault window, the
checked fixes); rendering does not.

JSON schema, version 1 (`fuzzinit_report`: 1): scenario {path, name, title,
sha256, guest, sources}, verdict, signature, seed, summary, failing_cpu,
window {opens, closes} (each an event or null), background [{id, title,
paragraphs, sources}], steps [{n, cpu, op, routine, trigger, state,
in_window}], chain, warnings, fixes [{kind, text, checked}],
shrunk_events (the whole shrunk ordering), reproduce {replay, run, trace}.
An event is {cpu, op, slot} or {cpu, op, trigger}; a state is
timeline.state_of().
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fuzzinit.model.machine import PLATFORMS
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import trace as tracefile
from fuzzinit.report.fixes import Fix, suggest
from fuzzinit.report.knowledge import Topic, load_topic, topics_for
from fuzzinit.report.timeline import states_after
from fuzzinit.report.window import Window, fault_window
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import signature

SCHEMA = 1


@dataclass(frozen=True)
class Step:
    n: int
    event: Event
    op: str
    routine: str
    state: dict[str, object]
    in_window: bool


@dataclass(frozen=True)
class Report:
    sc: Scenario
    result: Result
    signature: str
    seed: int | None
    core: list[Event]
    shrunk: list[Event]
    steps: list[Step]
    window: Window | None
    background: list[Topic]
    fixes: list[Fix]
    trace_path: str

    @property
    def failing_cpu(self) -> int | None:
        return self.core[-1].cpu if self.core else None

    def label(self, ev: Event | None) -> str | None:
        if ev is None:
            return None
        return f"cpu{ev.cpu} {self.sc.op_text(ev.op)}"

    def summary(self) -> str:
        sc, r = self.sc, self.result
        platform = PLATFORMS[sc.machine.platform]
        guest = "bare metal" if platform == "bare" else f"a {platform} guest"
        who = f"cpu{self.failing_cpu}" if self.failing_cpu is not None \
            else "the machine"
        role = " (the boot CPU)" if self.failing_cpu == 0 else \
            " (an application processor)" if self.failing_cpu else ""
        text = f"On {guest}, {who}{role} ends in {r.name}"
        if r.chain and self.core:
            text += f": {self.label(self.core[-1])}"
            if len(r.chain) > 1:
                text += f" - {r.chain[1]}"
        text += "."
        w = self.window
        if w is not None and (w.opens or w.closes):
            opens = self.label(w.opens) or "the start"
            closes = self.label(w.closes) or "the end of the ordering"
            text += (f" The same event fails the same way anywhere from"
                     f" after {opens} until {closes} runs.")
        text += (f" The causal core has {len(self.core)} events (of"
                 f" {len(self.shrunk)} in the shrunk ordering): removing any"
                 " one of them changes the verdict.")
        return text

    def replay_command(self) -> str:
        return f"fuzzinit replay {self.trace_path}"

    def run_command(self) -> str | None:
        if self.seed is None:
            return None
        mode = " --mode permute" if self.sc.mode == "permute" else ""
        return f"fuzzinit run {self.sc.path} --seed {self.seed}{mode}"


def build(sc: Scenario, core: list[Event], shrunk: list[Event],
          result: Result, seed: int | None, trace_path: str) -> Report:
    """Everything a report says about one failure, checked by the model."""
    states = states_after(sc, core, shrunk if shrunk else None)
    window = None
    if core and shrunk and result.at >= 0:
        window = fault_window(sc, shrunk, core, result)
    ops = [sc.op_text(e.op) for e in core]
    background = [load_topic(t) for t in topics_for(result.chain, ops)]
    fixes: list[Fix] = []
    if core and result.at >= 0:
        last = states[-1]
        cr4 = list(last["cr4"]) if isinstance(last["cr4"], list) else []
        if last["cr4_fred"]:
            cr4.append("fred")
        fixes = suggest(sc, shrunk, core, cr4)
    opened = window is not None and window.opens is not None and \
        window.opens.cpu == (core[-1].cpu if core else -1)
    steps: list[Step] = []
    # A window that opens before anything ran covers the whole core.
    inside = window is not None and window.opens is None
    for n, (ev, state) in enumerate(zip(core, states, strict=True), 1):
        if window is not None and ev == window.opens:
            inside = True
        routine = sc.routine_of[ev.cpu][ev.slot] if ev.slot >= 0 \
            else "trigger"
        steps.append(Step(n, ev, sc.op_text(ev.op), routine, state,
                          inside or (n == len(core) and opened)))
    return Report(sc, result, signature(result), seed, core, shrunk, steps,
                  window, background, fixes, trace_path)


def _event(sc: Scenario, ev: Event | None) -> dict[str, Any] | None:
    return None if ev is None else tracefile.event_json(sc, ev)


def to_json(report: Report) -> dict[str, Any]:
    sc, r = report.sc, report.result
    w = report.window
    return {
        "fuzzinit_report": SCHEMA,
        "scenario": {"path": sc.path, "name": sc.name, "title": sc.title,
                     "sha256": sc.sha256, "guest": sc.guest,
                     "sources": sc.sources},
        "verdict": r.name, "signature": report.signature, "seed": report.seed,
        "summary": report.summary(), "failing_cpu": report.failing_cpu,
        "window": {"opens": _event(sc, w.opens if w else None),
                   "closes": _event(sc, w.closes if w else None)},
        "background": [{"id": t.id, "title": t.title,
                        "paragraphs": list(t.paragraphs),
                        "sources": list(t.sources)}
                       for t in report.background],
        "steps": [{"n": s.n, **tracefile.event_json(sc, s.event),
                   "routine": s.routine, "state": s.state,
                   "in_window": s.in_window} for s in report.steps],
        "chain": r.chain, "warnings": r.warnings,
        "fixes": [{"kind": f.kind, "text": f.text, "checked": f.checked}
                  for f in report.fixes],
        "shrunk_events": [tracefile.event_json(sc, e) for e in report.shrunk],
        "reproduce": {"replay": report.replay_command(),
                      "run": report.run_command(),
                      "trace": report.trace_path},
    }
