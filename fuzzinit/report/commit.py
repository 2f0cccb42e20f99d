"""A report as a git commit message: `fuzzinit report --format commit`.

What git keeps decides the shape. `git commit`'s default cleanup drops
every line that starts with "#" (Documentation/git-commit.txt, --cleanup),
so there are no Markdown headings and no wrapped line may begin with
"#VC" or "#PF": a word starting with "#" is never put at the start of a
line. Consecutive blank lines and trailing spaces would be squeezed, so
there are none. The body is wrapped at 72 columns; lists are indented.

Trailers come last, in one paragraph, in the kernel's form
(Documentation/process/submitting-patches.rst, "Describe your changes"):
`Fixes: <12-char sha> ("<subject>")` names the commit that introduced the
bug and `Link: <url>` a discussion. They are written only from what the
scenario cites - a `source` entry "fixes: <sha> <subject>", a URL in
`source` or `notes` - and, as that document asks, never wrapped. A
`source` entry "fix: <sha> <subject>" names the commit that fixed the bug
upstream: that is not a Fixes: tag, so it is quoted in the body.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from fuzzinit.model.machine import PLATFORMS
from fuzzinit.report.document import Report
from fuzzinit.report.markdown import breakable
from fuzzinit.report.timeline import describe
from fuzzinit.verdict import fails

WIDTH = 72
SHA_LEN = 12
_CITED = re.compile(r"^(fixes|fix):\s*([0-9a-f]{12,40})\s+(\S.*?)\s*$", re.I)
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


def _fill(text: str, indent: str = "", first: str | None = None) -> list[str]:
    # A space before "#" becomes a NUL so that textwrap never breaks there:
    # git would strip a line starting with "#VC".
    glued = re.sub(r" (?=#)", "\0", " ".join(text.split()))
    lines = textwrap.wrap(glued, WIDTH, initial_indent=first or indent,
                          subsequent_indent=indent, break_on_hyphens=False,
                          break_long_words=False)
    return [line.replace("\0", " ").replace("/ ", "/") for line in lines]


def cited_commits(report: Report, kind: str) -> list[tuple[str, str]]:
    """(sha, subject) of the scenario's `source` entries "<kind>: <sha>
    <subject>" (kind "fixes" or "fix"), the sha cut to 12 characters."""
    out = []
    for entry in report.sc.sources:
        m = _CITED.match(entry)
        if m and m.group(1).lower() == kind:
            out.append((m.group(2).lower()[:SHA_LEN], m.group(3)))
    return out


def links(report: Report) -> list[str]:
    """The URLs the scenario cites in `source` and `notes`, once each, in
    the order they appear."""
    found: list[str] = []
    for text in [*report.sc.sources, report.sc.notes]:
        for url in _URL.findall(text):
            url = url.rstrip(".,;:")
            if url not in found:
                found.append(url)
    return found


def trailers(report: Report) -> list[str]:
    """Fixes:/Link: from the scenario's citations - none when the ordering
    no longer fails: the message then reports no bug to tag."""
    if not fails(report.sc, report.result):
        return []
    fixes = [f'Fixes: {sha} ("{subject}")'
             for sha, subject in cited_commits(report, "fixes")]
    return fixes + [f"Link: {url}" for url in links(report)]


def subject(report: Report) -> str:
    """"<scenario>: <outcome> when <failing event> runs after <the event
    that opens the window>", shortened to fit 72 columns."""
    head = f"{report.sc.name}: {report.result.name}"
    candidates = []
    if not fails(report.sc, report.result):
        # A trace replayed against a fixed scenario: say so, not "when".
        candidates.append(f"{head}: the recorded ordering no longer fails")
    elif report.core:
        failing = report.core[-1]
        when = f"{head} when {report.label(failing)} runs"
        w = report.window
        if w is not None and w.opens is not None:
            candidates.append(f"{when} after {report.label(w.opens)}")
            if w.opens.cpu == failing.cpu:
                candidates.append(
                    f"{when} after {report.sc.op_text(w.opens.op)}")
        candidates.append(when)
    candidates.append(head)
    for text in candidates:
        if len(text) <= WIDTH:
            return text
    return head[:WIDTH]


