"""`fuzzinit fuzz`: run the atheris harness as a child process (libFuzzer
exits the process it runs in), follow its progress, and end it cleanly.

The corpus lives in <corpus>/<scenario>/inputs (libFuzzer's), findings in
<corpus>/<scenario>/crashes (ours, one trace per signature); a rerun
continues from both. SIGINT/SIGTERM stop the child within a second and
print the summary; crash traces and reports are written atomically, and a
corpus file cut short by SIGKILL is still just an input to the decoder.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fuzzinit.errors import FuzzinitError
from fuzzinit.report import trace as tracefile
from fuzzinit.report.write import write_reports
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate

STATS = re.compile(r"^#(\d+):?\s+(?:\w+\s+)?(?:cov: (\d+) ft: (\d+) )?"
                   r"corp: (\d+)")
FINDING = re.compile(r"^fuzzinit-finding (\S+) (\S+) (\d+)$")


@dataclass
class Progress:
    execs: int = 0
    features: int = 0
    corpus: int = 0
    distinct: int = 0


@dataclass
class Summary:
    scenario: str
    execs: int
    exec_per_s: float
    corpus: int
    features: int
    new_failures: list[tuple[str, str, int]]
    distinct_failures: int
    elapsed_s: float
    interrupted: bool
    first_failure_s: float | None
    crashes_dir: str


def launcher(folder: Path) -> Path:
    """An executable script that runs the harness with this Python: libFuzzer
    fork mode starts workers by running argv[0]."""
    path = folder / "fuzzinit_harness.py"
    path.write_text(f"#!{sys.executable}\n"
                    "from fuzzinit.fuzz.harness import main\nmain()\n")
    path.chmod(0o755)
    return path


def run_campaign(sc: Scenario, corpus: Path, reports: Path,
                 time_s: int | None, runs: int | None, jobs: int,
                 seed: int | None, coverage: str = "state",
                 stop_on_failure: bool = False,
                 show: bool = False) -> Summary:
    out = corpus / sc.name
    inputs = out / "inputs"
    crashes = out / "crashes"
    inputs.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = {p.stem for p in crashes.glob("*.json")}
    with tempfile.TemporaryDirectory(prefix="fuzzinit-") as tmp:
        exe = launcher(Path(tmp))
        args = [str(exe), str(inputs), "-print_final_stats=1",
                f"-artifact_prefix={tmp}/", "-max_len=4096"]
        if time_s is not None:
            args.append(f"-max_total_time={time_s}")
        if runs is not None:
            args.append(f"-runs={runs}")
        if seed is not None:
            args.append(f"-seed={seed}")
        if jobs > 1:
            args += [f"-fork={jobs}", "-ignore_crashes=1"]
        env = dict(os.environ, FUZZINIT_SCENARIO=sc.path,
                   FUZZINIT_OUT=str(out),
                   FUZZINIT_COVERAGE=coverage,
                   FUZZINIT_STOP="1" if stop_on_failure else "0",
                   PATH=os.path.dirname(sys.executable) + os.pathsep
                   + os.environ.get("PATH", ""))
        start = time.monotonic()
        child = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True, env=env,
                                 start_new_session=True,
                                 preexec_fn=_die_with_parent)
        progress = Progress()
        first: list[float] = []
        reader = threading.Thread(target=_read, daemon=True,
                                  args=(child, progress, first, start))
        reader.start()
        stop = [False]

        def on_signal(signum: int, frame: object) -> None:
            stop[0] = True

        saved = [(s, signal.signal(s, on_signal))
                 for s in (signal.SIGINT, signal.SIGTERM)]
        try:
            last_look = 0.0
            while child.poll() is None:
                if stop[0]:
                    _stop(child)
                    break
                now = time.monotonic()
                if now - last_look > 0.5:
                    # Workers' output goes to libFuzzer's fork logs, so
                    # findings are seen in crashes/ itself.
                    last_look = now
                    found = {p.stem for p in crashes.glob("*.json")}
                    progress.distinct = len(found)
                    if found - before and not first:
                        first.append(now - start)
                    if stop_on_failure and found - before:
                        _stop(child)
                        break
                    if show:
                        _show(sc.name, progress, now - start)
                time.sleep(0.05)
        finally:
            for s, old in saved:
                signal.signal(s, old)
            if child.poll() is None:
                _stop(child)
            reader.join(timeout=1)
            if show:
                sys.stderr.write("\r\x1b[K")
        elapsed = time.monotonic() - start
    after = {p.stem for p in crashes.glob("*.json")}
    new = [_finding(crashes / f"{sig}.json") for sig in sorted(after - before)]
    if not stop[0]:
        # Interrupted: stop now; the next run (or `fuzzinit report`) writes
        # the reports - the traces are already safe.
        try:
            write_missing_reports(sc, crashes, reports)
        except KeyboardInterrupt:
            stop[0] = True
    return Summary(
        sc.name, progress.execs, progress.execs / elapsed if elapsed else 0.0,
        sum(1 for _ in inputs.iterdir()), progress.features, new,
        len(after), elapsed, stop[0], first[0] if first else None,
        str(crashes))


def _finding(path: Path) -> tuple[str, str, int]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return path.stem, str(doc.get("verdict")), len(doc.get("events", []))


def write_missing_reports(sc: Scenario, crashes: Path, reports: Path) -> None:
    """A report (and index row) for every saved finding that has none yet -
    also those of a campaign that was stopped before it could write them."""
    for path in sorted(crashes.glob("*.json")):
        if (reports / f"{sc.name}-{path.stem}.md").exists():
            continue
        try:
            doc = tracefile.read(path)
            core = tracefile.events_of(sc, doc, str(path))
            raw = doc.get("shrunk_events")
            shrunk = tracefile.events_of(sc, {"events": raw}, str(path)) \
                if isinstance(raw, list) and raw else core
        except FuzzinitError as exc:
            # A trace from an earlier version of the scenario: keep it,
            # say so, and go on.
            sys.stderr.write(f"fuzzinit: warning: no report for {path}:"
                             f" {exc}\n")
            continue
        write_reports(sc, core, shrunk, evaluate(sc, core), None, path,
                      reports)


def _die_with_parent() -> None:
    """Linux PR_SET_PDEATHSIG: if the campaign process is killed (SIGKILL
    included), the harness gets SIGKILL too instead of fuzzing on."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def _stop(child: subprocess.Popen[str]) -> None:
    """SIGINT to the whole group (libFuzzer exits on it), SIGKILL if it has
    not within 0.8 s."""
    for sig, wait in ((signal.SIGINT, 0.8), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        try:
            child.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _read(child: subprocess.Popen[str], progress: Progress,
          first: list[float], start: float) -> None:
    assert child.stderr is not None
    for line in child.stderr:
        line = line.rstrip("\n")
        m = STATS.match(line)
        if m:
            progress.execs = max(progress.execs, int(m.group(1)))
            if m.group(2):
                progress.features = int(m.group(3))
            progress.corpus = int(m.group(4))
            continue
        if FINDING.match(line):
            if not first:
                first.append(time.monotonic() - start)
            continue
        m2 = re.match(r"^stat::number_of_executed_units:\s+(\d+)", line)
        if m2:
            progress.execs = max(progress.execs, int(m2.group(1)))


def _show(name: str, p: Progress, elapsed: float) -> None:
    rate = p.execs / elapsed if elapsed else 0
    sys.stderr.write(f"\r{name}: {p.execs} execs, {rate:,.0f}/s, corpus"
                     f" {p.corpus}, features {p.features}, failures"
                     f" {p.distinct}, {elapsed:.0f} s\x1b[K")
    sys.stderr.flush()
