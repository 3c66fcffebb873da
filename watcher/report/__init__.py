"""Reports, pictures, cross-run analysis and manual review.

The functions here are the package's API for the daemon and the commands; each imports its
module only when called, so importing `watcher.report` costs nothing (no numpy, no
matplotlib): `status` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

    from watcher.config import WatchConfig
    from watcher.store import Store

T = TypeVar("T")


def write_run_pictures(cfg: WatchConfig, store: Store) -> list[Path]:
    """grid.png, curves.png and, with training figures, loss.png in `cfg.run_results_dir`;
    called after every epoch."""
    from watcher.report.pictures import write_run_pictures as write

    return write(cfg, store)


def write_report(cfg: WatchConfig, store: Store) -> Path:
    """report.md (and the pictures) in `cfg.run_results_dir`; returns the report's path."""
    from watcher.report.report import write_report as write

    return write(cfg, store)


def contact_sheet(rows: Sequence[tuple[Image.Image, np.ndarray, str]], columns: int | None = None,
                  title: str = "") -> Image.Image:
    """One epoch's contact sheet: (sample, 24 px cells, caption) tiles."""
    from watcher.report.pictures import contact_sheet as sheet

    return sheet(rows, columns=columns, title=title)


def progress(iterable: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """A progress bar on a terminal, a plain passthrough otherwise."""
    from watcher.report.progressbar import progress as bar

    return bar(iterable, total, description)
