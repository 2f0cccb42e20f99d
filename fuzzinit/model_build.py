"""Which build of the reference model this process runs: compiled or
interpreted.

The install compiles fuzzinit/model with mypyc when it can (setup.py) and
leaves the extension modules beside the sources, so a plain import of
`fuzzinit.model.*` finds them first. They are used only while
fuzzinit/model/_compiled.json still holds the digest of the sources: a
model edited after the install runs interpreted until it is rebuilt, never
as a stale copy. FUZZINIT_MODEL=interpreted forces the sources (rule
coverage and line coverage trace Python code; the test suite measures the
model's branches); FUZZINIT_MODEL=compiled makes a missing or stale build
an error instead of a fallback.

`select()` runs when `fuzzinit` is imported, before anything imports the
model; it is the only place the choice is made, so every command, the
explorer, the fuzz harness and the exporter run one and the same model.
"""

from __future__ import annotations

import hashlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

MODEL = Path(__file__).resolve().parent / "model"
STAMP = "_compiled.json"
ENV = "FUZZINIT_MODEL"
# Set beside ENV=interpreted when the CLI restarted itself for
# --rule-coverage: the fuzz campaign's workers go back to the default build.
REEXEC = "FUZZINIT_MODEL_FOR_RULE_COVERAGE"
PACKAGE = "fuzzinit.model"


def source_digest(folder: Path) -> str:
    """sha256 over the model's source files, names and contents."""
    h = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def compiled_state(folder: Path = MODEL) -> str | None:
    """None when an up-to-date compiled build sits in folder, else why not."""
    stamp = folder / STAMP
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if not stamp.exists():
        return "not built at install (no C compiler, or the build failed)"
    try:
        built = json.loads(stamp.read_text()).get("sources")
    except (OSError, ValueError) as exc:
        return f"{stamp} unreadable ({exc})"
    if built != source_digest(folder):
        return "the model's sources changed after the build (reinstall" \
            " to rebuild: make demo, or pip install -e .)"
    if not (folder / f"run{suffix}").exists():
        return f"run{suffix} is missing"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Imports fuzzinit.model and its modules from their .py files even
    where extension modules sit beside them."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname == PACKAGE:
            return importlib.util.spec_from_file_location(
                fullname, MODEL / "__init__.py",
                submodule_search_locations=[str(MODEL)])
        if fullname.startswith(PACKAGE + "."):
            source = MODEL / (fullname.rpartition(".")[2] + ".py")
            if source.exists():
                return importlib.util.spec_from_file_location(fullname,
                                                              source)
        return None


_chosen: str = ""
_why: str | None = None


def select() -> None:
    """Choose the build for this process (idempotent)."""
    global _chosen, _why
    if _chosen:
        return
    want = os.environ.get(ENV, "")
    if want not in ("", "compiled", "interpreted"):
        raise RuntimeError(f"{ENV}={want!r}: expected 'compiled' or"
                           " 'interpreted'")
    _why = compiled_state()
    if want == "compiled" and _why is not None:
        raise RuntimeError(f"{ENV}=compiled: no usable compiled model:"
                           f" {_why}")
    if want == "interpreted":
        _why = f"{ENV}=interpreted"
    if _why is not None:
        if any(m == PACKAGE or m.startswith(PACKAGE + ".")
               for m in sys.modules):
            raise RuntimeError("fuzzinit.model was imported before"
                               " fuzzinit.model_build.select()")
        sys.meta_path.insert(0, _SourceFinder())
        _chosen = "interpreted"
    else:
        _chosen = "compiled"


def build() -> str:
    """'compiled' or 'interpreted': what this process runs."""
    select()
    return _chosen


def describe() -> str:
    """One line for `fuzzinit --version`."""
    if build() == "compiled":
        return "compiled model (mypyc)"
    return f"interpreted model ({_why})"
