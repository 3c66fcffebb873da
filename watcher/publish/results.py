"""The per-epoch results folder: samples, 24 px recoveries, metrics.json, pictures.

Written into `epoch-NNN.tmp` first and renamed into place, so a crash never leaves a
half-written epoch folder that looks complete.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


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

    def write_metrics(self, metrics: Mapping[str, Any]) -> None:
        (self.tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")

    def save_picture(self, name: str, image: Image.Image) -> None:
        image.save(self.tmp / name)

    def save_review(self, index: int, seed: int, image: Image.Image) -> str:
        (self.tmp / "review").mkdir(exist_ok=True)
        name = sample_name(index, seed)
        image.save(self.tmp / "review" / name)
        return f"review/{name}"

    def finish(self) -> Path:
        if self.final.exists():
            shutil.rmtree(self.final)
        self.tmp.rename(self.final)
        return self.final

    def abandon(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)
