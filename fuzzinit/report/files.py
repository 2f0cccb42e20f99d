"""Atomic file writes: a reader never sees half a file, Ctrl-C loses none.

A file is written to `.<name>.fuzzinit-<pid>-<random>` beside it, synced
and renamed. The writer holds an exclusive flock on its temporary while it
writes, so liveness is a property of the file, not of a pid (which another
PID namespace would not see): a later write into the same folder removes
the temporaries nobody holds - those of a writer that was killed, SIGKILL
included - and leaves a live writer's alone (and any younger than two
seconds, which may not be locked yet). The sweep is best effort: a
stray entry of that name that cannot be removed costs nothing.

Files get the mode the user's umask gives a new file (mkstemp alone would
make them 0600). A path that exists and is not a regular file (a device, a
FIFO, /dev/stdout) is written through, not replaced; a symlink to a regular
file is followed, so the link stays a link.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import tempfile
import time
from pathlib import Path

TEMP_RE = re.compile(r"^\..+\.fuzzinit-(\d+)-[A-Za-z0-9_]+$")
# A temporary younger than this may be between its creation and its lock.
MIN_AGE_S = 2.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _umask()


def _unheld(path: Path) -> bool:
    """True when `path` is a regular file no writer holds a lock on."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or \
                time.time() - info.st_mtime < MIN_AGE_S:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:       # BlockingIOError: a live writer holds it
        return False
    finally:
        os.close(fd)


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in `folder` that no writer holds; returns
    them."""
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        path = folder / name
        if TEMP_RE.match(name) and _unheld(path):
            try:
                path.unlink()
            except OSError:
                continue
            removed.append(path)
    return removed


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` atomically. Raises OSError (ENOSPC, EROFS,
    EACCES, ...) as it comes, naming `path`: callers decide what a failed
    write means."""
    try:
        _write(path, text)
    except OSError as exc:
        # Name the file the caller asked for, not the temporary.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def _write(path: Path, text: str) -> None:
    if path.is_symlink() and path.resolve().is_file():
        path = path.resolve()
    if path.exists() and not path.is_dir() and not path.is_file():
        with open(path, "w", encoding="utf-8") as fh:   # a device, a FIFO
            fh.write(text)
        return
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent,
                               prefix=f".{path.name}.fuzzinit-{os.getpid()}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            os.fchmod(fh.fileno(), 0o666 & ~UMASK)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
            # Renamed while still locked: a sweeper never sees it unheld.
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
