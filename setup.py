"""Build hook: compile the reference model (fuzzinit/model) and the
explorer's hot path with mypyc (the list: fuzzinit/model_build.py).

Everything else about the package is in pyproject.toml. With a C compiler
the install compiles those modules into extension modules beside their
sources and writes fuzzinit/_compiled.json (a digest of the sources they
were built from; fuzzinit/model_build.py loads them only while it
matches).
Without one, with FUZZINIT_NO_COMPILE=1, or when the build fails, the
install goes on with the interpreted model and says so in one line.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import Any

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _model_build() -> Any:
    """fuzzinit/model_build.py, loaded by path: importing the package here
    would run its import-time selection inside the build."""
    spec = importlib.util.spec_from_file_location(
        "_fuzzinit_model_build", ROOT / "fuzzinit" / "model_build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module




def notice(why: str) -> None:
    print(f"fuzzinit: {why}: installing the interpreted model (5x slower;"
          " README \"Install\")", file=sys.stderr)


def compiler() -> str | None:
    """The C compiler the build would call, if it is on PATH."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC")
          or "cc").split()[0]
    return shutil.which(cc)


class BuildModel(build_ext):
    """build_ext that falls back to the interpreted model on failure and
    stamps a successful build with the digest of its sources."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any failure falls back
            notice(f"the mypyc build failed ({type(exc).__name__}: {exc})")
            self._remove_partial()
            return
        mb = _model_build()
        stamp = Path(self.get_ext_fullpath("fuzzinit.model.run")).parent \
            .parent / mb.STAMP
        stamp.write_text(json.dumps(
            {"sources": mb.source_digest(ROOT / "fuzzinit")}) + "\n")

    def _remove_partial(self) -> None:
        """A half-built model must not be imported: drop what was built."""
        for ext in self.extensions:
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)


def extensions() -> list[Any]:
    if os.environ.get("FUZZINIT_NO_COMPILE") == "1":
        notice("FUZZINIT_NO_COMPILE=1")
        return []
    if compiler() is None:
        notice("no C compiler found")
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as exc:
        notice(f"mypyc is not available ({exc})")
        return []
    files = [f"fuzzinit/{rel}" for rel in _model_build().compiled_files(
        ROOT / "fuzzinit")]
    try:
        # The modules compiled import others that are not (the scenario
        # loader, Hypothesis behind it): mypy follows them silently and
        # need not find third-party packages in pip's build environment.
        exts: list[Any] = mypycify(
            ["--follow-imports=silent", "--ignore-missing-imports", *files],
            opt_level="3", group_name="fuzzinit.native")
    except Exception as exc:  # noqa: BLE001 - any failure falls back
        notice(f"mypyc could not translate the model ({exc})")
        return []
    return exts


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildModel})
