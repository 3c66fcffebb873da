"""Where a past run's images are: the folder layouts `epochwatch replay --images DIR` reads.

- Epoch sub-folders `epoch_N`, `epoch-N`, `epochN` or `eN` (any zero padding, any case): the
  PNG, JPEG and WebP images in each, sorted by name (numbers compared as numbers), are matched in order to the
  config's (prompt, seed) pairs: prompt 1 seed 1, prompt 1 seed 2, ..., prompt 2 seed 1, ...
  A count that differs cannot be matched without guessing which image is missing or extra,
  so that epoch is reported and not judged.
- kohya sample files directly in DIR (`{output_name}_e{epoch:06d}_{idx:02d}_...png`): grouped
  by epoch and mapped by idx to the prompt file's entries; an epoch with images missing is
  judged on the rest and reported as partial.
Every file that is not used is reported once, with its name and why (hidden files and a
README are passed over in silence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watcher.commands._images import ImageLoadError, load_rgb
from watcher.epoch.settle import NotReady, Rejected, describe_name
from watcher.prompts import SamplePrompt
from watcher.samples.epochs import EpochCollector, EpochSample, EpochSet, KohyaPrompt
from watcher.samples.names import NameRefused, looks_like_sample, parse_sample_name
from watcher.samples.png import check_png

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")  # in epoch folders; kohya writes PNG
EPOCH_FOLDER = re.compile(r"^(?:epoch[_-]?|e)(\d{1,6})$", re.IGNORECASE)


class LayoutError(Exception):
    """DIR holds nothing replayable, or mixes layouts; the message is one line."""


@dataclass(frozen=True)
class ReplayEpoch:
    epoch: int
    source: Path  # the epoch folder, or DIR for kohya names
    samples: tuple[EpochSample, ...]
    expected: int
    judged: bool  # False: the images could not be matched to prompts; see problems
    problems: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return self.judged and len(self.samples) < self.expected


@dataclass
class ReplayLayout:
    folder: Path
    kind: str  # "folders" | "kohya"
    epochs: list[ReplayEpoch] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files and folders not used, one line each


def natural_key(name: str) -> list[tuple[int, int | str]]:
    """`img2` before `img10`: digit runs compare as numbers."""
    return [(0, int(part)) if part.isdigit() else (1, part)
            for part in re.split(r"(\d+)", name) if part]


def _image_problem(path: Path) -> str | None:
    """Why the file in an epoch folder cannot be one of its images (None: it can)."""
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        return f"{describe_name(path)}: not a PNG, JPEG or WebP image, ignored"
    if suffix == ".png":
        try:
            check_png(path)
        except (NotReady, Rejected) as exc:
            return f"{describe_name(path)}: not a complete PNG ({exc.reason}), ignored"
        return None
    try:  # JPEG and WebP: decoded as `score` decodes them, so a bad file is named here
        load_rgb(path)
    except ImageLoadError as exc:
        return f"{describe_name(path)}: {exc}, ignored"
    return None


def scan(folder: Path | str, pairs: Sequence[SamplePrompt], kohya: Sequence[KohyaPrompt],
         output_name: str | None) -> ReplayLayout:
    """The epochs found in `folder`. `pairs`: the config's (prompt, seed) pairs, in order;
    `kohya`: the prompt file's entries by idx (for kohya-named samples)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LayoutError(f"{folder}: not a folder")
    # Hidden files and a README (the notes that come with a folder of images) are not reported.
    entries = sorted((p for p in folder.iterdir()
                      if not p.name.startswith(".") and not p.name.upper().startswith("README")),
                     key=lambda p: natural_key(p.name))
    epoch_dirs = [(int(m[1]), p) for p in entries if p.is_dir() and (m := EPOCH_FOLDER.match(p.name))]
    samples = [p for p in entries if p.is_file() and looks_like_sample(p.name)]
    if epoch_dirs and samples:
        raise LayoutError(f"{folder}: holds both epoch folders and kohya sample files; "
                          "replay one layout at a time")
    if epoch_dirs:
        layout = ReplayLayout(folder, "folders")
        _scan_folders(layout, epoch_dirs, pairs)
        used = {p for _, p in epoch_dirs}
    elif samples:
        layout = ReplayLayout(folder, "kohya")
        _scan_kohya(layout, samples, kohya, output_name)
        used = set(samples)
    else:
        raise LayoutError(f"{folder}: no epoch folders (epoch_N, epoch-N, epochN, eN) and no "
                          "kohya sample files ({output_name}_eNNNNNN_NN_...png)")
    layout.problems[:0] = [f"{describe_name(p)}: not an epoch folder or sample, ignored"
                           for p in entries if p not in used]
    layout.epochs.sort(key=lambda e: e.epoch)
    return layout


def _scan_folders(layout: ReplayLayout, dirs: list[tuple[int, Path]],
                  pairs: Sequence[SamplePrompt]) -> None:
    seen: dict[int, Path] = {}
    for epoch, path in dirs:
        if epoch < 1:
            layout.problems.append(f"{describe_name(path)}: epoch 0 is not a training epoch, ignored")
            continue
        if epoch in seen:
            layout.problems.append(f"{describe_name(path)}: epoch {epoch} is also "
                                   f"{describe_name(seen[epoch])}; both ignored")
            layout.epochs = [e for e in layout.epochs if e.epoch != epoch]
            continue
        seen[epoch] = path
        files = sorted((p for p in path.iterdir() if not p.name.startswith(".")),
                       key=lambda p: natural_key(p.name))
        problems, images = [], []
        for p in files:
            bad = f"{describe_name(p)}: a folder, ignored" if p.is_dir() else _image_problem(p)
            if bad:
                problems.append(f"{path.name}/{bad}")
            else:
                images.append(p)
        judged = len(images) == len(pairs)
        if not judged:
            word = "missing" if len(images) < len(pairs) else "extra"
            problems.append(f"{path.name}: {len(images)} images for {len(pairs)} (prompt, seed) "
                            f"pairs: {word} images cannot be matched without guessing; "
                            f"epoch {epoch} not judged")
        matched = tuple(EpochSample(i, img, prompt)
                        for i, (img, prompt) in enumerate(zip(images, pairs, strict=True))) if judged else ()
        layout.epochs.append(ReplayEpoch(epoch, path, matched, len(pairs), judged, tuple(problems)))


def _scan_kohya(layout: ReplayLayout, files: list[Path], kohya: Sequence[KohyaPrompt],
                output_name: str | None) -> None:
    collector = EpochCollector(kohya, close_when_complete=False)
    problems: dict[int, list[str]] = {}
    for path in files:
        try:
            name = parse_sample_name(path, output_name)
        except NameRefused as exc:
            layout.problems.append(exc.reason)
            continue
        bad = _image_problem(path)
        if bad is None:
            bad = collector.add(name, now=0.0)[1]
        if bad:
            problems.setdefault(name.epoch, []).append(bad)
    for epoch_set in collector.flush():
        layout.epochs.append(_from_set(layout.folder, epoch_set, problems))
    for epoch in sorted(set(problems) - {e.epoch for e in layout.epochs}):
        layout.problems.extend(problems[epoch])  # an epoch none of whose images could be used


def _from_set(folder: Path, s: EpochSet, problems: dict[int, list[str]]) -> ReplayEpoch:
    notes = list(problems.get(s.epoch, []))
    if s.partial:
        notes.append(s.describe())
    return ReplayEpoch(s.epoch, folder, s.samples, s.expected, True, tuple(notes))
