"""A single live status line on stderr, for long commands."""

from __future__ import annotations

import sys
import time


class Progress:
    """A single stderr line, refreshed at most every half second."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.last = 0.0

    def show(self, text: str) -> None:
        now = time.monotonic()
        if self.enabled and now - self.last > 0.5:
            self.last = now
            sys.stderr.write(f"\r{text}\x1b[K")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
