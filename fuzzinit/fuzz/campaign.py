"""`fuzzinit fuzz`: run the atheris harness as a child process (libFuzzer
exits the process it runs in), follow its progress, and end it cleanly.

The corpus lives in <corpus>/<scenario>/inputs (libFuzzer's), findings in
<corpus>/<scenario>/crashes (ours, one trace per signature); a rerun
continues from both. SIGINT/SIGTERM stop the child within a second and
print the summary; crash traces and reports are written atomically, and a
corpus file cut short by SIGKILL is still just an input to the decoder.

A campaign never ends clean on a failure of its own: an I/O error
(faults.py), a harness that could not save a finding or raised
(channel.py), or a harness that exited on its own with an unexpected
status ends it as an error. Its processes and temporary folder die with it
(process.py).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from fuzzinit import model_build
from fuzzinit.errors import FuzzinitError
from fuzzinit.fuzz import channel
from fuzzinit.fuzz.faults import (
    CampaignIOError,
    CorpusCheck,
    check_space,
    from_os_error,
    make_folder,
    nearest_folder,
    probe,
)
from fuzzinit.fuzz.process import Owned, make_temp, release_temp
from fuzzinit.report import trace as tracefile
from fuzzinit.report.write import write_reports
from fuzzinit.scenario.load import Scenario
from fuzzinit.verdict import evaluate

STATS = re.compile(r"^#(\d+):?\s+(?:\w+\s+)?(?:cov: (\d+) ft: (\d+) )?"
                   r"corp: (\d+)")
FINDING = re.compile(r"^fuzzinit-finding (\S+) (\S+) (\d+)$")
FINAL_EXECS = re.compile(r"^stat::number_of_executed_units:\s+(\d+)")


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
    signal: int | None = None   # the signal that interrupted it


def launcher(folder: Path) -> Path:
    """An executable script that runs the harness with this Python: libFuzzer
    fork mode starts workers by running argv[0]."""
    path = folder / "fuzzinit_harness.py"
    path.write_text(f"#!{sys.executable}\n"
                    "from fuzzinit.fuzz.harness import main\nmain()\n")
    path.chmod(0o755)
    return path


class _Signals:
    """SIGINT and SIGTERM for the whole campaign: noted while the harness
    runs (the loop stops it), raised as KeyboardInterrupt once `raising`."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.raising = False
        self._saved: list[tuple[int, Any]] = []

    def _on(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        if self.raising:
            raise KeyboardInterrupt

    def __enter__(self) -> _Signals:
        self._saved = [(s, signal.signal(s, self._on))
                       for s in (signal.SIGINT, signal.SIGTERM)]
        return self

    def __exit__(self, kind: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        for s, old in self._saved:
            signal.signal(s, old)


@dataclass
class _Watch:
    """What the harness processes say: libFuzzer's stats on the child's
    stderr, findings and failures through the notify pipe."""

    progress: Progress
    start: float
    first: list[float] = field(default_factory=list)
    problem: dict[str, Any] | None = None
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    threads: list[threading.Thread] = field(default_factory=list)

    def follow(self, owned: Owned) -> None:
        assert owned.child.stderr is not None
        stderr, notify = owned.child.stderr, os.fdopen(owned.notify, "r")
        self.threads = [threading.Thread(target=f, args=(s,), daemon=True)
                        for f, s in ((self._stderr, stderr),
                                     (self._notify, notify))]
        for t in self.threads:
            t.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=2)

    def _found(self) -> None:
        if not self.first:
            self.first.append(time.monotonic() - self.start)

    def _notify(self, stream: Any) -> None:
        with stream:
            for line in stream:
                msg = channel.parse(line)
                if msg is None:
                    continue
                if msg["kind"] == "finding":
                    self._found()
                elif self.problem is None or (
                        msg["kind"] == "io_error"
                        and self.problem["kind"] != "io_error"):
                    self.problem = msg

    def _stderr(self, stream: Any) -> None:
        with stream:
            self._stats(stream)

    def _stats(self, stream: Any) -> None:
        progress = self.progress
        for line in stream:
            line = line.rstrip("\n")
            self.tail.append(line)
            m = STATS.match(line)
            if m:
                progress.execs = max(progress.execs, int(m.group(1)))
                if m.group(2):
                    progress.features = int(m.group(3))
                progress.corpus = int(m.group(4))
            elif FINDING.match(line):
                self._found()
            else:
                m2 = FINAL_EXECS.match(line)
                if m2:
                    progress.execs = max(progress.execs, int(m2.group(1)))


def run_campaign(sc: Scenario, corpus: Path, reports: Path,
                 time_s: int | None, runs: int | None, jobs: int,
                 seed: int | None, coverage: str = "state",
                 stop_on_failure: bool = False,
                 show: bool = False) -> Summary:
    """Run a campaign. Raises FuzzinitError (CampaignIOError for an I/O
    error) when it cannot end with a result to trust."""
    with _Signals() as signals:
        return _campaign(sc, corpus, reports, time_s, runs, jobs, seed,
                         coverage, stop_on_failure, show, signals)


def _prepare(corpus: Path, out: Path, reports: Path) -> None:
    for folder in (out / "inputs", out / "crashes"):
        make_folder(folder, "--corpus")
        probe(folder, "--corpus")
    if reports.exists() and not reports.is_dir():
        make_folder(reports, "--reports")   # says: a file is in the way
    probe(nearest_folder(reports), "--reports")


def _campaign(sc: Scenario, corpus: Path, reports: Path,
              time_s: int | None, runs: int | None, jobs: int,
              seed: int | None, coverage: str, stop_on_failure: bool,
              show: bool, signals: _Signals) -> Summary:
    out = corpus / sc.name
    inputs = out / "inputs"
    crashes = out / "crashes"
    _prepare(corpus, out, reports)
    before = _stems(crashes)
    check = CorpusCheck(inputs)
    progress = Progress()
    start = time.monotonic()
    watch = _Watch(progress, start)
    stopped = False
    try:
        tmp = make_temp()
    except OSError as exc:
        raise from_os_error(exc, Path(tempfile.gettempdir()),
                            "creating the temporary folder", "TMPDIR") from exc
    try:
        try:
            exe = launcher(tmp)
        except OSError as exc:
            raise from_os_error(exc, tmp, "writing the harness launcher",
                                "TMPDIR") from exc
        try:
            owned = Owned(_args(exe, inputs, tmp, time_s, runs, seed, jobs),
                          _env(sc, out, coverage, stop_on_failure, tmp))
        except OSError as exc:
            raise CampaignIOError(
                str(exe), exc.errno or errno.EIO, "starting the harness",
                "TMPDIR", fix="give TMPDIR a writable folder on a disk that"
                " lets programs run (not mounted noexec)") from exc
        try:
            watch.follow(owned)
            stopped = _loop(owned, watch, signals, crashes, before, inputs,
                            check, stop_on_failure, show, sc.name)
        finally:
            owned.stop(gently=signals.signum is not None)
            watch.join()
            if show:
                sys.stderr.write("\r\x1b[K")
        elapsed = time.monotonic() - start
        _verdict_of_harness(owned, watch, stopped, stop_on_failure, jobs)
        check.check(final=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        release_temp()
    after = _stems(crashes)
    new = [_finding(crashes / f"{sig}.json") for sig in sorted(after - before)]
    if signals.signum is None:
        # Interrupted: stop now; the next run (or `fuzzinit report`) writes
        # the reports - the traces are already safe.
        signals.raising = True
        try:
            write_missing_reports(sc, crashes, reports)
        except KeyboardInterrupt:
            pass
        except OSError as exc:
            raise from_os_error(exc, reports, "writing a report",
                                "--reports") from exc
        finally:
            signals.raising = False
    try:
        count = sum(1 for _ in inputs.iterdir())
    except OSError as exc:
        raise from_os_error(exc, inputs, "counting the corpus",
                            "--corpus") from exc
    return Summary(
        sc.name, progress.execs, progress.execs / elapsed if elapsed else 0.0,
        count, progress.features, new, len(after), elapsed,
        signals.signum is not None, watch.first[0] if watch.first else None,
        str(crashes), signals.signum)


def _args(exe: Path, inputs: Path, tmp: Path, time_s: int | None,
          runs: int | None, seed: int | None, jobs: int) -> list[str]:
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
    return args


def _env(sc: Scenario, out: Path, coverage: str, stop_on_failure: bool,
         tmp: Path) -> dict[str, str]:
    # TMPDIR: libFuzzer's fork mode makes its FuzzWithFork* folder there.
    env = dict(os.environ, FUZZINIT_SCENARIO=sc.path,
               FUZZINIT_OUT=str(out), FUZZINIT_COVERAGE=coverage,
               FUZZINIT_STOP="1" if stop_on_failure else "0",
               TMPDIR=str(tmp),
               PATH=os.path.dirname(sys.executable) + os.pathsep
               + os.environ.get("PATH", ""))
    if env.pop(model_build.REEXEC, None):
        # This process restarted itself interpreted for --rule-coverage
        # (which replays the corpus here); the workers need not.
        env.pop(model_build.ENV, None)
    if coverage == "lines":
        # atheris instruments Python lines, which a compiled model has not.
        env[model_build.ENV] = "interpreted"
    return env


def _loop(owned: Owned, watch: _Watch, signals: _Signals, crashes: Path,
          before: set[str], inputs: Path, check: CorpusCheck,
          stop_on_failure: bool, show: bool, name: str) -> bool:
    """Follow the harness until it ends; True if the campaign ended it."""
    last_look = 0.0
    while not owned.exited():
        if signals.signum is not None:
            return True
        if watch.problem is not None:
            return True
        now = time.monotonic()
        if now - last_look > 0.5:
            # Workers' output goes to libFuzzer's fork logs, so findings
            # are also seen in crashes/ itself.
            last_look = now
            found = _stems(crashes)
            watch.progress.distinct = len(found)
            if found - before:
                watch._found()
                if stop_on_failure:
                    return True
            check_space(inputs, "--corpus")
            check_space(crashes, "--corpus")
            check.check()
            if show:
                _show(name, watch.progress, now - watch.start)
        time.sleep(0.05)
    return False


def _verdict_of_harness(owned: Owned, watch: _Watch, stopped: bool,
                        stop_on_failure: bool, jobs: int) -> None:
    """Raise unless the harness ended as it should have."""
    problem = watch.problem
    if problem is not None and problem["kind"] == "io_error":
        finding = None
        if problem.get("signature"):
            finding = (str(problem["signature"]), str(problem["verdict"]),
                       int(problem["events"]))
        raise CampaignIOError(str(problem["path"]),
                              int(problem["errno"] or errno.EIO),
                              str(problem.get("doing", "saving a finding")),
                              "--corpus", finding)
    if problem is not None:
        kept = problem.get("input")
        raise FuzzinitError(f"the harness raised {problem['text']}"
                            f"{f' on the input {kept}' if kept else ''} (a"
                            " fuzzinit bug; fix: report it with the scenario"
                            " and the `fuzzinit fuzz` command line)")
    status = owned.status
    expected = {0}
    if stop_on_failure or jobs > 1:
        # libFuzzer's fork mode exits with its last worker's status.
        expected.add(channel.EXIT_STOP)
    if stopped or status in expected:
        return
    for line in watch.tail:
        if line.startswith("fuzzinit-io-error "):
            code, path = line.split(" ", 2)[1:]
            raise CampaignIOError(path, int(code), "saving a finding",
                                  "--corpus")
    last = next((line for line in reversed(watch.tail)
                 if "Error" in line or "ERROR" in line),
                watch.tail[-1] if watch.tail else "no output")
    raise FuzzinitError(f"the harness ended with status {status}: {last};"
                        " fix: run again; if it repeats, report it with the"
                        " scenario")


def _stems(crashes: Path) -> set[str]:
    return {p.stem for p in crashes.glob("*.json")}


def _finding(path: Path) -> tuple[str, str, int]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise from_os_error(exc, path, "reading a finding",
                            "--corpus") from exc
    except ValueError:
        return path.stem, "unreadable", 0
    if not isinstance(doc, dict):
        return path.stem, "unreadable", 0
    events = doc.get("events")
    return (path.stem, str(doc.get("verdict")),
            len(events) if isinstance(events, list) else 0)


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


def _show(name: str, p: Progress, elapsed: float) -> None:
    rate = p.execs / elapsed if elapsed else 0
    sys.stderr.write(f"\r{name}: {p.execs} execs, {rate:,.0f}/s, corpus"
                     f" {p.corpus}, features {p.features}, failures"
                     f" {p.distinct}, {elapsed:.0f} s\x1b[K")
    sys.stderr.flush()
