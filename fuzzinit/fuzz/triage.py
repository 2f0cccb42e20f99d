"""Failing inputs of a campaign: reduce, deduplicate, save, report."""

from __future__ import annotations

import sys
from pathlib import Path

from fuzzinit.fuzz import channel
from fuzzinit.minimise.core import causal_core
from fuzzinit.orderings.schedule import Event
from fuzzinit.report.write import write_trace
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate, signature


class SaveError(Exception):
    """A finding whose trace could not be written: the OSError, the path
    and the finding (signature, verdict, core events)."""

    def __init__(self, exc: OSError, path: Path,
                 finding: tuple[str, str, int]) -> None:
        super().__init__(f"{path}: {exc}")
        self.exc = exc
        self.path = path
        self.finding = finding


class Triage:
    """Knows every signature in crashes/ (from earlier runs and from other
    workers) and saves each new one once."""

    def __init__(self, sc: Scenario, out: Path) -> None:
        self.sc = sc
        self.crashes = out / "crashes"
        self.crashes.mkdir(parents=True, exist_ok=True)
        self.seen = {p.stem for p in self.crashes.glob("*.json")}

    def record(self, events: list[Event], complete: bool) -> bool:
        """Save the failure if its signature is new; True if it was.
        Raises SaveError when the trace cannot be written."""
        sc = self.sc
        result = evaluate(sc, events, complete)
        sig = signature(result)
        if sig in self.seen:
            return False
        path = self.crashes / f"{sig}.json"
        if path.exists():  # another worker got there first
            self.seen.add(sig)
            return False
        core = causal_core(sc, events, result) if complete else events
        final = evaluate(sc, core) if complete else result
        # The trace only: reports (with their fix searches) are built by
        # the campaign outside the fuzzing loop (campaign.write_reports).
        try:
            write_trace(sc, core, events, final, None, path)
        except OSError as exc:
            raise SaveError(exc, path, (sig, final.name, len(core))) from exc
        self.seen.add(sig)
        channel.send({"kind": "finding", "signature": sig,
                      "verdict": final.name, "events": len(core)})
        sys.stderr.write(f"fuzzinit-finding {sig} {final.name}"
                         f" {len(core)}\n")
        sys.stderr.flush()
        return True
