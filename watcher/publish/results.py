"""The record step's files: the per-epoch results folder (samples, 24 px recoveries,
review images, metrics.json, contact sheet), written from an evaluation held in memory.

Written into `epoch-NNN.tmp` first and renamed into place, so a crash never leaves a
half-written epoch folder that looks complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def epoch_dir_name(epoch: int) -> str:
    return f"epoch-{epoch:03d}"


def sample_name(index: int, seed: int) -> str:
    return f"{index:02d}-s{seed}.png"


@dataclass(frozen=True)
class EpochImage:
    """One image of the epoch as its folder will hold it: `samples/NAME` and `samples_24px/NAME`
    (or `review/NAME`, with no cells: review images are not scored)."""

    name: str
    image: Image.Image
    cells: np.ndarray | None = None


def write_epoch_folder(run_dir: Path, epoch: int, metrics: Mapping[str, Any],
                       samples: Sequence[EpochImage], review: Sequence[EpochImage],
                       pictures: Mapping[str, Image.Image]) -> Path:
    """The epoch's folder, in place; returns its path. On any failure (an unwritable results
    folder) the half-written folder is removed and the error propagates: nothing is there."""
    folder = EpochFolder(run_dir, epoch)
    try:
        for sample in samples:
            folder.save_sample(sample)
        for name, picture in pictures.items():
            folder.save_picture(name, picture)
        for image in review:
            folder.save_review(image)
        folder.write_metrics(metrics)
        return folder.finish()
    except BaseException:
        folder.abandon()
        raise


class EpochFolder:
    """Builds one epoch's folder in a temporary location, then commits it with `finish()`."""

    def __init__(self, run_dir: Path, epoch: int) -> None:
        self.final = run_dir / epoch_dir_name(epoch)
        self.tmp = run_dir / (epoch_dir_name(epoch) + ".tmp")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        (self.tmp / "samples").mkdir(parents=True)
        (self.tmp / "samples_24px").mkdir()

    def save_sample(self, sample: EpochImage) -> None:
        sample.image.save(self.tmp / "samples" / sample.name)
        cells = np.asarray(sample.cells, dtype=np.uint8)
        Image.fromarray(cells).save(self.tmp / "samples_24px" / sample.name)

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        (self.tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    def save_picture(self, name: str, image: Image.Image) -> None:
        image.save(self.tmp / name)

    def save_review(self, image: EpochImage) -> None:
        (self.tmp / "review").mkdir(exist_ok=True)
        image.image.save(self.tmp / "review" / image.name)

    def finish(self) -> Path:
        if self.final.exists():
            shutil.rmtree(self.final)
        self.tmp.rename(self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
