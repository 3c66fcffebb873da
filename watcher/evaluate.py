"""The evaluate stage: one checkpoint -> samples at 512 px and 24 px, scores, aggregate.

Runs on the warm `SamplePipeline` owned by the daemon: only the LoRA changes between epochs.
The results folder is left unfinished (decisions are added by the decide stage before the
folder is moved into place by publish).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluators import aggregate_epoch, score_image
from watcher.publish.results import EpochFolder
from watcher.store import Checkpoint


@dataclass
class EpochEvaluation:
    epoch: int
    checkpoint: Checkpoint
    folder: EpochFolder
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def aggregate(self) -> dict[str, Any]:
        return self.metrics["aggregate"]


def evaluate_checkpoint(
    pipeline: Any,
    cfg: Any,
    checkpoint: Checkpoint,
    epoch: int,
    heartbeat: Callable[[], None] = lambda: None,
) -> EpochEvaluation:
    """Swap the checkpoint's LoRA in, render the configured prompts, score every image."""
    t0 = time.perf_counter()
    pipeline.apply_lora(checkpoint.path)
    heartbeat()
    prompts = cfg.prompts()
    images = pipeline.generate(prompts, cfg.model.batch_size)
    heartbeat()
    t_generated = time.perf_counter()

    folder = EpochFolder(cfg.run_results_dir, epoch)
    entries: list[dict[str, Any]] = []
    sheet_rows = []
    try:
        for index, (prompt, image) in enumerate(zip(prompts, images, strict=True)):
            rgb = np.asarray(image.convert("RGB"))
            score = score_image(rgb, prompt.text, cfg.evaluation.cells)
            sample, sample_24 = folder.save_sample(index, prompt.seed, image, score.cells)
            entry = {"prompt": prompt.text, "seed": prompt.seed, "sample": sample,
                     "sample_24px": sample_24, **score.to_dict()}
            entries.append(entry)
            verdict = "bg ok" if entry.get("background_match") else "bg wrong"
            if entry.get("background_match") is None:
                verdict = "no bg"
            sheet_rows.append((image, score.cells, f"{index:02d} seed {prompt.seed}: {verdict}, "
                               f"style {entry['style_quality']:.0f}"))
            heartbeat()
        folder.write_contact_sheet(sheet_rows)
    except BaseException:
        folder.abandon()
        raise
    t_scored = time.perf_counter()

    metrics = {
        "run": cfg.run.name,
        "epoch": epoch,
        "checkpoint": {
            "path": checkpoint.path,
            "sha256": checkpoint.sha256,
            "size": checkpoint.size,
            "metadata": checkpoint.metadata,
        },
        "images": entries,
        "aggregate": aggregate_epoch([{k: v for k, v in e.items()} for e in entries]),
        "decisions": [],
        "timing": {
            "generate_s": round(t_generated - t0, 3),
            "score_s": round(t_scored - t_generated, 3),
        },
    }
    return EpochEvaluation(epoch=epoch, checkpoint=checkpoint, folder=folder, metrics=metrics)


def results_paths(folder_final: Path) -> list[Path]:
    return [folder_final]
