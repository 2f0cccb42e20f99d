"""The atheris harness: one process of a campaign (or one fork-mode
worker). Configured through the environment so fork-mode children, which
libFuzzer starts with the same command line, inherit it:

    FUZZINIT_SCENARIO  scenario file
    FUZZINIT_OUT       corpus/<scenario> (inputs/, crashes/ below it)
    FUZZINIT_COVERAGE  "state" (model-state features, default) or "lines"
                       (atheris line/branch coverage of fuzzinit/model only)
    FUZZINIT_STOP      "1": stop at the first failure
    FUZZINIT_NOTIFY_FD, FUZZINIT_LIFELINE_FD  the campaign's pipes
                       (fuzzinit/fuzz/channel.py, process.py)

Every failing input is reduced to its causal core, deduplicated by
signature (outcome + chain) against crashes/ on disk, and written
atomically as a replayable trace; the campaign writes its reports. A trace
that cannot be written stops this process with EXIT_IO_ERROR after telling
the campaign, which ends as an error: a finding is never dropped quietly.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from fuzzinit.fuzz import channel


def _io_error(exc: OSError, path: Path,
              finding: tuple[str, str, int] | None) -> NoReturn:
    sig, verdict, n = finding if finding else (None, None, None)
    channel.send({"kind": "io_error", "errno": exc.errno,
                  "path": str(exc.filename or path), "signature": sig,
                  "verdict": verdict, "events": n,
                  "doing": "saving a finding" if finding
                  else "opening the crashes folder"})
    sys.stderr.write(f"fuzzinit-io-error {exc.errno} {path}\n")
    sys.stderr.flush()
    os._exit(channel.EXIT_IO_ERROR)


def _keep(folder: Path, data: bytes) -> str | None:
    """Save an input the harness raised on; its path, None if it cannot."""
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".crash-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError:
        return None
    return str(path)


def main() -> None:
    if channel.campaign_gone():
        os._exit(channel.EXIT_ORPHAN)
    import atheris

    coverage = os.environ.get("FUZZINIT_COVERAGE", "state")
    if coverage == "lines":
        # Line coverage of the model only: instrumenting Hypothesis or the
        # rest costs seconds of start-up per process.
        with atheris.instrument_imports(include=["fuzzinit.model"]):
            import fuzzinit.model.run  # noqa: F401
    from fuzzinit.fuzz.execute import (
        cover,
        execute,
        ordering,
        reserve_counters,
        run_every_event,
    )
    from fuzzinit.fuzz.triage import SaveError, Triage
    from fuzzinit.scenario.load import load

    if coverage == "lines":
        # The memo skips the model's events it has run before: their lines
        # would not count for the input.
        run_every_event()

    sc = load(os.environ["FUZZINIT_SCENARIO"])
    out = Path(os.environ["FUZZINIT_OUT"])
    try:
        triage = Triage(sc, out)
    except OSError as exc:
        _io_error(exc, out / "crashes", None)
    stop = os.environ.get("FUZZINIT_STOP") == "1"
    counters = reserve_counters() if coverage == "state" else []
    fail_on = sc.fail_on
    # Signature keys (Execution.key()) this process has triaged: for these
    # Triage.record would find the signature in its `seen` and return
    # False, after decoding and running the input again.
    triaged: set[object] = set()

    def test_one_input(data: bytes) -> None:
        try:
            run = execute(sc, data)
            if counters:
                cover(counters, run.features)
            if run.name in fail_on and run.key() not in triaged:
                events, complete = ordering(sc, data)
                new = triage.record(events, complete)
                triaged.add(run.key())
                if new and stop:
                    sys.stderr.flush()
                    os._exit(channel.EXIT_STOP)
        except SaveError as exc:
            _io_error(exc.exc, exc.path, exc.finding)
        except Exception as exc:
            # A fuzzinit bug: the campaign must not look clean (fork mode
            # ignores workers' crashes) and the input must not be lost
            # (libFuzzer's crash file is in the temporary folder).
            channel.send({"kind": "exception",
                          "text": f"{type(exc).__name__}: {exc}"[:1000],
                          "input": _keep(out / "harness-errors", data)})
            raise

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
