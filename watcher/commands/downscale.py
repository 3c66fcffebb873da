"""`epochwatch downscale`: recover the logical pixel grid; writes DIR/<same name>.png, an
N x N PNG (`photo.jpg` becomes `photo.png`: PNG data under a .jpg name surprised people),
with the permissions the process umask gives any new file.

A bad image gets a one-line error, the others are still written, the exit status is 1.
An output never overwrites its own input or another input's output. Never imports torch.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from evaluators import recover_grid
from watcher.commands._images import ImageLoadError, load_rgb
from watcher.commands.score import check_cells
from watcher.errors import CommandError
from watcher.progress import Batch


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_png_atomically(cells_rgb: np.ndarray, target: Path, mode: int,
                          written: Callable[[], None]) -> None:
    from PIL import Image

    # Ctrl-C held back until the temp file's name is known to the cleanup below: one between
    # mkstemp and `try` would leave a stray .tmp file behind.
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        raise
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(cells_rgb).save(handle, format="PNG")
        os.chmod(tmp, mode)  # mkstemp makes 0600; a plain new file gets 0666 less the umask
        # Ctrl-C held back between the rename and the count, so "interrupted after N" is
        # exactly the number of files in place.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            os.replace(tmp, target)
            written()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(args: argparse.Namespace) -> int:
    cells = check_cells(args.cells)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise CommandError(f"--out-dir {out_dir} exists and is not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create --out-dir {out_dir}: {exc.strerror or exc}") from None

    mode = 0o666 & ~_umask()
    failures = 0
    claimed: dict[str, str] = {}
    with Batch(len(args.images), "images", "downscaling") as batch:
        for image in args.images:
            source = Path(image)
            target = out_dir / f"{source.stem}.png"
            try:
                if target.name in claimed:
                    raise ImageLoadError(f"same output name {target.name} as {claimed[target.name]}; "
                                         "its output would be overwritten")
                if source.exists() and target.exists() and source.resolve() == target.resolve():
                    raise ImageLoadError("the output would overwrite the input; choose another --out-dir")
                rgb = load_rgb(source, cells=cells)
                grid = recover_grid(rgb, cells)
                _write_png_atomically(grid.cells, target, mode, batch.advance)
            except ImageLoadError as exc:
                failures += 1
                print(f"epochwatch downscale: {image}: {exc}", file=sys.stderr)
                batch.advance()
                continue
            except OSError as exc:
                failures += 1
                print(f"epochwatch downscale: {image}: cannot write {target}: {exc.strerror or exc}", file=sys.stderr)
                batch.advance()
                continue
            claimed[target.name] = image
            print(f"{image} -> {target} ({cells}x{cells}, pitch {grid.pitch_x:.2f}x{grid.pitch_y:.2f} px, "
                  f"offset {grid.offset_x:.1f},{grid.offset_y:.1f})")
    if failures:
        print(f"epochwatch downscale: {failures} of {len(args.images)} images failed", file=sys.stderr)
        return 1
    return 0
