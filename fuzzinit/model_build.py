"""Which build of the reference model this process runs: compiled or
interpreted.

The install compiles fuzzinit/model and the explorer's hot path (EXTRA)
with mypyc when it can (setup.py) and leaves the extension modules beside
the sources, so a plain import finds them first. They are used only while
fuzzinit/_compiled.json still holds the digest of the sources: a module
edited after the install runs interpreted until it is rebuilt, never as a
stale copy. FUZZINIT_MODEL=interpreted forces the sources (rule
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

ROOT = Path(__file__).resolve().parent   # the fuzzinit package
STAMP = "_compiled.json"
ENV = "FUZZINIT_MODEL"
# Set beside ENV=interpreted when the CLI restarted itself for
# --rule-coverage: the fuzz campaign's workers go back to the default build.
REEXEC = "FUZZINIT_MODEL_FOR_RULE_COVERAGE"
# What the install compiles: the model and the explorer's hot path
# (successor generation, state keys, the visited set), as paths under ROOT.
EXTRA = ("orderings/schedule.py", "explore/bfs.py", "explore/store.py",
         "explore/symmetry.py", "explore/independence.py")


def compiled_files(root: Path = ROOT) -> list[str]:
    """The compiled modules' sources, relative to root. Package
    __init__ files stay Python: a compiled one in a group named for
    another package gets a wrong __path__."""
    return sorted(f"model/{p.name}" for p in (root / "model").glob("*.py")
                  if p.name != "__init__.py") + list(EXTRA)


def module_name(rel: str) -> str:
    """'model/run.py' -> 'fuzzinit.model.run'."""
    return "fuzzinit." + rel.removesuffix(".py").replace("/", ".")


def source_digest(root: Path = ROOT) -> str:
    """sha256 over the compiled modules' sources, names and contents."""
    h = hashlib.sha256()
    for rel in compiled_files(root):
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()


def compiled_state(root: Path = ROOT) -> str | None:
    """None when an up-to-date compiled build sits in root, else why not."""
    stamp = root / STAMP
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    if not stamp.exists():
        return "not built at install (no C compiler, or the build failed)"
    try:
        built = json.loads(stamp.read_text()).get("sources")
    except (OSError, ValueError) as exc:
        return f"{stamp} unreadable ({exc})"
    if built != source_digest(root):
        return "the sources changed after the build (reinstall to rebuild:" \
            " make demo, or pip install -e .)"
    for rel in compiled_files(root):
        built_file = root / (rel.removesuffix(".py") + suffix)
        if not built_file.exists():
            return f"{built_file.relative_to(root)} is missing"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Imports the compiled modules from their .py files even where
    extension modules sit beside them."""

    def __init__(self) -> None:
        self.sources = {module_name(rel): ROOT / rel
                        for rel in compiled_files()}

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        return importlib.util.spec_from_file_location(fullname, source)


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
        finder = _SourceFinder()
        early = sorted(set(finder.sources) & set(sys.modules))
        if early:
            raise RuntimeError(f"{', '.join(early)} imported before"
                               " fuzzinit.model_build.select()")
        sys.meta_path.insert(0, finder)
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
