"""Run a list of ops on one CPU, as a scenario would: the shared helper of
the rule tests (test_idt_table, test_modes, test_ibt, test_lass)."""

from pathlib import Path

from fuzzinit.model.outcome import NAMES, Result
from fuzzinit.model.run import run
from fuzzinit.scenario.load import Scenario, load


def scenario(tmp_path: Path, ops: list[str], features: str = "[]",
             guest: str = "bare") -> Scenario:
    """A one-CPU scenario whose program is `ops` (features as TOML)."""
    path = tmp_path / "t.toml"
    path.write_text(
        '[scenario]\nname = "t"\nfail_on = ["triple_fault", "unhandled"]\n'
        f'[platform]\nguest = "{guest}"\nfeatures = {features}\n'
        '[[cpu]]\nprogram = [' + ", ".join(f'"{o}"' for o in ops) + "]\n")
    return load(path)


def run_ops(tmp_path: Path, ops: list[str], features: str = "[]",
            guest: str = "bare") -> Result:
    """The model's result for `ops` in program order."""
    sc = scenario(tmp_path, ops, features, guest)
    return run(sc.machine, [0] * len(ops),
               [sc.op_index[" ".join(o.split())] for o in ops])


def outcome(r: Result) -> tuple[str, list[tuple[int, int]]]:
    """The outcome's name and the stub handlers that ran."""
    return NAMES[r.outcome], r.handled
