"""What harness processes tell their campaign, through a pipe every one of
them inherits (libFuzzer fork-mode workers too: their stderr goes to
libFuzzer's logs, not to the campaign).

One JSON object per line, written with one write(2) of at most PIPE_BUF
bytes, so lines of concurrent workers never interleave (POSIX write(2) on
a pipe). Kinds: "finding" (a trace saved), "io_error" (a trace or the
crashes folder could not be written), "exception" (the harness raised).
"""

from __future__ import annotations

import json
import os
import select
from typing import Any

NOTIFY_FD = "FUZZINIT_NOTIFY_FD"
LIFELINE_FD = "FUZZINIT_LIFELINE_FD"
PIPE_BUF = 4096

# Exit status of a harness process that stopped on purpose.
EXIT_STOP = 79        # --stop-on-failure: a finding was saved
EXIT_IO_ERROR = 78    # a finding or the crashes folder could not be written
EXIT_ORPHAN = 77      # started after its campaign had ended


def send(message: dict[str, Any]) -> None:
    """Best effort: without the variable (a harness run by hand) or with
    the campaign gone, there is no one to tell."""
    fd = os.environ.get(NOTIFY_FD)
    if not fd:
        return
    data = (json.dumps(message) + "\n").encode()
    # Too long for one atomic write: shorten the long text fields until it
    # fits, so the line stays whole JSON (cutting the bytes would break it
    # and the line after it).
    limit = 1024
    while len(data) > PIPE_BUF and limit >= 16:
        message = {k: (v[:limit] + "..." if isinstance(v, str)
                       and len(v) > limit else v)
                   for k, v in message.items()}
        data = (json.dumps(message) + "\n").encode()
        limit //= 2
    if len(data) > PIPE_BUF:
        data = (json.dumps({"kind": message.get("kind", "io_error")})
                + "\n").encode()
    try:
        os.write(int(fd), data)
    except (OSError, ValueError):
        pass


def campaign_gone() -> bool:
    """True when the campaign that started this process has ended: the
    write end of the lifeline pipe, held by the campaign alone, is closed."""
    fd = os.environ.get(LIFELINE_FD)
    if not fd:
        return False
    try:
        poller = select.poll()
        poller.register(int(fd), select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL)
                   for _, ev in poller.poll(0))
    except (OSError, ValueError):
        return True


def parse(line: str) -> dict[str, Any] | None:
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "kind" in doc else None
