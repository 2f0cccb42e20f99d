"""Atomic file writes: a reader never sees half a file, Ctrl-C loses none.

A file is written to `.<name>.fuzzinit-<pid>-<random>` beside it, synced
and renamed. A temporary whose writer was killed (SIGKILL leaves no chance
to unlink it) is removed by the next write into the same folder; one whose
writer is still alive is left alone, so concurrent runs never delete each
other's work. Files get the mode the user's umask gives a new file
(mkstemp alone would make them 0600).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

TEMP_RE = re.compile(r"^\..+\.fuzzinit-(\d+)-[A-Za-z0-9_]+$")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries of dead writers in `folder`; returns them."""
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return removed
    for name in names:
        m = TEMP_RE.match(name)
        if m and not _alive(int(m.group(1))):
            path = folder / name
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically. Raises OSError (ENOSPC, EROFS,
    EACCES, ...) as it comes: callers decide what a failed write means."""
    try:
        _write(path, text)
    except OSError as exc:
        # Name the file the caller asked for, not the temporary.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _write(path: Path, text: str) -> None:
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent,
                               prefix=f".{path.name}.fuzzinit-{os.getpid()}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~UMASK)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
