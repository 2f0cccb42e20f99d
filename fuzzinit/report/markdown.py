"""A report as plain Markdown that pastes into a commit message or a
mailing-list reply: 72 columns, ASCII, no tables."""

from __future__ import annotations

import textwrap

from fuzzinit.report.document import Report
from fuzzinit.report.timeline import describe

WIDTH = 72


def _wrap(text: str, indent: str = "", first: str | None = None) -> str:
    # "/ " (a routine path made breakable, see breakable()) joins again.
    return textwrap.fill(text, WIDTH, initial_indent=first or indent,
                         subsequent_indent=indent, break_on_hyphens=False,
                         break_long_words=False).replace("/ ", "/")


def breakable(path: str) -> str:
    """A routine path that may wrap after each "/" (start_kernel/
    setup_arch/cpu_init_fred_exceptions is wider than a line can be)."""
    return path.replace("/", "/ ")


def _command(text: str) -> list[str]:
    """A shell command as indented lines of at most WIDTH columns, split
    with backslash continuations so that it still pastes into a shell."""
    lines: list[str] = []
    current = "    "
    for word in text.split():
        if current.strip() and len(current) + 1 + len(word) + 2 > WIDTH:
            lines.append(current + " \\")
            current = "        " + word
        else:
            current = current + (" " if current.strip() else "") + word
    lines.append(current)
    return lines


def render(report: Report) -> str:
    sc, r = report.sc, report.result
    out = [f"# {sc.name}: {r.name}", "", _wrap(sc.title), "",
           _wrap(report.summary())]
    if report.background:
        out += ["", "## Background"]
        for topic in report.background:
            out += ["", f"### {topic.title}", ""]
            for para in topic.paragraphs:
                out += [_wrap(para), ""]
            out.append("Sources:")
            out += [_wrap(s, "  ", "- ") for s in topic.sources]
    out += ["", "## Problem", "",
            _wrap("The causal core, in order, with the acting CPU's state"
                  " after each step as the shrunk ordering had it (the"
                  " events between core steps ran too; [window]: inside"
                  " the fault window):"),
            ""]
    for step in report.steps:
        mark = "  [window]" if step.in_window else ""
        where = "trigger" if step.event.slot < 0 else breakable(step.routine)
        head = f"cpu{step.event.cpu} {step.op}" + \
            (f"  ({where})" if where else "") + mark
        out.append(_wrap(head, "    ", f"{step.n:2d}. "))
        out.append(_wrap(describe(step.state), "        ", "    -> "))
    out += ["", "Escalation:", ""]
    out += [_wrap(link, "  ", "- ") for link in r.chain]
    if r.warnings:
        out += ["", "Warnings:", ""]
        out += [_wrap(w, "  ", "- ") for w in r.warnings]
    out += ["", "## Fix", ""]
    if report.fixes:
        out.append(_wrap("Changes the model confirms remove this failure:"))
        out.append("")
        for fix in report.fixes:
            out.append(_wrap(f"{fix.text}.", "  ", "- "))
            out.append(_wrap(f"checked: {fix.checked}.", "    ", "    "))
    else:
        out.append(_wrap("The model found no single reordering or kernel"
                         " change that removes this failure."))
    note = report.fix_checks.note() if report.fix_checks else ""
    if note:
        out += ["", _wrap(f"{note}.")]
    cov = report.rule_coverage
    if cov is not None:
        out += ["", "## What the search reached", "",
                _wrap(f"{cov['rules_reached']} of {cov['rules_total']} model"
                      f" rules, over {cov['units']} {cov['unit']}:"
                      + "".join(f" {r['id']} ({r['units']})"
                                for r in cov["rules"] if r["units"])
                      + "."), ""]
        out += [_wrap(line, "  ", "- ") for line in cov["trigger_lines"]]
    out += ["", "## Reproduce", ""] + _command(report.replay_command())
    run = report.run_command()
    if run:
        out += _command(run)
    out += ["", _wrap(f"Scenario {sc.path}, sha256 {sc.sha256}, seed"
                      f" {report.seed}, signature {report.signature}.")]
    if sc.sources:
        out += ["", "Sources:", ""]
        out += [_wrap(s, "  ", "- ") for s in sc.sources]
    return "\n".join(out) + "\n"
