"""The atheris harness: one process of a campaign (or one fork-mode
worker). Configured through the environment so fork-mode children, which
libFuzzer starts with the same command line, inherit it:

    FUZZINIT_SCENARIO  scenario file
    FUZZINIT_OUT       corpus/<scenario> (inputs/, crashes/ below it)
    FUZZINIT_COVERAGE  "state" (model-state features, default) or "lines"
                       (atheris line/branch coverage of fuzzinit/model only)
    FUZZINIT_STOP      "1": stop at the first failure

Every failing input is reduced to its causal core, deduplicated by
signature (outcome + chain) against crashes/ on disk, and written
atomically as a replayable trace; the campaign writes its reports. Every
worker process dies with its parent (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    import atheris

    coverage = os.environ.get("FUZZINIT_COVERAGE", "state")
    if coverage == "lines":
        # Line coverage of the model only: instrumenting Hypothesis or the
        # rest costs seconds of start-up per process.
        with atheris.instrument_imports(include=["fuzzinit.model"]):
            import fuzzinit.model.run  # noqa: F401
    from fuzzinit.fuzz.campaign import _die_with_parent
    from fuzzinit.fuzz.execute import cover, execute, reserve_counters
    from fuzzinit.fuzz.triage import Triage
    from fuzzinit.scenario.load import load

    sc = load(os.environ["FUZZINIT_SCENARIO"])
    _die_with_parent()
    triage = Triage(sc, Path(os.environ["FUZZINIT_OUT"]))
    stop = os.environ.get("FUZZINIT_STOP") == "1"
    counters = reserve_counters() if coverage == "state" else []

    def test_one_input(data: bytes) -> None:
        name, events, complete, features = execute(sc, data)
        if counters:
            cover(counters, features)
        if name in sc.fail_on and triage.record(events, complete) and stop:
            sys.stderr.flush()
            os._exit(1)

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
