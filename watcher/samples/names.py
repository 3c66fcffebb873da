"""kohya sample file names: which run, epoch (or step), prompt index and seed an image is.

sd-scripts names each sample `{output_name}_e{epoch:06d}_{idx:02d}_{YYYYmmddHHMMSS}[_{seed}].png`
(or `{output_name}_{steps:06d}_...` when it samples every N steps; without an output_name the
prefix and its `_` are absent). `idx` is the prompt's position in the prompt file, the time
stamp is local time, and the seed suffix is there only when the prompt fixes a seed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from watcher.epoch.settle import describe_name

_TAIL = re.compile(
    r"^(?:(?P<prefix>.*)_)?(?:e(?P<epoch>\d{6,})|(?P<steps>\d{6,}))_(?P<idx>\d{2,})"
    r"_(?P<stamp>\d{14})(?:_(?P<seed>-?\d+))?\.png$"
)


class NameRefused(Exception):
    """The file is not a sample of this run's epochs; `reason` is one line naming it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SampleName:
    path: Path
    epoch: int
    idx: int
    stamp: str  # YYYYmmddHHMMSS as written
    seed: int | None  # None: the prompt fixed no seed (kohya drew a random one)


def looks_like_sample(name: str) -> bool:
    """True for any name in kohya's sample pattern, whoever's run and whatever the unit."""
    return _TAIL.match(name) is not None


def parse_sample_name(path: Path | str, output_name: str | None) -> SampleName:
    """The epoch sample `path` names, or NameRefused (another run, step-based, not kohya's)."""
    path = Path(path)
    shown = describe_name(path)
    if not path.name.lower().endswith(".png"):
        raise NameRefused(f"{shown} is not a PNG sample (kohya writes .png)")
    m = _TAIL.match(path.name)
    if m is None:
        raise NameRefused(f"{shown} is not named like a kohya sample "
                          "({output_name}_e{epoch:06d}_{idx:02d}_{YYYYmmddHHMMSS}[_{seed}].png)")
    prefix = m["prefix"] or ""
    if output_name and prefix != output_name:
        raise NameRefused(f"{shown} belongs to another run (output_name {prefix or '(none)'!r}, "
                          f"this run's is {output_name!r})")
    if m["steps"] is not None:
        raise NameRefused(f"{shown} is a step-based sample (step {int(m['steps'])}), but epochs "
                          "are expected: set sample_every_n_epochs, not sample_every_n_steps")
    epoch = int(m["epoch"])
    if epoch < 1:
        raise NameRefused(f"{shown} was sampled before training (epoch 0), not after an epoch")
    return SampleName(path=path, epoch=epoch, idx=int(m["idx"]), stamp=m["stamp"],
                      seed=int(m["seed"]) if m["seed"] is not None else None)


def sample_name(output_name: str | None, epoch: int, idx: int, stamp: str,
                seed: int | None = None) -> str:
    """The name sd-scripts gives an epoch sample (used by the demo set and the tests)."""
    prefix = f"{output_name}_" if output_name else ""
    suffix = "" if seed is None else f"_{seed}"
    return f"{prefix}e{epoch:06d}_{idx:02d}_{stamp}{suffix}.png"
