"""I/O errors of a campaign. Each one ends it as an error (exit 2, one
line naming the path and the errno), never as a clean result: a campaign
that cannot save what it finds has found nothing anyone will see.

libFuzzer writes corpus inputs without checking the writes (FuzzerIO.cpp
WriteToFile: fopen/fwrite/fclose, results ignored), so the campaign checks
them itself: every input libFuzzer adds is named by the SHA-1 of its bytes
(Fuzzer::WriteToOutputCorpus), and one whose bytes do not match was cut
short. A folder on a disk with no space left is probed with a write.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

from fuzzinit.errors import FuzzinitError

HASH_NAME = re.compile(r"^[0-9a-f]{40}$")


class CampaignIOError(FuzzinitError):
    """An I/O error of a campaign: path, errno, what it was doing, the
    finding it could not save (signature, verdict, core events) if any."""

    def __init__(self, path: str, code: int, doing: str, option: str,
                 finding: tuple[str, str, int] | None = None,
                 fix: str | None = None) -> None:
        self.path = path
        self.code = code
        self.finding = finding
        name = errno.errorcode.get(code, f"errno {code}")
        text = f"{path}: {os.strerror(code)} ({name}) while {doing}"
        if finding is not None:
            sig, verdict, n = finding
            text += f"; finding {verdict} {sig} ({n} events) not saved"
        super().__init__(f"{text}; fix: {fix or _fix(code, option)}")


def _fix(code: int, option: str) -> str:
    if code in (errno.ENOSPC, errno.EDQUOT):
        return (f"free space on that disk or give {option} a folder on"
                " another one, then run again")
    if code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return f"make it writable or give {option} a writable folder"
    if code in (errno.EEXIST, errno.ENOTDIR):
        return (f"expected a folder there: move the file away or give"
                f" {option} another folder")
    if code == errno.EISDIR:
        return "expected a file there: move that folder away"
    return "check that disk, then run again"


def from_os_error(exc: OSError, fallback: Path, doing: str, option: str,
                  finding: tuple[str, str, int] | None = None
                  ) -> CampaignIOError:
    # os.replace(tmp, path) names both: the second is the file meant.
    path = exc.filename2 or exc.filename or fallback
    return CampaignIOError(str(path), exc.errno or errno.EIO, doing, option,
                           finding)


def make_folder(folder: Path, option: str) -> None:
    """Create `folder` (and its parents) or fail with one line."""
    doing = f"creating the folder {folder}"
    existing = nearest_folder(folder)
    if not existing.is_dir():
        raise CampaignIOError(str(existing), errno.ENOTDIR, doing, option)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        # mkdir(exist_ok=True) says EEXIST when a file is in the way.
        raise CampaignIOError(str(folder), errno.ENOTDIR, doing,
                              option) from None
    except OSError as exc:
        raise from_os_error(exc, folder, doing, option) from exc


def probe(folder: Path, option: str) -> None:
    """Write, sync and remove a small file in `folder`: a read-only or full
    disk fails here rather than when a finding is to be saved."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fuzzinit-probe-")
    except OSError as exc:
        raise CampaignIOError(str(folder), exc.errno or errno.EIO,
                              "checking the folder is writable",
                              option) from exc
    try:
        try:
            os.write(fd, b"\0" * 512)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise CampaignIOError(str(folder), exc.errno or errno.EIO,
                              "checking the folder is writable",
                              option) from exc
    finally:
        Path(tmp).unlink(missing_ok=True)


def nearest_folder(path: Path) -> Path:
    """`path` or its nearest existing ancestor (where creating it writes)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def check_space(folder: Path, option: str) -> None:
    """Probe `folder` when its disk reports no block left for us."""
    try:
        full = os.statvfs(folder).f_bavail == 0
    except OSError:
        return   # gone or unreadable: the next write says why
    if full:
        probe(folder, option)


class CorpusCheck:
    """The inputs libFuzzer adds to `inputs`, checked against their names.
    A file is checked once its writer had time to finish (libFuzzer writes
    in place); a mismatch is an I/O error."""

    SETTLE_S = 0.3

    def __init__(self, inputs: Path) -> None:
        self.inputs = inputs
        self.known = self._names()

    def _names(self) -> set[str]:
        try:
            return {p.name for p in self.inputs.iterdir()}
        except OSError:
            return set()

    def check(self, final: bool = False) -> None:
        now = time.time()
        for name in sorted(self._names() - self.known):
            path = self.inputs / name
            if not HASH_NAME.match(name):
                self.known.add(name)
                continue
            try:
                if not final and now - path.stat().st_mtime < self.SETTLE_S:
                    continue
                data = path.read_bytes()
            except FileNotFoundError:
                continue   # libFuzzer removed it (fork-mode merge, -reduce)
            except OSError as exc:
                raise from_os_error(exc, path, "reading back a corpus input",
                                    "--corpus") from exc
            self.known.add(name)
            if hashlib.sha1(data).hexdigest() != name:
                # The errno libFuzzer ignored: most likely the disk is full.
                probe(self.inputs, "--corpus")
                raise CampaignIOError(
                    str(path), errno.EIO, "libFuzzer wrote a corpus input"
                    f" ({len(data)} bytes, cut short)", "--corpus")
