"""A failure as plain Markdown that pastes into a commit message (72 cols)."""

from __future__ import annotations

import textwrap

from fuzzinit.model.machine import PLATFORMS
from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report.timeline import states_after
from fuzzinit.scenario.load import Scenario

WIDTH = 72


def _wrap(text: str, indent: str = "", first: str | None = None) -> str:
    return textwrap.fill(text, WIDTH, initial_indent=first or indent,
                         subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False)


def event_label(sc: Scenario, ev: Event) -> str:
    where = sc.routine_of[ev.cpu][ev.slot] if ev.slot >= 0 else "trigger"
    text = f"cpu{ev.cpu} {sc.op_text(ev.op)}"
    return f"{text}  ({where})" if where else text


def render(sc: Scenario, core: list[Event], result: Result, shrunk_len: int,
           seed: int | None, signature: str, trace_path: str) -> str:
    failing = core[result.at] if 0 <= result.at < len(core) else None
    who = f"cpu{failing.cpu}" if failing else "the machine"
    lines = [f"# {sc.name}: {result.name}", ""]
    lines.append(_wrap(sc.title))
    lines.append("")
    summary = (f"On a {PLATFORMS[sc.machine.platform]} platform {who} ends in"
               f" {result.name}. The causal core below has {len(core)}"
               f" events (of {shrunk_len} in the shrunk ordering): removing"
               " any one of them changes the verdict.")
    lines += [_wrap(summary), "", "## Problem: the causal core", ""]
    states = states_after(sc, core)
    for i, (ev, state) in enumerate(zip(core, states, strict=True), 1):
        lines.append(_wrap(event_label(sc, ev), "    ", f"{i:2d}. "))
        lines.append(_wrap(state, "        ", "    -> "))
    lines += ["", "## Chain", ""]
    for link in result.chain:
        lines.append(_wrap(link, "  ", "- "))
    if result.warnings:
        lines += ["", "## Warnings", ""]
        lines += [_wrap(w, "  ", "- ") for w in result.warnings]
    lines += ["", "## Reproduce", "",
              f"    fuzzinit replay {trace_path}"]
    if seed is not None:
        lines.append(f"    fuzzinit run {sc.path} --seed {seed}")
    lines += ["", _wrap(f"Scenario {sc.path}, sha256 {sc.sha256[:16]},"
                        f" signature {signature}.")]
    if sc.sources:
        lines += ["", "Sources:", ""]
        lines += [_wrap(s, "  ", "- ") for s in sc.sources]
    return "\n".join(lines) + "\n"
