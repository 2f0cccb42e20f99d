"""A failure report as data: what every format (Markdown, JSON, HTML)
renders. Building it runs the model (state per step, the fault window, the
checked fixes); rendering does not.

JSON schema, version 1 (`fuzzinit_report`: 1): scenario {path, name, title,
sha256, guest, sources}, verdict, signature, seed, summary, failing_cpu,
window {opens, closes (each an event or null), by_trigger {opens,
closes} (that end is the failing trigger's own window, not where the model
stops failing)}, window_only (core events kept only to open a trigger's
window), background [{id, title,
paragraphs, sources}], steps [{n, cpu, op, routine, trigger, state,
in_window}] (each state is the acting CPU's after that event in the
shrunk ordering, which also runs the events between core steps; in_window:
by the event's position there), states_of ("shrunk_events"), chain,
warnings, fixes [{kind, text, checked}], fix_checks {bound_s, searches,
stopped, not_checked, note} (the time bound the fix searches shared and
what it cut; note is "" when it cut nothing),
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
from fuzzinit.report.fixes import FIX_CHECK_S, Checks, Fix, suggest
from fuzzinit.report.knowledge import Topic, load_topic, topics_for
from fuzzinit.report.timeline import positions, states_after
from fuzzinit.report.window import Window, fault_window
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate, signature

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
    # Core events the model does not need, kept because they open the
    # window of a trigger in the core (minimise.core).
    window_only: tuple[Event, ...] = ()
    # What the search that found it reached (--rule-coverage:
    # reach/summary.to_json), or None when it was not measured.
    rule_coverage: dict[str, Any] | None = None
    # The bound the fix checks shared and what it cut (fixes.Checks).
    fix_checks: Checks | None = None

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
                     f" after {opens} until {closes} runs")
            kind = sc.triggers[self.core[-1].trigger].kind \
                if self.core and self.core[-1].trigger >= 0 else ""
            if w.by_trigger[0]:
                text += (f"; it would fail earlier too, but the scenario"
                         f" lets the {kind} fire only after {opens}")
            if w.by_trigger[1]:
                text += (f"; it would fail later too, but the scenario"
                         f" lets the {kind} fire only until {closes}")
            text += "."
        text += (f" The causal core has {len(self.core)} events (of"
                 f" {len(self.shrunk)} in the shrunk ordering): removing any"
                 " one of them changes the verdict")
        if self.window_only:
            names = ", ".join(str(self.label(e)) for e in self.window_only)
            it = "it" if len(self.window_only) == 1 else "them"
            text += (f", except {names}: the model does not need {it}, but"
                     f" without {it} a trigger in the core would fire"
                     " outside the window the scenario gives it")
        return text + "."

    def replay_command(self) -> str:
        return f"fuzzinit replay {self.trace_path}"

    def run_command(self) -> str | None:
        if self.seed is None:
            return None
        mode = " --mode permute" if self.sc.mode == "permute" else ""
        return f"fuzzinit run {self.sc.path} --seed {self.seed}{mode}"


def build(sc: Scenario, core: list[Event], shrunk: list[Event],
          result: Result, seed: int | None, trace_path: str,
          rule_coverage: dict[str, Any] | None = None,
          fix_check_s: float = FIX_CHECK_S) -> Report:
    """Everything a report says about one failure, checked by the model,
    and what the search reached when that was measured; the fix checks
    share `fix_check_s` seconds."""
    states = states_after(sc, core, shrunk if shrunk else None)
    window = None
    if core and shrunk and result.at >= 0:
        window = fault_window(sc, shrunk, core, result)
    ops = [sc.op_text(e.op) for e in core]
    background = [load_topic(t) for t in topics_for(result.chain, ops)]
    fixes: list[Fix] = []
    checks = Checks(fix_check_s)
    if core and result.at >= 0:
        last = states[-1]
        cr4 = list(last["cr4"]) if isinstance(last["cr4"], list) else []
        if last["cr4_fred"]:
            cr4.append("fred")
        fixes = suggest(sc, shrunk, core, cr4, checks)
    marked = in_window(shrunk, core, window)
    steps: list[Step] = []
    for n, (ev, state, inside) in enumerate(zip(core, states, marked,
                                                strict=True), 1):
        routine = sc.routine_of[ev.cpu][ev.slot] if ev.slot >= 0 \
            else "trigger"
        steps.append(Step(n, ev, sc.op_text(ev.op), routine, state, inside))
    return Report(sc, result, signature(result), seed, core, shrunk, steps,
                  window, background, fixes, trace_path,
                  _window_only(sc, core, result), rule_coverage, checks)


def _window_only(sc: Scenario, core: list[Event],
                 result: Result) -> tuple[Event, ...]:
    """Core events whose removal leaves the outcome and chain as they are:
    the ones the core keeps to open a trigger's window."""
    if result.at < 0:
        return ()
    want = (result.outcome, result.chain)
    out = []
    for i, ev in enumerate(core[:-1]):
        r = evaluate(sc, core[:i] + core[i + 1:])
        if (r.outcome, r.chain) == want:
            out.append(ev)
    return tuple(out)


def in_window(shrunk: list[Event], core: list[Event],
              window: Window | None) -> list[bool]:
    """Per core event, whether the machine is inside the fault window
    after it: by its position in the shrunk ordering (the event that
    opens the window is marked, and so is the failing event), so that the
    marks hold whether or not the opening event is in the core."""
    if window is None or not core:
        return [False] * len(core)
    at = positions(shrunk, core)
    return [p + 1 >= window.start for p in at[:-1]] + [True]


def _event(sc: Scenario, ev: Event | None) -> dict[str, Any] | None:
    return None if ev is None else tracefile.event_json(sc, ev)


def _fix_checks(checks: Checks | None) -> dict[str, Any] | None:
    if checks is None:
        return None
    return {"bound_s": checks.bound_s, "searches": checks.searches,
            "stopped": checks.stopped, "not_checked": checks.not_checked,
            "note": checks.note()}


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
                   "closes": _event(sc, w.closes if w else None),
                   "by_trigger": {
                       "opens": bool(w and w.by_trigger[0]),
                       "closes": bool(w and w.by_trigger[1])}},
        "window_only": [tracefile.event_json(sc, e)
                        for e in report.window_only],
        "background": [{"id": t.id, "title": t.title,
                        "paragraphs": list(t.paragraphs),
                        "sources": list(t.sources)}
                       for t in report.background],
        "steps": [{"n": s.n, **tracefile.event_json(sc, s.event),
                   "routine": s.routine, "state": s.state,
                   "in_window": s.in_window} for s in report.steps],
        "states_of": "shrunk_events",
        "chain": r.chain, "warnings": r.warnings,
        "fixes": [{"kind": f.kind, "text": f.text, "checked": f.checked}
                  for f in report.fixes],
        "fix_checks": _fix_checks(report.fix_checks),
        "shrunk_events": [tracefile.event_json(sc, e) for e in report.shrunk],
        "reproduce": {"replay": report.replay_command(),
                      "run": report.run_command(),
                      "trace": report.trace_path},
        **({"rule_coverage": report.rule_coverage}
           if report.rule_coverage is not None else {}),
    }
