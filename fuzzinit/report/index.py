"""reports/index.{json,md,html}: every finding once, by signature, with
its scenario, first-seen time and how many runs found it."""

from __future__ import annotations

import json
import time
from html import escape
from pathlib import Path
from typing import Any

from fuzzinit.report.files import write_atomic


def record(reports: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Add one finding (keys: signature, scenario, name, verdict, report,
    trace) and rewrite the index files; returns the merged entry."""
    path = reports / "index.json"
    # Keyed by scenario and signature: the signature hashes outcome and
    # chain only, which two scenarios can share.
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError):
            loaded = {}  # a damaged index is rebuilt from this run on
        found = loaded.get("findings") if isinstance(loaded, dict) else None
        rows = {(r["name"], r["signature"]): r
                for r in (found if isinstance(found, list) else [])
                if _valid(r)}
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    key = (entry["name"], entry["signature"])
    old = rows.get(key)
    merged = dict(entry, first_seen=old["first_seen"] if old else now,
                  last_seen=now, count=(old["count"] + 1) if old else 1)
    rows[key] = merged
    ordered = sorted(rows.values(), key=lambda r: (r["name"], r["signature"]))
    write_atomic(path, json.dumps({"findings": ordered}, indent=2) + "\n")
    write_atomic(reports / "index.md", _markdown(ordered))
    write_atomic(reports / "index.html", _html(ordered))
    return merged


ROW_TEXT = ("signature", "scenario", "name", "verdict", "report", "trace",
            "first_seen", "last_seen")


def _valid(row: Any) -> bool:
    """A row this module wrote: every text field a string, count an int.
    Other rows (a hand-edited or damaged index) are dropped."""
    return isinstance(row, dict) and \
        all(isinstance(row.get(k), str) for k in ROW_TEXT) and \
        type(row.get("count")) is int


def _markdown(rows: list[dict[str, Any]]) -> str:
    out = ["# fuzzinit findings", ""]
    for r in rows:
        out.append(f"- {r['name']}: {r['verdict']} (signature"
                   f" {r['signature']}), first seen {r['first_seen']},"
                   f" found {r['count']} time{'s' if r['count'] > 1 else ''}"
                   f" - {Path(r['report']).name}")
    return "\n".join(out) + "\n"


def _html(rows: list[dict[str, Any]]) -> str:
    body = "".join(
        f"<tr><td>{escape(r['name'])}</td><td>{escape(r['verdict'])}</td>"
        f"<td><code>{escape(r['signature'])}</code></td>"
        f"<td>{escape(r['first_seen'])}</td><td>{r['count']}</td>"
        f"<td><a href=\"{escape(Path(r['report']).with_suffix('.html').name)}"
        f"\">report</a></td></tr>" for r in rows)
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>fuzzinit findings</title><style>body{font:14px sans-serif"
            ";margin:2em}td,th{border:1px solid #ddd;padding:2px 8px}"
            "table{border-collapse:collapse}</style></head><body>"
            "<h1>fuzzinit findings</h1><table><tr><th>scenario</th>"
            "<th>verdict</th><th>signature</th><th>first seen</th>"
            f"<th>count</th><th></th></tr>{body}</table></body></html>\n")
