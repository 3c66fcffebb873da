"""One epoch's samples as a set: images mapped to prompts by kohya's `idx`, complete when every
prompt has its image, or partial when no new image came for `timeout_s` (or the trainer ended).

kohya renders each prompt of its prompt file once per sampled epoch and numbers the image with
the prompt's position in the file, so idx N is the N-th prompt entry (not expanded over seeds).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watcher.epoch.settle import describe_name
from watcher.prompts import PromptDefaults, SamplePrompt, parse_prompt_file
from watcher.samples.names import SampleName

UNKNOWN_SEED = -1  # SamplePrompt.seed of an image whose prompt fixed no seed (kohya drew one)
_NO_SEED = -(2**62)  # parse-time marker: "this prompt entry gives no --d"


@dataclass(frozen=True)
class KohyaPrompt:
    idx: int
    prompt: SamplePrompt
    seed: int | None  # the seed the prompt entry fixes (--d / seed), None if it fixes none


def kohya_prompts(path: Path | str, defaults: PromptDefaults) -> list[KohyaPrompt]:
    """The prompt file's entries in kohya's order: entry idx is sample idx."""
    parsed = parse_prompt_file(path, dataclasses.replace(defaults, seeds=(_NO_SEED,)))
    return [KohyaPrompt(i, p, None if p.seed == _NO_SEED else p.seed) for i, p in enumerate(parsed)]


@dataclass(frozen=True)
class EpochSample:
    idx: int
    path: Path
    prompt: SamplePrompt  # .seed: the image's seed, UNKNOWN_SEED when kohya drew it at random


@dataclass(frozen=True)
class EpochSet:
    epoch: int
    samples: tuple[EpochSample, ...]  # by idx
    expected: int
    missing: tuple[int, ...] = ()  # prompt idx with no image

    @property
    def partial(self) -> bool:
        return bool(self.missing)

    def describe(self) -> str:
        if not self.partial:
            return f"epoch {self.epoch}: all {self.expected} samples"
        gone = ", ".join(str(i) for i in self.missing)
        return (f"epoch {self.epoch}: partial, {len(self.samples)} of {self.expected} samples "
                f"(no image for prompt idx {gone})")


@dataclass
class _Open:
    samples: dict[int, EpochSample] = field(default_factory=dict)
    last_at: float = 0.0


@dataclass
class EpochCollector:
    prompts: Sequence[KohyaPrompt]
    timeout_s: float = 600.0
    close_when_complete: bool = True  # False: hold every epoch until flush() (replay)
    _open: dict[int, _Open] = field(default_factory=dict, init=False)
    _closed: set[int] = field(default_factory=set, init=False)

    def add(self, name: SampleName, now: float | None = None) -> tuple[EpochSet | None, str | None]:
        """(the epoch's set if this image completes it, a one-line refusal or None)."""
        now = time.time() if now is None else now
        shown = describe_name(name.path)
        n = len(self.prompts)
        if name.idx >= n:
            return None, (f"{shown}: more images than prompts: prompt idx {name.idx}, "
                          f"the prompt file has {n} prompt{'s' if n != 1 else ''}")
        if name.epoch in self._closed:
            return None, f"{shown}: epoch {name.epoch} was already judged; this image came after"
        entry = self.prompts[name.idx]
        if entry.seed is not None and name.seed != entry.seed:
            return None, (f"{shown}: seed {name.seed} in the name, but prompt idx {name.idx} fixes "
                          f"seed {entry.seed} (was the prompt file changed?)")
        group = self._open.setdefault(name.epoch, _Open())
        if name.idx in group.samples:
            first = describe_name(group.samples[name.idx].path)
            return None, f"{shown}: a second image for epoch {name.epoch} prompt idx {name.idx} ({first} came first)"
        seed = name.seed if name.seed is not None else UNKNOWN_SEED
        group.samples[name.idx] = EpochSample(name.idx, name.path,
                                              dataclasses.replace(entry.prompt, seed=seed))
        group.last_at = now
        if self.close_when_complete and len(group.samples) == n:
            return self._close(name.epoch), None
        return None, None

    def next_deadline(self) -> float | None:
        return min((g.last_at + self.timeout_s for g in self._open.values()), default=None)

    def expire(self, now: float | None = None) -> list[EpochSet]:
        """Epochs with no new image for timeout_s, closed as partial, in epoch order."""
        now = time.time() if now is None else now
        due = sorted(e for e, g in self._open.items() if now - g.last_at >= self.timeout_s)
        return [self._close(e) for e in due]

    def flush(self) -> list[EpochSet]:
        """Every open epoch, closed now (the trainer has ended: nothing more will come)."""
        return [self._close(e) for e in sorted(self._open)]

    def open_epochs(self) -> list[int]:
        return sorted(self._open)

    def mark_judged(self, epochs: Sequence[int]) -> None:
        """Epochs judged before (a restart): images of theirs are refused as late."""
        self._closed.update(epochs)

    def _close(self, epoch: int) -> EpochSet:
        group = self._open.pop(epoch)
        self._closed.add(epoch)
        missing = tuple(i for i in range(len(self.prompts)) if i not in group.samples)
        return EpochSet(epoch, tuple(group.samples[i] for i in sorted(group.samples)),
                        len(self.prompts), missing)
