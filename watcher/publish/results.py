"""The per-epoch results folder: samples, 24 px recoveries, metrics.json, contact sheet.

Written into `epoch-NNN.tmp` first and renamed into place, so a crash never leaves a
half-written epoch folder that looks complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

SHEET_CELL = 256  # px per tile in the contact sheet


def epoch_dir_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}"


def sample_name(index: int, seed: int) -> str:
    return f"{index:02d}-s{seed}.png"


class EpochFolder:
    """Builds one epoch's folder in a temporary location, then commits it with `finish()`."""

    def __init__(self, run_dir: Path, epoch: int) -> None:
        self.final = run_dir / epoch_dir_name(epoch)
        self.tmp = run_dir / (epoch_dir_name(epoch) + ".tmp")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        (self.tmp / "samples").mkdir(parents=True)
        (self.tmp / "samples_24px").mkdir()

    def save_sample(self, index: int, seed: int, image: Image.Image, cells: np.ndarray) -> tuple[str, str]:
        name = sample_name(index, seed)
        image.save(self.tmp / "samples" / name)
        Image.fromarray(np.asarray(cells, dtype=np.uint8)).save(self.tmp / "samples_24px" / name)
        return f"samples/{name}", f"samples_24px/{name}"

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        (self.tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    def write_contact_sheet(self, rows: Sequence[tuple[Image.Image, np.ndarray, str]]) -> None:
        contact_sheet(rows).save(self.tmp / "contact_sheet.png")

    def finish(self) -> Path:
        if self.final.exists():
            shutil.rmtree(self.final)
        self.tmp.rename(self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def contact_sheet(rows: Sequence[tuple[Image.Image, np.ndarray, str]]) -> Image.Image:
    """One row per sample: the 512 px image beside its 24 px recovery shown large
    (nearest-neighbour, so each logical pixel stays a crisp square), with a caption."""
    caption_h = 28
    width = 2 * SHEET_CELL + 12
    sheet = Image.new("RGB", (width, max(1, len(rows)) * (SHEET_CELL + caption_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, cells, caption) in enumerate(rows):
        y = i * (SHEET_CELL + caption_h)
        sheet.paste(image.convert("RGB").resize((SHEET_CELL, SHEET_CELL), Image.LANCZOS), (0, y))
        big = Image.fromarray(np.asarray(cells, dtype=np.uint8)).resize(
            (SHEET_CELL, SHEET_CELL), Image.NEAREST
        )
        sheet.paste(big, (SHEET_CELL + 12, y))
        draw.text((4, y + SHEET_CELL + 6), caption[:80], fill="black")
    return sheet
