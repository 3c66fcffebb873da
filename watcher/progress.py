"""Progress for batch commands (`score`, `downscale`, `report`, `replay`) and the launcher's
wait: a rich bar or spinner on stderr while it is a terminal; nothing in JSON mode, under
systemd (INVOCATION_ID / JOURNAL_STREAM) or when stderr is a pipe or a file.

Ctrl-C inside a `Batch` becomes `Interrupted(done, total, noun)`, which the CLI reports as
"interrupted after N of M <noun>" (exit 130); what was printed or written before stays.
"""

from __future__ import annotations

import os
import sys
import time
from types import TracebackType
from typing import Any

from watcher.errors import Interrupted


def wanted(json_mode: bool = False) -> bool:
    if json_mode or os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced stderr
        return False


class Batch:
    """`with Batch(len(items), "images", "scoring") as b: ... b.advance()`."""

    def __init__(self, total: int, noun: str, description: str, json_mode: bool = False) -> None:
        self.total, self.noun, self.description = total, noun, description
        self.done = 0
        self._show = wanted(json_mode)
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> Batch:
        if self._show:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            # stdout lines go above the bar only when they share its terminal; piped, they
            # must stay on stdout (a rich redirect would send them to stderr)
            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                                 redirect_stdout=sys.stdout.isatty(), redirect_stderr=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        if kind is not None and issubclass(kind, KeyboardInterrupt):
            raise Interrupted(self.done, self.total, self.noun) from None


class Waiting:
    """A one-line spinner ("waiting for epoch 1: 12 s") for the launcher's loop."""

    def __init__(self) -> None:
        self._status: Any = None
        self._since = time.monotonic()
        self._text = ""
        if wanted():
            from rich.console import Console

            self._status = Console(stderr=True).status("", spinner="dots")
            self._status.start()

    def update(self, text: str) -> None:
        if self._status is None:
            return
        if text != self._text:
            self._text, self._since = text, time.monotonic()
        self._status.update(f"{text}: {time.monotonic() - self._since:.0f} s")

    def print(self, line: str, out: Any) -> None:
        """A line above the spinner (so the two never share a terminal row)."""
        if self._status is not None and getattr(out, "isatty", lambda: False)():
            self._status.console.print(line, highlight=False, markup=False, soft_wrap=True)
        else:
            print(line, file=out, flush=True)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
