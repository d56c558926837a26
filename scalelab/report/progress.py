"""Progress bars for long report work (transition fits, figures), written to a text stream.

The library reports progress through a callback taking one preformatted line; the CLI passes
:func:`stream_progress`, which redraws one line in place on a terminal and prints one line per
update otherwise (logs, CI), like ``scalelab grid``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressCallback", "Steps", "bar", "stream_progress"]

#: receives one formatted progress line
ProgressCallback = Callable[[str], None]


def bar(done: int, total: int, note: str, width: int = 24) -> str:
    """``[#####...] 3/10 note``: a fixed-width bar for ``done`` of ``total`` units."""
    filled = int(width * done / total) if total > 0 else width
    filled = max(0, min(width, filled))
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {note}".rstrip()


class Steps:
    """Count units of one task and report each through a callback.

    Parameters
    ----------
    task : str
        What is being done (``transition fits``); starts every line.
    total : int
        Number of units.
    callback : ProgressCallback or None
        Where lines go; ``None`` reports nothing.
    """

    def __init__(self, task: str, total: int, callback: ProgressCallback | None) -> None:
        self.task = task
        self.total = total
        self.done = 0
        self._say = callback

    def start(self) -> None:
        """Report the task with nothing done yet."""
        if self._say is not None:
            self._say(bar(0, self.total, f"{self.task}"))

    def advance(self, note: str = "") -> None:
        """Count one unit done; ``note`` names it."""
        self.done += 1
        if self._say is not None:
            self._say(bar(self.done, self.total, f"{self.task}: {note}" if note else self.task))


def stream_progress(stream: TextIO | None = None) -> ProgressCallback:
    """A callback writing progress lines to ``stream`` (default: standard error).

    On a terminal each line overwrites the previous one (a final newline is written when a
    bar is full); elsewhere every line is printed.
    """
    out = sys.stderr if stream is None else stream
    live = bool(getattr(out, "isatty", lambda: False)())

    def say(line: str) -> None:
        if live:
            full = line.startswith("[") and "." not in line.split("]", 1)[0]
            out.write("\r\033[K" + line + ("\n" if full else ""))
        else:
            out.write(line + "\n")
        out.flush()

    return say
