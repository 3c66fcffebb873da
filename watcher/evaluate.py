"""The evaluate stage: one checkpoint -> samples at 512 px and 24 px, scores, aggregate.

Runs on the warm `SamplePipeline` owned by the daemon: only the LoRA changes between epochs.
The results folder is left unfinished (decisions are added by the decide stage before the
folder is moved into place by publish). At the plan's review epochs a diverse prompt set is
also rendered into `review/` for people to look at (not scored: the decision prompts are).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluators import aggregate_epoch, score_image
from watcher.publish.results import EpochFolder
from watcher.report import contact_sheet, progress, review_prompts
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


def _caption(index: int, seed: int, entry: dict[str, Any]) -> str:
    match = entry.get("background_match")
    verdict = "no bg" if match is None else ("bg ok" if match else "bg wrong")
    return f"{index:02d} seed {seed}: {verdict}, style {entry['style_quality']:.0f}"


def review_set(cfg: Any) -> list[Any]:
    """The review prompts: the configured file, else variations of the test prompts."""
    configured = cfg.review_prompts()
    if configured:
        return configured
    base = cfg.prompts()
    if not base:
        return []
    texts = review_prompts([p.text for p in base])
    return [dataclasses.replace(base[0], text=t) for t in texts]


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
        pairs = progress(list(zip(prompts, images, strict=True)), len(prompts), f"scoring epoch {epoch}")
        for index, (prompt, image) in enumerate(pairs):
            rgb = np.asarray(image.convert("RGB"))
            score = score_image(rgb, prompt.text, cfg.evaluation.cells)
            sample, sample_24 = folder.save_sample(index, prompt.seed, image, score.cells)
            entry = {"prompt": prompt.text, "seed": prompt.seed, "sample": sample,
                     "sample_24px": sample_24, **score.to_dict()}
            entries.append(entry)
            sheet_rows.append((image, score.cells, _caption(index, prompt.seed, entry)))
            heartbeat()
        columns = max(1, len(cfg.sampling.seeds))
        folder.save_picture("contact_sheet.png", contact_sheet(
            sheet_rows, columns=columns, title=f"{cfg.run.name} epoch {epoch}"))
        t_scored = time.perf_counter()
        review = []
        if epoch in cfg.sampling.review_epochs:
            review = review_set(cfg)
            review_images = pipeline.generate(review, cfg.model.batch_size) if review else []
            for index, (prompt, image) in enumerate(zip(review, review_images, strict=True)):
                folder.save_review(index, prompt.seed, image)
            heartbeat()
    except BaseException:
        folder.abandon()
        raise

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
        "aggregate": aggregate_epoch(entries),
        "decisions": [],
        "review_prompts": [p.text for p in review],
        "timing": {
            "generate_s": round(t_generated - t0, 3),
            "score_s": round(t_scored - t_generated, 3),
            "review_s": round(time.perf_counter() - t_scored, 3),
        },
    }
    return EpochEvaluation(epoch=epoch, checkpoint=checkpoint, folder=folder, metrics=metrics)
