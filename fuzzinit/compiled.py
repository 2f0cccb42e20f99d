"""Build the reference model with mypyc and load the compiled copy.

The model package uses only relative imports, so a copy of it under another
package name compiles and imports beside the interpreted one; tests and
benchmarks run both on the same inputs.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

PACKAGE = "fuzzinit_model_compiled"
SOURCE = Path(__file__).parent / "model"


def build(dest: Path) -> Path:
    """Copy fuzzinit/model to dest/PACKAGE and compile it in place; returns
    dest. Rebuilds only when a source file changed."""
    pkg = dest / PACKAGE
    sources = sorted(SOURCE.glob("*.py"))
    stamp = pkg / ".sources"
    signature = "\n".join(f"{p.name}:{p.stat().st_mtime_ns}:{p.stat().st_size}"
                          for p in sources)
    if stamp.exists() and stamp.read_text() == signature and \
            list(pkg.glob("*.so")):
        return dest
    if pkg.exists():
        shutil.rmtree(pkg)
    pkg.mkdir(parents=True)
    for src in sources:
        shutil.copy2(src, pkg / src.name)
    mypyc = Path(sys.executable).with_name("mypyc")
    cmd = [str(mypyc) if mypyc.exists() else "mypyc"] + \
        [f"{PACKAGE}/{p.name}" for p in sources]
    env = dict(os.environ, MYPYC_OPT_LEVEL="3")
    subprocess.run(cmd, cwd=dest, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stamp.write_text(signature)
    return dest


def load(dest: Path) -> ModuleType:
    """Import the compiled `run` module built under dest."""
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    module = importlib.import_module(f"{PACKAGE}.run")
    if not str(getattr(module, "__file__", "")).endswith(".so"):
        raise RuntimeError(f"{PACKAGE}.run is not compiled: {module.__file__}")
    return module
