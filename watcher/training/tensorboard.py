"""kohya's TensorBoard event files under `logging_dir`, read as they grow.

kohya's `train_network.py` (through accelerate) writes
`{logging_dir}/{log_prefix}{YYYYmmddHHMMSS}/network_train/events.out.tfevents.*`, one folder
per start: a resumed run adds a folder, and so may an unrelated run pointed at the same
`logging_dir`. Every event file below the folder (or below the `{log_prefix}*` folders, when
the prefix is known) is read, oldest first, with tensorboard's own record reader, which
resumes at a record left half-written. A file that starts again at a step already seen (a
resume, a restart) replaces what was logged from that step on: `Batch.rewinds`.

Bad input is skipped with one warning each, never a crash: a record that stays unreadable
(a truncated or corrupt tail), a record that is not an Event, a file that shrinks or vanishes.
tensorboard's reader imports neither torch nor TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.training.points import Point, wanted

if TYPE_CHECKING:
    from watcher.config import WatchConfig

EVENT_FILE_GLOB = "events.out.tfevents.*"
RECORD_OVERHEAD = 16  # length (8) + its crc (4) + data crc (4) around each record


@dataclass
class Batch:
    """What one poll found: new points (in order), tags whose stored points from a step on
    are replaced (`rewinds`: tag -> first replaced step), and one-line warnings."""

    points: list[Point] = field(default_factory=list)
    rewinds: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, point: Point, last_step: dict[str, int]) -> None:
        """Append, turning a step at or before the tag's last one into a rewind."""
        last = last_step.get(point.tag)
        if last is not None and point.step <= last:
            self.points = [p for p in self.points if not (p.tag == point.tag and p.step >= point.step)]
            self.rewinds[point.tag] = min(self.rewinds.get(point.tag, point.step), point.step)
        last_step[point.tag] = point.step
        self.points.append(point)


def logging_dir(cfg: WatchConfig) -> tuple[Path | None, str]:
    """(the folder kohya logs TensorBoard files under, its log_prefix), or (None, "")."""
    prefix = str(cfg.kohya.get("log_prefix") or "")
    if cfg.training.logging_dir is not None:
        return cfg.training.logging_dir, prefix
    kohya_dir = cfg.kohya.get("logging_dir")
    if isinstance(kohya_dir, str) and kohya_dir:
        folder = Path(kohya_dir).expanduser()
        return (folder if folder.is_absolute() else cfg.trainer.cwd / folder), prefix
    return None, prefix


def _file_order(path: Path) -> tuple[float, str]:
    """events.out.tfevents.<unix time>.<host>...: the writer's start time orders the files."""
    try:
        return float(path.name.split(".")[3]), str(path)
    except (IndexError, ValueError):
        return 0.0, str(path)


def scalar_values(event: Any) -> Iterator[tuple[str, float]]:
    """(tag, value) of each scalar in one Event: `simple_value` (torch's and tensorboardX's
    add_scalar) or a one-element float tensor (the newer summary format)."""
    from tensorboard.util import tensor_util

    if not event.HasField("summary"):
        return
    for value in event.summary.value:
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            yield value.tag, float(value.simple_value)
        elif kind == "tensor":
            array = tensor_util.make_ndarray(value.tensor)
            if array.size == 1 and array.dtype.kind in "fiu":
                yield value.tag, float(array.reshape(()))


class _File:
    """One event file: its record reader and how far it got."""

    def __init__(self, path: Path) -> None:
        from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader

        self.path = path
        self.loader = RawEventFileLoader(str(path))
        self.consumed = 0  # bytes of whole records read
        self.stuck_at_size: int | None = None
        self.warned_tail = False


class TensorBoardReader:
    """Polls the event files under `root` (optionally only `{prefix}*` folders)."""

    def __init__(self, root: Path, prefix: str = "") -> None:
        self.root = Path(root)
        self.prefix = prefix
        self._files: dict[Path, _File] = {}
        self._last_step: dict[str, int] = {}
        self._warned: set[str] = set()

    def files(self) -> list[Path]:
        """The event files there now, oldest writer first."""
        if not self.root.is_dir():
            return []
        tops = [d for d in self.root.iterdir() if d.name.startswith(self.prefix)] \
            if self.prefix else [self.root]
        found: list[Path] = []
        for top in tops:
            if top.is_file() and top.name.startswith("events.out.tfevents."):
                found.append(top)
            elif top.is_dir():
                found.extend(p for p in top.rglob(EVENT_FILE_GLOB) if p.is_file())
        return sorted(found, key=_file_order)

    @property
    def found_any(self) -> bool:
        return bool(self._files)

    def _warn(self, batch: Batch, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            batch.warnings.append(message)

    def poll(self) -> Batch:
        batch = Batch()
        present = self.files()
        for gone in set(self._files) - set(present):  # rotated away: what was read stays
            del self._files[gone]
        for path in present:
            state = self._files.get(path)
            if state is None:
                try:
                    state = self._files[path] = _File(path)
                except Exception as exc:  # noqa: BLE001 - one bad file must not stop the rest
                    self._warn(batch, f"open:{path}", f"event file {path}: cannot be read ({exc}); skipped")
                    continue
            self._read(state, batch)
        return batch

    def _read(self, state: _File, batch: Batch) -> None:
        from google.protobuf.message import DecodeError
        from tensorboard.compat.proto import event_pb2

        try:
            size = os.stat(state.path).st_size
        except OSError:
            return
        if size < state.consumed:  # truncated or replaced under the same name: read it anew
            self._warn(batch, f"shrank:{state.path}:{size}",
                       f"event file {state.path} shrank to {size} bytes; read again from its start")
            state = self._files[state.path] = _File(state.path)
        try:
            records = list(state.loader.Load())
        except Exception as exc:  # noqa: BLE001
            self._warn(batch, f"read:{state.path}", f"event file {state.path}: {exc}; skipped")
            return
        for record in records:
            state.consumed += len(record) + RECORD_OVERHEAD
            try:
                event = event_pb2.Event.FromString(record)
            except DecodeError:
                self._warn(batch, f"decode:{state.path}",
                           f"event file {state.path}: a record that is not an event; skipped")
                continue
            for tag, value in scalar_values(event):
                if wanted(tag):
                    batch.add(Point(tag, int(event.step), value, float(event.wall_time)), self._last_step)
        # A tail that stays unreadable while the file no longer grows: truncated or corrupt.
        if records or size <= state.consumed:
            state.stuck_at_size = None
        elif state.stuck_at_size == size and not state.warned_tail:
            state.warned_tail = True
            batch.warnings.append(
                f"event file {state.path}: {size - state.consumed} bytes after byte "
                f"{state.consumed} cannot be read (truncated or corrupt); skipped")
        else:
            state.stuck_at_size = size
