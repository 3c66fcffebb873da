"""The evaluate stage: one epoch's samples -> images at 512 px and 24 px, scores, aggregate.

Two ways in, one way out (`EpochEvaluation`):
- `evaluate_checkpoint`: the daemon's way. The warm `SamplePipeline` swaps the checkpoint's
  LoRA in and renders the configured prompts (only the LoRA changes between epochs); at the
  plan's review epochs a diverse prompt set is also rendered into `review/` for people to look
  at (not scored: the decision prompts are).
- `evaluate_images`: a sample source's way (replay, the trainer's own samples): images that
  already exist, each with the prompt it was made from.
Nothing is written here: the images, their 24 px recoveries, the contact sheet and the numbers
stay in memory (`EpochEvaluation`); decide adds the decisions, and the record step
(`watcher.publish.results.write_epoch_folder`) writes the epoch's folder.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from evaluators import aggregate_epoch, score_image
from evaluators.score import ImageScore
from watcher.config import EvaluationConfig, WatchConfig
from watcher.metrics import EpochAggregate
from watcher.prompts import SamplePrompt, review_prompts
from watcher.publish.results import EpochImage, sample_name
from watcher.records import Checkpoint, EpochMetrics
from watcher.report import contact_sheet, progress


class Renderer(Protocol):
    """What evaluate needs of a pipeline (watcher.pipeline.SamplePipeline, or a fake one:
    watcher.testing.FakePipeline)."""

    def apply_lora(self, path: str) -> object: ...
    def generate(self, prompts: Sequence[SamplePrompt], batch_size: int) -> list[Image.Image]: ...


class WarmPipeline(Renderer, Protocol):
    """What the daemon keeps warm between epochs."""

    device: Any

    def load(self) -> object: ...
    def release(self) -> None: ...
    def memory_bytes(self) -> int: ...


@dataclass
class EpochEvaluation:
    """One evaluated epoch, in memory: its numbers (metrics.json) and the pictures its results
    folder will hold. Decide adds its decisions to `metrics`; record writes the folder."""

    epoch: int
    checkpoint: Checkpoint
    metrics: EpochMetrics
    samples: list[EpochImage]
    review: list[EpochImage]
    pictures: dict[str, Image.Image]  # name -> picture (contact_sheet.png)

    @property
    def aggregate(self) -> EpochAggregate:
        return EpochAggregate.from_dict(self.metrics["aggregate"])


def score_sample(rgb: np.ndarray, prompt: str, evaluation: EvaluationConfig) -> ImageScore:
    """The one place the daemon calls the image evaluators, with the run's colour judging."""
    return score_image(rgb, prompt, evaluation.cells, **evaluation.scoring_kwargs())


def clip_entries(evaluation: EvaluationConfig, device: str, prompts: Sequence[SamplePrompt],
                 images: Sequence[Image.Image]) -> list[dict[str, float]]:
    """{"clip_score": ...} per image with [evaluation] clip_model set, else [] (nothing loaded)."""
    if evaluation.clip_model is None:
        return []
    from watcher.clipjudge import judge_for

    judge = judge_for(str(evaluation.clip_model), device)
    return [{"clip_score": s} for s in judge.scores(images, [p.text for p in prompts])]


def _caption(index: int, seed: int, entry: dict[str, Any]) -> str:
    match = entry.get("background_match")
    verdict = "no bg" if match is None else ("bg ok" if match else "bg wrong")
    return f"{index:02d} seed {seed}: {verdict}, style {entry['style_quality']:.0f}"


def review_set(cfg: WatchConfig) -> list[SamplePrompt]:
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
    pipeline: Renderer,
    cfg: WatchConfig,
    checkpoint: Checkpoint,
    epoch: int,
    heartbeat: Callable[[], object] = lambda: None,
) -> EpochEvaluation:
    """Swap the checkpoint's LoRA in, render the configured prompts, score every image."""
    t0 = time.perf_counter()
    pipeline.apply_lora(checkpoint.path)
    heartbeat()
    prompts = cfg.prompts()
    images = pipeline.generate(prompts, cfg.model.batch_size)
    heartbeat()
    learned = clip_entries(cfg.evaluation, str(getattr(pipeline, "device", "cpu")), prompts, images)
    heartbeat()
    review = review_set(cfg) if epoch in cfg.sampling.review_epochs else []

    def render_review() -> list[EpochImage]:
        review_images = pipeline.generate(review, cfg.model.batch_size) if review else []
        heartbeat()
        return [EpochImage(sample_name(index, prompt.seed), image)
                for index, (prompt, image) in enumerate(zip(review, review_images, strict=True))]

    return _score(cfg, checkpoint, epoch, list(zip(prompts, images, strict=True)), heartbeat,
                  generate_s=time.perf_counter() - t0, review=review, render_review=render_review,
                  learned=learned)


def evaluate_images(
    cfg: WatchConfig,
    checkpoint: Checkpoint,
    epoch: int,
    samples: Sequence[tuple[SamplePrompt, Image.Image]],
    heartbeat: Callable[[], object] = lambda: None,
) -> EpochEvaluation:
    """Score images that already exist (a sample source): same pictures, same metrics.json."""
    return _score(cfg, checkpoint, epoch, list(samples), heartbeat, generate_s=0.0)


def _score(
    cfg: WatchConfig,
    checkpoint: Checkpoint,
    epoch: int,
    samples: list[tuple[SamplePrompt, Image.Image]],
    heartbeat: Callable[[], object],
    *,
    generate_s: float,
    review: Sequence[SamplePrompt] = (),
    render_review: Callable[[], list[EpochImage]] | None = None,
    learned: Sequence[dict[str, float]] = (),
) -> EpochEvaluation:
    t_generated = time.perf_counter()
    entries: list[dict[str, Any]] = []
    scored: list[EpochImage] = []
    sheet_rows = []
    pairs = progress(samples, len(samples), f"scoring epoch {epoch}")
    for index, (prompt, image) in enumerate(pairs):
        score = score_sample(np.asarray(image.convert("RGB")), prompt.text, cfg.evaluation)
        name = sample_name(index, prompt.seed)
        scored.append(EpochImage(name, image, score.cells))
        entry = {"prompt": prompt.text, "seed": prompt.seed, "sample": f"samples/{name}",
                 "sample_24px": f"samples_24px/{name}", **score.to_dict(),
                 **(learned[index] if learned else {})}
        entries.append(entry)
        sheet_rows.append((image, score.cells, _caption(index, prompt.seed, entry)))
        heartbeat()
    columns = max(1, len(cfg.sampling.seeds))
    sheet = contact_sheet(sheet_rows, columns=columns, title=f"{cfg.run.name} epoch {epoch}")
    t_scored = time.perf_counter()
    review_images = render_review() if render_review is not None else []

    metrics: EpochMetrics = {
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
            "generate_s": round(generate_s, 3),
            "score_s": round(t_scored - t_generated, 3),
            "review_s": round(time.perf_counter() - t_scored, 3),
        },
    }
    return EpochEvaluation(epoch=epoch, checkpoint=checkpoint, metrics=metrics, samples=scored,
                           review=review_images, pictures={"contact_sheet.png": sheet})
