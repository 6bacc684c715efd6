"""One status line on stderr, rewritten in place, so a long run shows it is alive.

Throttled (the coordinator shares the CPU with the servers it measures). When stderr is not a
terminal the line is printed at most every few seconds instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """A throttled, single-line status display."""

    def __init__(self, prefix: str = "", interval: float = 0.2) -> None:
        self.prefix = prefix
        self.tty = sys.stderr.isatty()
        self.interval = interval if self.tty else 5.0
        self._last = 0.0
        self._width = 0

    def update(self, text: str, force: bool = False) -> None:
        """Show ``text`` (after the prefix) unless the last update was too recent."""
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        line = f"{self.prefix} {text}".strip()
        if self.tty:
            pad = max(self._width - len(line), 0)
            sys.stderr.write("\r" + line + " " * pad)
            self._width = len(line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def done(self, text: str = "") -> None:
        """End the status line, optionally with a final message."""
        if self.tty:
            sys.stderr.write("\r" + " " * self._width + "\r")
            self._width = 0
        if text:
            sys.stderr.write(f"{self.prefix} {text}".strip() + "\n")
        sys.stderr.flush()
