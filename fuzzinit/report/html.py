"""A report as one self-contained HTML file: no scripts, no fonts, no
network. The timeline is an SVG with one swim lane per CPU, the fault
window shaded on the failing CPU's lane, triggers and the failing event
marked, and the escalation drawn step by step after it."""

from __future__ import annotations

from html import escape

from fuzzinit.report.document import Report
from fuzzinit.report.timeline import describe

COL = 150        # px per timeline column
LANE = 70        # px per lane
LEFT = 60        # lane labels
TOP = 30
STYLE = """
body{font:14px/1.45 sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;border-bottom:1px solid #ccc}
code,pre{font:12px monospace} table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
.src{color:#555;font-size:12px} svg{border:1px solid #ccc;background:#fff}
.lane rect.bg{fill:#f6f6f6} .lane text.name{font:bold 13px sans-serif}
.ev rect{fill:#dbe9ff;stroke:#4a78c2} .ev text{font:11px sans-serif}
.ev.trigger rect{fill:#fff3c4;stroke:#c29a00}
.ev.failing rect{fill:#ffd0d0;stroke:#c00;stroke-width:2}
.ev.ghost rect{fill:#fff;stroke:#888;stroke-dasharray:4 3}
.window{fill:#ff9d9d;fill-opacity:.28}
.esc rect{fill:#fff;stroke:#c00} .esc text{font:10px sans-serif;fill:#900}
"""


def _lines(text: str, width: int = 22) -> list[str]:
    words, lines, cur = text.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    if cur:
        lines.append(cur)
    if len(lines) > 3:
        lines = lines[:3]
        lines[-1] = lines[-1][:width - 3] + "..."
    return lines


def _box(x: int, y: int, text: str, cls: str, tip: str) -> str:
    h = LANE - 20
    out = [f'<g class="{cls}"><title>{escape(tip)}</title>',
           f'<rect x="{x}" y="{y}" width="{COL - 14}" height="{h}" rx="4"/>']
    for i, line in enumerate(_lines(text)):
        out.append(f'<text x="{x + 5}" y="{y + 15 + 13 * i}">'
                   f"{escape(line)}</text>")
    out.append("</g>")
    return "".join(out)


def timeline_svg(report: Report) -> str:
    sc = report.sc
    steps = report.steps
    failing = report.failing_cpu
    w = report.window
    ghost = w.closes if w is not None and w.closes is not None and \
        w.closes not in report.core else None
    escalation = report.result.chain[1:]
    ncols = len(steps) + (1 if ghost else 0) + len(escalation)
    width = LEFT + COL * max(ncols, 1) + 20
    height = TOP + LANE * sc.ncpu + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}"'
             f' height="{height}" viewBox="0 0 {width} {height}"'
             f' role="img" aria-label="timeline of {escape(sc.name)}">']
    for cpu in range(sc.ncpu):
        y = TOP + LANE * cpu
        parts.append(f'<g class="lane" data-cpu="{cpu}">'
                     f'<rect class="bg" x="0" y="{y + 2}" width="{width}"'
                     f' height="{LANE - 4}"/><text class="name" x="8"'
                     f' y="{y + LANE // 2 + 4}">cpu{cpu}</text></g>')
    # The fault window: from the step that opens it to the failure (and on
    # to the event that would close it).
    if failing is not None and w is not None:
        first = next((s.n for s in steps if s.in_window), len(steps))
        last = len(steps) + (1 if ghost else 0)
        x0 = LEFT + COL * (first - 1) - 4
        x1 = LEFT + COL * last - 10
        y = TOP + LANE * failing + 4
        parts.append(f'<rect class="window" x="{x0}" y="{y}"'
                     f' width="{x1 - x0}" height="{LANE - 8}">'
                     '<title>fault window</title></rect>')
    for s in steps:
        cls = "ev"
        if s.event.slot < 0:
            cls += " trigger"
        if s.n == len(steps):
            cls += " failing"
        x = LEFT + COL * (s.n - 1)
        y = TOP + LANE * s.event.cpu + 10
        label = f"{s.n}. {s.op}" + (" (trigger)" if s.event.slot < 0 else "")
        parts.append(_box(x, y, label, cls, describe(s.state)))
    col = len(steps)
    if ghost is not None:
        x = LEFT + COL * col
        y = TOP + LANE * ghost.cpu + 10
        parts.append(_box(x, y, f"{sc.op_text(ghost.op)} (not yet run)",
                          "ev ghost", "closes the fault window"))
        col += 1
    if failing is not None:
        for i, link in enumerate(escalation):
            x = LEFT + COL * (col + i)
            y = TOP + LANE * failing + 10
            parts.append(_box(x, y, link, "esc", link))
    parts.append("</svg>")
    return "".join(parts)


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
                    '<div style="overflow-x:auto">' + timeline_svg(report)
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
    h.append("<h2>Reproduce</h2><pre>" + escape(report.replay_command()))
    if report.run_command():
        h.append("\n" + escape(report.run_command() or ""))
    h.append(f"</pre><p class=\"src\">Scenario {escape(sc.path)}, sha256"
             f" {sc.sha256}, seed {report.seed}, signature"
             f" {report.signature}.</p></body></html>")
    return "\n".join(h) + "\n"
