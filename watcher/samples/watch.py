"""The daemon's trainer source (`[sampling] source = "trainer"`): kohya's own samples, judged.

The daemon's detector watches `{output_dir}/sample/` and offers every path here; settled
PNGs are collected into epoch sets (watcher.samples.source), and each complete (or partial)
set goes through the epoch path as a sample-source epoch: `EpochPath.add_source` records it
under the digest of its images, `EpochPath.judge_images` scores, decides, publishes and acts,
exactly as for rendered samples. No pipeline is loaded and torch is never imported.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from watcher.epoch.settle import Rejection, describe_name
from watcher.epoch.sources import Job
from watcher.samples.epochs import EpochSet
from watcher.samples.png import SampleRefusal
from watcher.samples.source import (
    SAMPLE_FOLDER,
    TrainerSamples,
    identity,
    open_images,
    trainer_prompts,
)


class TrainerSource:
    """kohya's own sample PNGs: a `watcher.epoch.sources.Source`."""

    def __init__(self, cfg: Any, path: Any, log: Any) -> None:
        self.cfg = cfg
        self.path = path  # watcher.epoch.path.EpochPath
        self.log = log
        self.folder = Path(cfg.output_dir) / SAMPLE_FOLDER
        self.samples = TrainerSamples(
            self.folder, cfg.run.output_name, trainer_prompts(cfg),
            settle_interval_s=cfg.daemon.settle_interval_s,
            set_timeout_s=cfg.sampling.set_timeout_s,
        )
        self.ready: list[EpochSet] = []
        judged = {c.epoch for c in path.store.checkpoints(cfg.run.name)
                  if c.status in ("evaluated", "failed") and c.epoch is not None}
        self.samples.mark_judged(judged)  # a restart: those epochs' images are not judged again

    def accepts(self, name: str) -> bool:
        return True  # every file in the sample folder: bad ones are reported

    def offer(self, path: Path) -> None:
        self.samples.offer(path)

    def next_deadline(self) -> float | None:
        return self.samples.next_deadline()

    def busy(self) -> bool:
        return bool(self.ready) or self.samples.busy()

    def settled(self) -> bool:
        return not self.busy()

    def settled_once(self, now: float) -> bool:
        self.finish(now, quiet_s=0.0)  # what is there now is all there will be
        return not self.busy()

    def poll(self, now: float | None = None) -> list[int]:
        """Settle and collect; returns the epochs that became ready to judge."""
        sets, refused = self.samples.poll(now)
        return self._take(sets, refused)

    def finish(self, now: float | None = None, quiet_s: float = 2.0) -> list[int]:
        """The trainer has ended: nothing more will come; close what is open."""
        sets, refused = self.samples.finish(now, quiet_s)
        return self._take(sets, refused)

    def _take(self, sets: list[EpochSet], refused: list[SampleRefusal]) -> list[int]:
        for refusal in refused:  # recorded, logged and alerted once, as a refused checkpoint is
            # the path's message names the file itself: pass the reason without its name
            shown = describe_name(refusal.path)
            detail = refusal.reason.removeprefix(shown).lstrip(": ").strip() or refusal.reason
            self.path.record(Rejection(refusal.path, detail))
        for s in sets:
            if s.partial:
                self.log.warning("sample set partial", epoch=s.epoch, detail=s.describe())
                self.path.store.add_event(self.cfg.run.name, "warning", "samples_partial",
                                          s.describe(), s.epoch)
        self.ready += sets
        self.ready.sort(key=lambda s: s.epoch)
        return [s.epoch for s in sets]

    def take_next(self) -> Job | None:
        """The earliest ready epoch, recorded as a sample-source epoch and decoded, or None.
        An epoch judged before (the same images) is passed over; one whose images will not
        decode is failed (recorded and alerted) and passed over."""
        while self.ready:
            epoch_set = self.ready.pop(0)
            sha256, size = identity(epoch_set.samples)
            metadata = {"source": "trainer", "images": str(len(epoch_set.samples)),
                        "partial": epoch_set.describe() if epoch_set.partial else ""}
            checkpoint = self.path.add_source(self.folder, epoch_set.epoch, sha256, size, metadata)
            if checkpoint.status in ("evaluated", "failed"):
                continue
            try:
                images = open_images(epoch_set.samples)
            except Exception as exc:  # noqa: BLE001 - a PNG that parses but will not decode
                self.path.fail(checkpoint, exc)
                continue
            return Job(checkpoint, images, put_back=partial(self.put_back, epoch_set))
        return None

    def put_back(self, epoch_set: EpochSet) -> None:
        """Judge this epoch again later (a transient failure, a shutdown)."""
        self.ready.insert(0, epoch_set)
