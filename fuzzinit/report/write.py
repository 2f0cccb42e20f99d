"""Saving one finding: its trace, its report in every format, and its row
in reports/index - the same for `run`, `fuzz` and every fuzz worker."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from fuzzinit.model.outcome import Result
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import trace as tracefile
from fuzzinit.report.document import Report, build, to_json
from fuzzinit.report.files import write_atomic
from fuzzinit.report.fixes import FIX_CHECK_S
from fuzzinit.report.html import render as render_html
from fuzzinit.report.index import record
from fuzzinit.report.markdown import render as render_markdown
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import signature


def report_json(report: Report) -> str:
    return json.dumps(to_json(report), indent=2) + "\n"


def write_trace(sc: Scenario, core: list[Event], shrunk: list[Event],
                result: Result, seed: int | None, trace_path: Path) -> None:
    write_atomic(trace_path, tracefile.dumps(tracefile.to_json(
        sc, core, seed, {
            "verdict": result.name, "chain": result.chain,
            "signature": signature(result),
            "shrunk_events": [tracefile.event_json(sc, e) for e in shrunk]})))


def write_finding(sc: Scenario, core: list[Event], shrunk: list[Event],
                  result: Result, seed: int | None, trace_path: Path,
                  reports: Path) -> Path:
    """Write the trace to `trace_path` and the reports under `reports`;
    returns the Markdown report's path."""
    write_trace(sc, core, shrunk, result, seed, trace_path)
    return write_reports(sc, core, shrunk, result, seed, trace_path, reports)


def write_reports(sc: Scenario, core: list[Event], shrunk: list[Event],
                  result: Result, seed: int | None, trace_path: Path,
                  reports: Path,
                  rule_coverage: dict[str, Any] | None = None,
                  fix_check_s: float = FIX_CHECK_S) -> Path:
    """The report in every format and its index row. Every file is
    written atomically; the index is updated under a lock."""
    sig = signature(result)
    report = build(sc, core, shrunk, result, seed, str(trace_path),
                   rule_coverage, fix_check_s)
    base = reports / f"{sc.name}-{sig}"
    write_atomic(base.with_suffix(".md"), render_markdown(report))
    write_atomic(base.with_suffix(".json"), report_json(report))
    write_atomic(base.with_suffix(".html"), render_html(report))
    # The lock is the folder itself (flock on its descriptor): no lock
    # file is left behind in reports/.
    folder = os.open(reports, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        record(reports, {"signature": sig, "scenario": sc.path,
                         "name": sc.name, "verdict": result.name,
                         "report": str(base.with_suffix(".md")),
                         "trace": str(trace_path)})
    finally:
        os.close(folder)
    return base.with_suffix(".md")
