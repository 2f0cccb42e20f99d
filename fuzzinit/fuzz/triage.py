"""Failing inputs of a campaign: reduce, deduplicate, save, report."""

from __future__ import annotations

import fcntl
import json
import sys
from pathlib import Path

from fuzzinit.minimise.core import causal_core
from fuzzinit.orderings.schedule import Event
from fuzzinit.report import trace as tracefile
from fuzzinit.report.document import build, to_json
from fuzzinit.report.files import write_atomic
from fuzzinit.report.html import render as render_html
from fuzzinit.report.index import record
from fuzzinit.report.markdown import render as render_markdown
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate, signature


class Triage:
    """Knows every signature in crashes/ (from earlier runs and from other
    workers) and saves each new one once."""

    def __init__(self, sc: Scenario, out: Path, reports: Path) -> None:
        self.sc = sc
        self.crashes = out / "crashes"
        self.reports = reports
        self.crashes.mkdir(parents=True, exist_ok=True)
        self.seen = {p.stem for p in self.crashes.glob("*.json")}

    def record(self, events: list[Event], complete: bool) -> bool:
        """Save the failure if its signature is new; True if it was."""
        sc = self.sc
        result = evaluate(sc, events, complete)
        sig = signature(result)
        if sig in self.seen:
            return False
        self.seen.add(sig)
        path = self.crashes / f"{sig}.json"
        if path.exists():  # another worker got there first
            return False
        core = causal_core(sc, events, result) if complete else events
        final = evaluate(sc, core) if complete else result
        doc = tracefile.to_json(sc, core, None, {
            "verdict": final.name, "chain": final.chain, "signature": sig,
            "shrunk_events": [tracefile.event_json(sc, e) for e in events]})
        write_atomic(path, tracefile.dumps(doc))
        report = build(sc, core, events, final, None, str(path))
        base = self.reports / f"{sc.name}-{sig}"
        write_atomic(base.with_suffix(".md"), render_markdown(report))
        write_atomic(base.with_suffix(".json"),
                     json.dumps(to_json(report), indent=2) + "\n")
        write_atomic(base.with_suffix(".html"), render_html(report))
        # Workers share reports/index.json: one writer at a time.
        self.reports.mkdir(parents=True, exist_ok=True)
        with open(self.reports / ".index.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record(self.reports, {
                "signature": sig, "scenario": sc.path, "name": sc.name,
                "verdict": final.name, "report": str(base.with_suffix(".md")),
                "trace": str(path)})
        sys.stderr.write(f"fuzzinit-finding {sig} {final.name}"
                         f" {len(core)}\n")
        sys.stderr.flush()
        return True
