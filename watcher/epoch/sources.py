"""What the daemon watches: one `Source` interface, two kinds.

- `CheckpointFiles` (here): kohya's `.safetensors` files in `output_dir`, settled by
  watcher.epoch.settle; the daemon renders each epoch's samples with its pipeline.
- `watcher.samples.watch.TrainerSource`: the PNGs kohya renders itself in `output_dir/sample/`
  (`[sampling] source = "trainer"`, or the GPU is too full for a pipeline); judged as they are.

(`epochwatch replay` reads a folder of finished epochs, all present at once, through the same
epoch path: watcher/commands/replay.py; it needs no watching.)

The daemon's detector offers every path under `folder` that `accepts` names; `poll` settles
and records what is complete; `take_next` gives the next epoch to judge as a `Job`. Every job
goes through one error policy (`Daemon._judge`): shutdown puts it back, a bad input fails it,
a failure of the surroundings (disk, GPU memory) retries it with backoff.

To add a source: a class with these methods, chosen in `Daemon.open`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from watcher.epoch.detect import is_candidate
from watcher.epoch.settle import Settler

if TYPE_CHECKING:
    from PIL import Image

    from watcher.config import WatchConfig
    from watcher.epoch.path import EpochPath
    from watcher.prompts import SamplePrompt
    from watcher.store import Checkpoint


def _nothing() -> None:
    """A checkpoint file's job needs no putting back: its state row stays pending."""


@dataclass
class Job:
    """One epoch to judge: its state row, and the images when the trainer made them."""

    checkpoint: Checkpoint
    images: Sequence[tuple[SamplePrompt, Image.Image]] | None = None  # None: render them here
    put_back: Callable[[], None] = _nothing  # judge it again later (shutdown, transient error)

    @property
    def epoch(self) -> int:
        return self.checkpoint.epoch if self.checkpoint.epoch is not None else 0


class Source(Protocol):
    folder: Path  # what the detector watches

    def accepts(self, name: str) -> bool: ...
    def offer(self, path: Path) -> None: ...
    def next_deadline(self) -> float | None: ...
    def poll(self, now: float) -> Sequence[int | None]:
        """Settle and record what is complete; returns the epochs newly seen."""
    def finish(self, now: float, quiet_s: float) -> Sequence[int | None]:
        """The trainer has ended: nothing more will come; close (or refuse) what is open."""
    def settled(self) -> bool:
        """Nothing left to settle or to judge."""
    def settled_once(self, now: float) -> bool:
        """`--once`: what is there now is all there will be; True when it is all handled."""
    def take_next(self) -> Job | None: ...


class CheckpointFiles:
    """kohya's checkpoint files: settled, recorded as pending rows, judged in epoch order."""

    def __init__(self, cfg: WatchConfig, path: EpochPath) -> None:
        self.path = path
        self.run = cfg.run.name
        self.folder = Path(cfg.output_dir)
        self.settler = Settler(cfg.output_dir, cfg.output_name, cfg.max_train_epochs,
                               settle_interval_s=cfg.daemon.settle_interval_s)

    def accepts(self, name: str) -> bool:
        return is_candidate(name)

    def offer(self, path: Path) -> None:
        self.settler.offer(path)

    def next_deadline(self) -> float | None:
        return self.settler.next_deadline()

    def poll(self, now: float) -> list[int | None]:
        seen = []
        for result in self.settler.poll(now):
            ck, created = self.path.record(result)
            if ck is not None and created:
                seen.append(ck.epoch)
        return seen

    def finish(self, now: float, quiet_s: float) -> list[int | None]:
        # One last look, then nobody will finish a file left half-written (a crash mid-save):
        # refuse it now, or the run would wait stale_after_s before it could end.
        seen = self.poll(now)
        for rejection in self.settler.expire_incomplete(now, quiet_s):
            self.path.record(rejection)
        return seen

    def settled(self) -> bool:
        return self.settler.next_deadline() is None and self.path.store.next_pending(self.run) is None

    def settled_once(self, now: float) -> bool:
        return self.settler.next_deadline() is None

    def take_next(self) -> Job | None:
        checkpoint = self.path.store.next_pending(self.run)
        return None if checkpoint is None else Job(checkpoint)