def opening(report: Report) -> str:
    """Where it fails and what the failing event does: the facts of the
    subject line as a sentence (the window and the core follow)."""
    platform = PLATFORMS[report.sc.machine.platform]
    guest = "bare metal" if platform == "bare" else f"a {platform} guest"
    text = f"On {guest}, "
    if not fails(report.sc, report.result):
        return text + f"the recorded ordering ends in {report.result.name}."
    cpu = report.failing_cpu
    if cpu is None:
        text += "the machine"
    else:
        text += f"cpu{cpu}" + (" (the boot CPU)" if cpu == 0 else
                               " (an application processor)")
    text += f" ends in {report.result.name}"
    chain = report.result.chain
    if report.core:
        text += f": {report.label(report.core[-1])}"
        if len(chain) > 1:
            text += f" - {chain[1]}"
    return text + "."


def _passing(report: Report) -> list[str]:
    out = _fill(f"Its {len(report.core)} events, in order; this scenario"
                f" does not count {report.result.name} as a failure:") + [""]
    for step in report.steps:
        out += _fill(f"cpu{step.event.cpu} {step.op}", "       ",
                     f"  {step.n:3d}. ")
    return out


def _core(report: Report) -> list[str]:
    if not fails(report.sc, report.result):
        return _passing(report)
    out = _fill(f"The causal core, {len(report.core)} of the"
                f" {len(report.shrunk)} events of the shrunk ordering:"
                " removing any one of them changes the verdict ([window]:"
                " inside the fault window).")
    out.append("")
    for step in report.steps:
        where = "trigger" if step.event.slot < 0 else breakable(step.routine)
        text = f"cpu{step.event.cpu} {step.op}" + \
            (f" ({where})" if where else "") + \
            (" [window]" if step.in_window else "")
        out += _fill(text, "       ", f"  {step.n:3d}. ")
    if report.steps:
        last = report.steps[-1]
        out += [""] + _fill(f"State of cpu{last.event.cpu} at the failure:"
                            f" {describe(last.state)}.")
    return out


def _window(report: Report) -> list[str]:
    w = report.window
    if w is None or (w.opens is None and w.closes is None):
        return []
    opens = report.label(w.opens) or "the start"
    closes = report.label(w.closes) or "the end of the ordering"
    inside = [s.n for s in report.steps if s.in_window]
    steps = ""
    if inside:
        span = f"{inside[0]}" if len(inside) == 1 else \
            f"{inside[0]}-{inside[-1]}"
        steps = f" (core step{'s' if len(inside) > 1 else ''} {span})"
    return _fill(f"Fault window: the failing event fails the same way"
                 f" anywhere from after {opens} until {closes} runs{steps}.")


def _fixes(report: Report) -> list[str]:
    if not fails(report.sc, report.result):
        out = []
    elif not report.fixes:
        out = _fill("The model found no single reordering or kernel change"
                    " that removes this failure.")
    else:
        out = _fill("Checked fix (the model confirms each removes this"
                    " failure):") + [""]
        for fix in report.fixes:
            out += _fill(f"{fix.text}.", "    ", "  - ")
            out += _fill(f"checked: {fix.checked}.", "    ")
    for sha, title in cited_commits(report, "fix"):
        out += [""] + _fill(f'Fixed upstream by {sha} ("{title}").')
    return out


def render(report: Report) -> str:
    sc, r = report.sc, report.result
    platform = PLATFORMS[sc.machine.platform]
    paragraphs: list[list[str]] = [
        [subject(report)],
        _fill(sc.title + ("" if sc.title.endswith(".") else ".")),
        _fill(opening(report)),
        _core(report),
        (_fill("Chain:") + [""] + [line for link in r.chain
                                   for line in _fill(link, "    ", "  - ")]
         if r.chain else []),
        _window(report),
        _fixes(report),
    ]
    if r.warnings:
        paragraphs.append(_fill("Warnings:") + [""] + [
            line for w in r.warnings for line in _fill(w, "    ", "  - ")])
    seed = f", seed {report.seed}" if report.seed is not None else ""
    verb = "Found" if fails(sc, r) else "Replayed"
    paragraphs.append(_fill(
        f"{verb} by fuzzinit on {Path(sc.path).name} ({platform}{seed},"
        f" signature {report.signature})."))
    tags = trailers(report)
    if tags:
        paragraphs.append(tags)
    # An empty paragraph or a trailing blank line would leave two blank
    # lines in a row, which git squeezes into one.
    kept = ["\n".join(p).strip("\n") for p in paragraphs]
    lines = "\n\n".join(p for p in kept if p).splitlines()
    # A title or name that itself starts with "#" is indented by one space
    # rather than lost to git's comment stripping.
    return "\n".join(" " + line if line.startswith("#") else line
                     for line in lines) + "\n"
