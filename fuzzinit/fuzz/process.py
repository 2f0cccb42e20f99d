"""The processes and the temporary folder a campaign owns, and how they end
with it - however it ends, SIGKILL included.

- The harness runs in a new session (its own process group); libFuzzer's
  fork-mode workers, started through system(3), stay in that group.
- A lifeline pipe: the campaign alone holds its write end; the read end,
  set O_ASYNC with the harness's group as owner (fcntl(2) F_SETOWN), is
  inherited by every process of the group. When the campaign dies, the
  kernel closes the write end and sends SIGIO to the whole group
  (fs/pipe.c pipe_release -> kill_fasync), whose default action ends each
  of them - grandchildren included, which PR_SET_PDEATHSIG (the direct
  child only) does not reach.
- While it runs, the campaign is a child subreaper (prctl(2)
  PR_SET_CHILD_SUBREAPER), so orphaned workers are reparented to it and
  reaped here after the group is killed.
- The temporary folder (launcher, libFuzzer's artifacts and, through
  TMPDIR, its FuzzWithFork* folders) is named after the campaign's pid and
  start time; a campaign removes it on exit, and the next one removes it
  if its owner is gone - never one of a campaign still running.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
TMP_NAME = re.compile(r"^fuzzinit-(\d+)-(\d+)-")


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _start_time(pid: int) -> int | None:
    """Clock ticks after boot at which `pid` started (proc(5) stat field
    22), or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2:].split()[19])


def _alive(pid: int, start: int) -> bool:
    return _start_time(pid) == start


_held: list[int] = []   # lock descriptors of this process's temp folders


def make_temp() -> Path:
    """The campaign's temporary folder, after removing those of campaigns
    that are gone. The campaign holds a flock on `.lock` inside it for its
    whole life (the descriptor is not inherited by the harness), so a
    folder is known to be in use even from another PID namespace."""
    root = Path(tempfile.gettempdir())
    remove_stale(root)
    me = os.getpid()
    folder = Path(tempfile.mkdtemp(
        prefix=f"fuzzinit-{me}-{_start_time(me) or 0}-", dir=root))
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    _held.append(fd)
    return folder


def release_temp() -> None:
    """Drop the locks of this process's temp folders (they are removed)."""
    while _held:
        os.close(_held.pop())


def _in_use(folder: Path, pid: int, start: int) -> bool:
    try:
        fd = os.open(folder / ".lock", os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        # No lock yet (being created) or an older campaign's folder: by
        # its pid and start time, and only once it is a few seconds old.
        try:
            young = time.time() - folder.stat().st_mtime < 10
        except OSError:
            return False
        return young or (_alive(pid, start) if start else True)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def remove_stale(root: Path) -> None:
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for entry in entries:
        m = TMP_NAME.match(entry.name)
        if m and entry.is_dir() and not entry.is_symlink() and \
                not _in_use(entry, int(m.group(1)), int(m.group(2))):
            shutil.rmtree(entry, ignore_errors=True)


def _group_members(pgid: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, state) of each process in group `pgid`."""
    found: list[tuple[int, int, str]] = []
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return found   # no /proc: SIGKILL to the group is all there is
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()
        if int(fields[2]) == pgid:
            found.append((int(entry.name), int(fields[1]), fields[0]))
    return found


class Owned:
    """The harness process and every process it starts."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        libc = _libc()
        self._libc = libc
        read_end, self._lifeline = os.pipe()
        self.notify, notify_w = os.pipe()
        env = dict(env, FUZZINIT_LIFELINE_FD=str(read_end),
                   FUZZINIT_NOTIFY_FD=str(notify_w))
        try:
            self.child = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True, env=env,
                start_new_session=True, pass_fds=(read_end, notify_w),
                preexec_fn=_setup(libc, read_end, os.getpid()))
        except BaseException:
            os.close(self._lifeline)
            os.close(self.notify)
            raise
        finally:
            os.close(read_end)
            os.close(notify_w)
        if libc is not None:
            libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.pgid = self.child.pid
        self.status: int | None = None

    def exited(self) -> bool:
        """Whether the harness has exited; it stays unreaped (a zombie
        keeps its pid, so the group id cannot be reused) until stop()."""
        if self.status is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.child.pid,
                             os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return info is not None

    def stop(self, gently: bool) -> None:
        """End the group: SIGINT first if `gently` (libFuzzer prints its
        final stats), then SIGKILL to whatever is left; reap."""
        if self.status is None:
            if gently and not self.exited():
                self._signal(signal.SIGINT)
                deadline = time.monotonic() + 0.8
                while not self.exited() and time.monotonic() < deadline:
                    time.sleep(0.02)
            self._signal(signal.SIGKILL)
            self.status = self.child.wait()
            self._reap(time.monotonic() + 2.0)
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1
        if self._libc is not None:
            self._libc.prctl(PR_SET_CHILD_SUBREAPER, 0)

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _reap(self, deadline: float) -> None:
        me = os.getpid()
        while time.monotonic() < deadline:
            members = _group_members(self.pgid)
            for pid, parent, _ in members:
                if parent == me:
                    try:
                        os.waitpid(pid, os.WNOHANG)
                    except ChildProcessError:
                        pass
            if all(state == "Z" and parent != me
                   for _, parent, state in members):
                return   # gone, or zombies init reaps
            self._signal(signal.SIGKILL)
            time.sleep(0.02)


def _setup(libc: ctypes.CDLL | None, lifeline: int,
           parent: int) -> Callable[[], None]:
    """Runs in the child between fork and exec (after setsid)."""
    def setup() -> None:
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        fcntl.fcntl(lifeline, fcntl.F_SETOWN, -os.getpid())
        flags = fcntl.fcntl(lifeline, fcntl.F_GETFL)
        fcntl.fcntl(lifeline, fcntl.F_SETFL, flags | os.O_ASYNC)
        if os.getppid() != parent:
            os._exit(77)   # the campaign died before we were set up
    return setup
