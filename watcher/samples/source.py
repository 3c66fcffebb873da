"""The trainer as the sample source: its PNGs in `{output_dir}/sample/` -> complete epoch sets.

settle (watcher.samples.png) then collect (watcher.samples.epochs). The daemon's detector
offers paths; `poll` hands back the epochs whose sets are complete (or partial after
`set_timeout_s`) and, once each, the files refused on the way. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from watcher.commands._images import ImageLoadError, load_rgb
from watcher.prompts import SamplePrompt
from watcher.samples.epochs import (
    UNKNOWN_SEED,
    EpochCollector,
    EpochSample,
    EpochSet,
    KohyaPrompt,
    kohya_prompts,
)
from watcher.samples.png import SampleRefusal, SampleSettler, SettledSample

SAMPLE_FOLDER = "sample"  # sd-scripts writes samples to {output_dir}/sample/


@dataclass
class TrainerSamples:
    folder: Path
    output_name: str | None
    prompts: Sequence[KohyaPrompt]
    settle_interval_s: float = 0.25
    set_timeout_s: float = 600.0
    stale_after_s: float = 300.0
    settler: SampleSettler = field(init=False)
    collector: EpochCollector = field(init=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.settler = SampleSettler(self.folder, self.output_name, self.settle_interval_s,
                                     self.stale_after_s)
        self.collector = EpochCollector(self.prompts, self.set_timeout_s)

    def offer(self, path: Path | str, now: float | None = None) -> None:
        self.settler.offer(path, now)

    def mark_judged(self, epochs: Iterable[int]) -> None:
        """Epochs already judged (a restart): their images are not collected again."""
        self.collector.mark_judged(list(epochs))

    def next_deadline(self) -> float | None:
        times = [t for t in (self.settler.next_deadline(), self.collector.next_deadline()) if t is not None]
        return min(times, default=None)

    def busy(self) -> bool:
        """Files still settling or epochs still open."""
        return bool(self.settler.pending() or self.collector.open_epochs())

    def poll(self, now: float | None = None) -> tuple[list[EpochSet], list[SampleRefusal]]:
        """(epoch sets ready to judge, in epoch order; refused files, each once)."""
        now = time.time() if now is None else now
        ready: list[EpochSet] = []
        refused: list[SampleRefusal] = []
        for result in self.settler.poll(now):
            self._take(result, now, ready, refused)
        ready.extend(self.collector.expire(now))
        return sorted(ready, key=lambda s: s.epoch), refused

    def finish(self, now: float | None = None,
               quiet_s: float = 2.0) -> tuple[list[EpochSet], list[SampleRefusal]]:
        """The trainer has ended: settle what is complete, refuse what never will be, and
        close every open epoch (partial if images are missing)."""
        now = time.time() if now is None else now
        ready, refused = self.poll(now)
        refused += self.settler.expire_incomplete(now, quiet_s)
        if not self.settler.pending():
            ready += self.collector.flush()
        return sorted(ready, key=lambda s: s.epoch), refused

    def _take(self, result: SettledSample | SampleRefusal, now: float,
              ready: list[EpochSet], refused: list[SampleRefusal]) -> None:
        if isinstance(result, SampleRefusal):
            refused.append(result)
            return
        done, refusal = self.collector.add(result.name, now)
        if refusal:
            refused.append(SampleRefusal(result.path, refusal))
        if done is not None:
            ready.append(done)


def trainer_prompts(cfg: Any) -> list[KohyaPrompt]:
    """The prompts by kohya idx: the prompt file's entries, else one per inline prompt."""
    d = cfg.prompt_defaults()
    if cfg.sampling.prompts_file:
        return kohya_prompts(cfg.sampling.prompts_file, d)
    out = []
    for i, p in enumerate(cfg.sampling.prompts):
        prompt = SamplePrompt(p.text, d.negative if p.negative is None else p.negative,
                              p.seed if p.seed is not None else UNKNOWN_SEED, p.width or d.width,
                              p.height or d.height, p.steps or d.steps,
                              d.cfg if p.cfg is None else p.cfg)
        out.append(KohyaPrompt(i, prompt, p.seed))
    return out


def identity(samples: Sequence[EpochSample]) -> tuple[str, int]:
    """(sha256, total bytes) of an epoch's images with the prompts they answer: the same
    images for the same prompts are the same epoch result, recorded and committed once."""
    digest = hashlib.sha256()
    total = 0
    for s in samples:
        data = Path(s.path).read_bytes()
        total += len(data)
        for part in (s.prompt.text, str(s.prompt.seed), hashlib.sha256(data).hexdigest()):
            digest.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest(), total


def open_images(samples: Sequence[EpochSample]) -> list[tuple[SamplePrompt, Image.Image]]:
    """Each sample decoded (fully, so a bad file fails here, before anything is recorded)."""
    out = []
    for s in samples:  # decoded as `score` decodes (alpha over white, EXIF rotation)
        try:
            rgb = load_rgb(s.path)
        except ImageLoadError as exc:
            raise OSError(f"{s.path.name}: {exc}") from None
        out.append((s.prompt, Image.fromarray(rgb)))
    return out
