"""A report as one self-contained HTML file: no scripts, no fonts, no
network. The timeline is SVG, in rows of at most PER_ROW columns so that
it fits the page (and scales down in a narrower window): in each row a
swim lane for each CPU with a box there, as tall as its tallest box; the
fault window shaded on the failing CPU's lane, triggers and the failing
event marked, and the escalation drawn step by step after it, each step's
text in full. CPUs with no event in the causal core get no lane, only a
note under the timeline."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import Any

from fuzzinit.report.document import Report
from fuzzinit.report.timeline import describe

COL = 150        # px per timeline column
PER_ROW = 6      # columns per row: LEFT + 6 * COL + PAD fits the page
LEFT = 60        # lane labels
PAD = 8          # above and below the boxes of a lane
LINE = 13        # px per line of box text
CHARS = 22       # characters per line of box text (11px sans in COL - 14)
STYLE = """
body{font:14px/1.45 sans-serif;margin:2em auto;max-width:1100px;color:#222;
overflow-wrap:break-word}
h1{font-size:1.4em} h2{font-size:1.15em;border-bottom:1px solid #ccc}
code,pre{font:12px monospace} pre,.src{overflow-wrap:anywhere}
pre{white-space:pre-wrap}
table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
.src{color:#555;font-size:12px}
.timeline svg{display:block;box-sizing:border-box;max-width:100%;height:auto;
margin:0 0 6px;border:1px solid #ccc;background:#fff}
.lane rect.bg{fill:#f6f6f6} .lane text.name{font:bold 13px sans-serif}
.ev rect{fill:#dbe9ff;stroke:#4a78c2} .ev text{font:11px sans-serif}
.ev.trigger rect{fill:#fff3c4;stroke:#c29a00}
.ev.failing rect{fill:#ffd0d0;stroke:#c00;stroke-width:2}
.ev.ghost rect{fill:#fff;stroke:#888;stroke-dasharray:4 3}
.window{fill:#ff9d9d;fill-opacity:.28}
.esc rect{fill:#fff;stroke:#c00} .esc text{font:10px sans-serif;fill:#900}
"""


def _lines(text: str, width: int = CHARS) -> list[str]:
    """Box text in lines of at most `width` characters; a longer word is
    cut into pieces. Nothing is dropped: the box grows instead."""
    lines: list[str] = []
    cur = ""
    for word in text.split():
        pieces = [word[i:i + width] for i in range(0, len(word), width)]
        for piece in pieces:
            if cur and len(cur) + 1 + len(piece) > width:
                lines.append(cur)
                cur = piece
            else:
                cur = f"{cur} {piece}".strip()
    if cur:
        lines.append(cur)
    return lines


def _box_height(text: str) -> int:
    return max(2, len(_lines(text))) * LINE + 12


@dataclass(frozen=True)
class _Cell:
    col: int
    cpu: int
    text: str
    cls: str
    tip: str


def _box(x: int, y: int, cell: _Cell, h: int) -> str:
    out = [f'<g class="{cell.cls}" data-cpu="{cell.cpu}">'
           f"<title>{escape(cell.tip)}</title>",
           f'<rect x="{x}" y="{y}" width="{COL - 14}" height="{h}" rx="4"/>']
    for i, line in enumerate(_lines(cell.text)):
        out.append(f'<text x="{x + 5}" y="{y + 15 + LINE * i}">'
                   f"{escape(line)}</text>")
    out.append("</g>")
    return "".join(out)


def _cells(report: Report) -> tuple[list[_Cell], range]:
    """Every box of the timeline in column order, and the columns the
    fault window covers on the failing CPU's lane."""
    sc, steps, w = report.sc, report.steps, report.window
    ghost = w.closes if w is not None and w.closes is not None and \
        w.closes not in report.core else None
    cells: list[_Cell] = []
    for s in steps:
        cls = "ev"
        if s.event.slot < 0:
            cls += " trigger"
        if s.n == len(steps):
            cls += " failing"
        label = f"{s.n}. {s.op}" + (" (trigger)" if s.event.slot < 0 else "")
        cells.append(_Cell(s.n - 1, s.event.cpu, label, cls,
                           describe(s.state)))
    if ghost is not None:
        cells.append(_Cell(len(cells), ghost.cpu,
                           f"{sc.op_text(ghost.op)} (not yet run)",
                           "ev ghost", "closes the fault window"))
    window = range(0)
    failing = report.failing_cpu
    if failing is not None:
        if w is not None:
            first = next((s.n for s in steps if s.in_window), len(steps))
            window = range(first - 1, len(cells))
        cells += [_Cell(col, failing, link, "esc", link) for col, link
                  in enumerate(report.result.chain[1:], len(cells))]
    return cells, window


def _row_svg(report: Report, row: list[_Cell], window: range) -> str:
    """One row of the timeline: a lane for each CPU that has a box in it
    (or the fault window), each as tall as its tallest box."""
    failing = report.failing_cpu
    first_col = row[0].col
    cols = range(first_col, first_col + PER_ROW)
    shaded = [c for c in window if c in cols]
    cpus = sorted({c.cpu for c in row} |
                  ({failing} if shaded and failing is not None else set()))
    lane_h = {cpu: max([_box_height(c.text) for c in row if c.cpu == cpu],
                       default=2 * LINE + 12) + 2 * PAD for cpu in cpus}
    top: dict[int, int] = {}
    y = 0
    for cpu in cpus:
        top[cpu] = y
        y += lane_h[cpu]
    width = LEFT + COL * (row[-1].col - first_col + 1) + PAD
    height = y
    name = escape(report.sc.name)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}"'
             f' height="{height}" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="timeline of {name}, columns'
             f' {first_col + 1}-{row[-1].col + 1}">']
    for cpu in cpus:
        parts.append(f'<g class="lane" data-cpu="{cpu}">'
                     f'<rect class="bg" x="0" y="{top[cpu] + 2}"'
                     f' width="{width}" height="{lane_h[cpu] - 4}"/>'
                     f'<text class="name" x="8"'
                     f' y="{top[cpu] + lane_h[cpu] // 2 + 4}">cpu{cpu}</text>'
                     "</g>")
    if shaded and failing is not None:
        x0 = LEFT + COL * (shaded[0] - first_col) - 4
        x1 = LEFT + COL * (shaded[-1] - first_col + 1) - 10
        parts.append(f'<rect class="window" x="{x0}" y="{top[failing] + 4}"'
                     f' width="{x1 - x0}" height="{lane_h[failing] - 8}">'
                     "<title>fault window</title></rect>")
    for cell in row:
        x = LEFT + COL * (cell.col - first_col)
        parts.append(_box(x, top[cell.cpu] + PAD, cell,
                          lane_h[cell.cpu] - 2 * PAD))
    parts.append("</svg>")
    return "".join(parts)


def timeline_svg(report: Report) -> str:
    """The timeline as rows of at most PER_ROW columns, one SVG each, so
    that it fits the page; each scales down with a narrower window."""
    cells, window = _cells(report)
    rows = [[c for c in cells if c.col // PER_ROW == r]
            for r in range((len(cells) + PER_ROW - 1) // PER_ROW)]
    parts = [_row_svg(report, row, window) for row in rows if row]
    quiet = [cpu for cpu in range(report.sc.ncpu)
             if all(c.cpu != cpu for c in cells)]
    if quiet:
        names = ", ".join(f"cpu{cpu}" for cpu in quiet)
        parts.append(f'<p class="src">{names}: no event in the causal'
                     " core.</p>")
    return "".join(parts)


def _reached(cov: dict[str, Any]) -> list[str]:
    """The rules the search reached, and where its triggers fired."""
    h = ["<h2>What the search reached</h2>",
         f"<p>{cov['rules_reached']} of {cov['rules_total']} model rules,"
         f" over {cov['units']} {escape(cov['unit'])} (coverage.py, the"
         " interpreted model).</p>",
         f"<table><tr><th>rule</th><th>id</th><th>{escape(cov['unit'])}"
         "</th><th>statements run</th></tr>"]
    for r in cov["rules"]:
        if r["units"]:
            h.append(f"<tr><td>{r['number']}</td><td><code>"
                     f"{escape(r['id'])}</code> {escape(r['title'])}</td>"
                     f"<td>{r['units']}</td><td>{r['statements_run']}/"
                     f"{r['statements']}</td></tr>")
    h.append("</table>")
    if cov["not_reached"]:
        h.append("<p class=\"src\">Not reached: " + ", ".join(
            f"<code>{escape(x)}</code>" for x in cov["not_reached"]) + "</p>")
    if cov["triggers"]:
        h.append("<ul>" + "".join(
            f"<li>{escape(line)}</li>" for line in cov["trigger_lines"])
            + "</ul>")
    return h


def render(report: Report) -> str:
    sc, r = report.sc, report.result
    h: list[str] = ["<!DOCTYPE html>", '<html lang="en"><head>',
                    '<meta charset="utf-8">',
                    f"<title>{escape(sc.name)}: {escape(r.name)}</title>",
                    f"<style>{STYLE}</style></head><body>",
                    f"<h1>{escape(sc.name)}: {escape(r.name)}</h1>",
                    f"<p><em>{escape(sc.title)}</em></p>",
                    f"<p>{escape(report.summary())}</p>",
                    "<h2>Timeline</h2>",
                    '<div class="timeline">' + timeline_svg(report)
                    + "</div>"]
    if report.background:
        h.append("<h2>Background</h2>")
        for t in report.background:
            h.append(f"<h3>{escape(t.title)}</h3>")
            h += [f"<p>{escape(p)}</p>" for p in t.paragraphs]
            h.append('<ul class="src">' + "".join(
                f"<li>{escape(s)}</li>" for s in t.sources) + "</ul>")
    h.append("<h2>Problem</h2><table><tr><th>#</th><th>cpu</th><th>op</th>"
             "<th>where</th><th>state after (in the shrunk ordering)</th>"
             "</tr>")
    for s in report.steps:
        where = "trigger" if s.event.slot < 0 else s.routine
        mark = " (window)" if s.in_window else ""
        h.append(f"<tr><td>{s.n}</td><td>cpu{s.event.cpu}</td>"
                 f"<td><code>{escape(s.op)}</code>{mark}</td>"
                 f"<td>{escape(where)}</td>"
                 f"<td><code>{escape(describe(s.state))}</code></td></tr>")
    h.append("</table><h3>Escalation</h3><ol>")
    h += [f"<li>{escape(link)}</li>" for link in r.chain]
    h.append("</ol><h2>Fix</h2>")
    if report.fixes:
        h.append("<ul>" + "".join(
            f"<li>{escape(f.text)}<br><span class=\"src\">checked:"
            f" {escape(f.checked)}</span></li>" for f in report.fixes)
            + "</ul>")
    else:
        h.append("<p>The model found no single reordering or kernel change"
                 " that removes this failure.</p>")
    note = report.fix_checks.note() if report.fix_checks else ""
    if note:
        h.append(f"<p>{escape(note)}.</p>")
    if report.rule_coverage is not None:
        h += _reached(report.rule_coverage)
    h.append("<h2>Reproduce</h2><pre>" + escape(report.replay_command()))
    if report.run_command():
        h.append("\n" + escape(report.run_command() or ""))
    h.append(f"</pre><p class=\"src\">Scenario {escape(sc.path)}, sha256"
             f" {sc.sha256}, seed {report.seed}, signature"
             f" {report.signature}.</p></body></html>")
    return "\n".join(h) + "\n"
