"""Rule coverage of a fuzz campaign: its corpus, replayed afterwards.

The atheris harness runs in child processes under libFuzzer's own
instrumentation, so coverage.py does not watch the campaign itself; what
the campaign kept - each input in <corpus>/<scenario>/inputs, which
libFuzzer keeps because it reached something new - is decoded and run
through the probe once the campaign has ended, as coverage reports of
fuzzing corpora are made (OSS-Fuzz's coverage builds do the same)."""

from __future__ import annotations

from pathlib import Path

from fuzzinit.errors import FuzzinitError, describe_os_error
from fuzzinit.fuzz.decode import decode
from fuzzinit.progress import Progress
from fuzzinit.reach.probe import Probe
from fuzzinit.scenario.load import Scenario


def measure_corpus(sc: Scenario, inputs: Path, probe: Probe,
                   show: bool = False) -> int:
    """Replay every corpus input in `inputs` through `probe`; returns how
    many there were. An unreadable input or folder is an error: a
    coverage figure over part of the corpus would look complete."""
    try:
        files = sorted(p for p in inputs.iterdir() if not p.is_dir()) \
            if inputs.exists() else []
    except OSError as exc:
        raise FuzzinitError(f"{describe_os_error(exc, 'cannot read')} (the corpus"
                            " for --rule-coverage)") from exc
    bar = Progress(show)
    try:
        for i, path in enumerate(files, 1):
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise FuzzinitError(f"{describe_os_error(exc, 'cannot read')} (the"
                                    " corpus for --rule-coverage)") from exc
            events, _ = decode(sc, data)
            probe.replay(events)
            bar.show(f"{sc.name}: rule coverage, {i} of {len(files)} corpus"
                     " inputs")
    finally:
        bar.done()
    return len(files)
