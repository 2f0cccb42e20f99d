"""The model's build: the install compiles it (setup.py), every command runs
the compiled build while it matches its sources, and the interpreted build
gives the same answers (fuzzinit/model_build.py)."""

from __future__ import annotations

import importlib.machinery
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fuzzinit import model_build
from fuzzinit.explore.scaling import scaled

ROOT = Path(__file__).resolve().parent.parent
SEED = str(ROOT / "models" / "fred-pinned-sev-es-ap.toml")


def _env(build: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(model_build.ENV, None)
    env.pop(model_build.REEXEC, None)
    if build is not None:
        env[model_build.ENV] = build
    return env


def _fuzzinit(build: str | None, *args: str, cwd: Path | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fuzzinit", *args],
                          env=_env(build), capture_output=True, text=True,
                          check=False, timeout=300, cwd=cwd)


def test_a_module_edited_after_the_build_is_not_used(tmp_path: Path) -> None:
    root = tmp_path / "fuzzinit"
    files = model_build.compiled_files()
    assert "model/run.py" in files and "explore/bfs.py" in files
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(model_build.ROOT / rel, root / rel)
    assert model_build.compiled_state(root) == \
        "not built at install (no C compiler, or the build failed)"
    (root / model_build.STAMP).write_text(json.dumps(
        {"sources": model_build.source_digest(root)}))
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    for rel in files:
        if rel != "explore/store.py":
            (root / rel.replace(".py", suffix)).write_bytes(b"")
    assert model_build.compiled_state(root) == f"explore/store{suffix} is" \
        " missing"
    (root / f"explore/store{suffix}").write_bytes(b"")
    assert model_build.compiled_state(root) is None
    with (root / "explore" / "symmetry.py").open("a") as fh:
        fh.write("# edited\n")
    assert model_build.compiled_state(root) == (
        "the sources changed after the build (reinstall to rebuild: make"
        " demo, or pip install -e .)")


def test_a_bad_FUZZINIT_MODEL_is_an_error() -> None:
    proc = _fuzzinit("fast", "--version")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "RuntimeError: FUZZINIT_MODEL='fast': expected 'compiled' or"
        " 'interpreted'")


def test_the_interpreted_build_can_be_forced() -> None:
    proc = _fuzzinit("interpreted", "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith(
        "interpreted model (FUZZINIT_MODEL=interpreted)")


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the"
                    " install falls back to the interpreted model")
@pytest.mark.slow
def test_the_install_compiled_the_model_and_both_builds_agree(
        tmp_path: Path) -> None:
    fixed_4 = tmp_path / "fixed-4.toml"
    fixed_4.write_text(scaled((ROOT / "models" / "upstream-fix-sev-es.toml")
                              .read_text(), 4, frozenset({"nmi"})))
    fixed = str(fixed_4)
    # `make test` installs the package (and rebuilds it when the model's
    # sources change), so with a C compiler the build must be current.
    assert model_build.compiled_state() is None
    version = _fuzzinit(None, "--version")
    assert version.stdout.strip().endswith(", compiled model (mypyc)")
    outputs = {}
    for build in ("compiled", "interpreted"):
        (tmp_path / build).mkdir()
        proc = _fuzzinit(build, "run", SEED, "--seed", "3", "--json",
                         cwd=tmp_path / build)
        assert proc.returncode == 1, proc.stderr
        out = json.loads(proc.stdout)
        for varies in ("elapsed_s", "first_failure_s", "trace", "report"):
            del out[varies]
        outputs[build] = out
        # The explorer is compiled too: the same states, the same ordering.
        proc = _fuzzinit(build, "explore", fixed, "--json", "--max-triggers", "2")
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        del out["elapsed_s"], out["states_per_s"]
        outputs[build + " explore"] = out
    assert outputs["compiled"] == outputs["interpreted"]
    assert outputs["compiled explore"] == outputs["interpreted explore"]
    assert outputs["compiled explore"]["states"] == 24_241


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler: the"
                    " install falls back to the interpreted model")
@pytest.mark.slow
def test_rule_coverage_restarts_on_the_interpreted_model(
        tmp_path: Path) -> None:
    proc = _fuzzinit(None, "run", SEED, "--seed", "3", "--json",
                     "--rule-coverage", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr
    reach = json.loads(proc.stdout)["rule_coverage"]
    assert reach["rules_reached"] >= 10


def test_fuzz_workers_run_the_build_their_coverage_needs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fuzzinit.fuzz.campaign import _env
    from fuzzinit.scenario.load import load

    sc = load(SEED)
    monkeypatch.delenv(model_build.ENV, raising=False)
    assert model_build.ENV not in _env(sc, tmp_path, "state", False, tmp_path)
    # Line coverage instruments Python: the workers run interpreted.
    assert _env(sc, tmp_path, "lines", False,
                tmp_path)[model_build.ENV] == "interpreted"
    # A command restarted for --rule-coverage runs interpreted itself; its
    # campaign's workers go back to the default build.
    monkeypatch.setenv(model_build.ENV, "interpreted")
    monkeypatch.setenv(model_build.REEXEC, "1")
    env = _env(sc, tmp_path, "state", False, tmp_path)
    assert model_build.ENV not in env and model_build.REEXEC not in env
    monkeypatch.delenv(model_build.REEXEC)
    assert _env(sc, tmp_path, "state", False,
                tmp_path)[model_build.ENV] == "interpreted"
