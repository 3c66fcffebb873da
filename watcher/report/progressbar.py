"""Progress bars for generation and scoring: a rich bar on a terminal, nothing in logs."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(iterable: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Yield the items of `iterable`; while stderr is a terminal, draw a bar on it.

    Off a terminal (systemd, CI, log files) the items pass through untouched, so the
    daemon's JSON log lines are never interleaved with bar redraws.
    """
    if not sys.stderr.isatty():
        yield from iterable
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in iterable:
            yield item
            bar.advance(task)
