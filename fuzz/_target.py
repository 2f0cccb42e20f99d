"""Shared body of the OSS-Fuzz / ClusterFuzzLite targets in this folder.

A target decodes the input into an ordering of its scenario (the same
decoder as `fuzzinit fuzz`), runs the reference model and raises
FailingOrdering - a crash, to libFuzzer and ClusterFuzz - when the
ordering fails. Coverage comes from the model state, as in `fuzzinit fuzz`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path


def models_folder() -> Path:
    """models/ beside the source tree, inside a PyInstaller bundle
    (compile_python_fuzzer), or FUZZINIT_MODELS."""
    if os.environ.get("FUZZINIT_MODELS"):
        return Path(os.environ["FUZZINIT_MODELS"])
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "models"
    return Path(__file__).resolve().parent.parent / "models"


def make_target(scenario_file: str) -> Callable[[bytes], None]:
    from fuzzinit.fuzz.execute import cover, execute, ordering, reserve_counters
    from fuzzinit.scenario.load import load
    from fuzzinit.testing import FailingOrdering
    from fuzzinit.verdict import evaluate

    sc = load(models_folder() / scenario_file)
    counters = reserve_counters()

    def test_one_input(data: bytes) -> None:
        run = execute(sc, data)
        cover(counters, run.features)
        if run.name in sc.fail_on:
            result = evaluate(sc, *ordering(sc, data))
            raise FailingOrdering(f"{sc.name}: {result.name}: "
                                  + " | ".join(result.chain))

    return test_one_input


def run(scenario_file: str) -> None:
    import atheris

    atheris.Setup(sys.argv, make_target(scenario_file))
    atheris.Fuzz()
