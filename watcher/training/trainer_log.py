"""The progress lines of kohya's log, for a run that writes no TensorBoard files.

train_network.py prints `epoch N/M` when an epoch starts and draws a tqdm bar named `steps`
whose postfix carries the moving-average loss:

    steps:  42%|████▏     | 85/203 [02:07<02:57,  1.50s/it, avr_loss=0.0912]

tqdm redraws the bar with carriage returns, so the log is split on `\\r` as well as `\\n`.
The bar's elapsed time stands in for a clock (the log has no timestamps). A resumed kohya run
counts its bar from 0 again, so its steps start over: the log is a fallback, TensorBoard the
source of record. A `steps:` line that does not parse is skipped with one warning.
"""

from __future__ import annotations

import re
from pathlib import Path

from watcher.training.points import EPOCH_START, LOSS_AVERAGE, TOTAL_STEPS, Point
from watcher.training.tensorboard import Batch

_BAR = re.compile(
    r"^steps:\s*\d+%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)\s*"
    r"\[(?P<elapsed>[\d:]+)<[^,\]]*(?:,\s*(?P<rate>[^,\]]*))?(?P<postfix>[^\]]*)\]")
_AVR_LOSS = re.compile(r"avr_loss=(?P<loss>[-+]?(?:nan|inf|[\d.]+(?:e[-+]?\d+)?))", re.IGNORECASE)
_EPOCH = re.compile(r"^epoch (?P<n>\d+)/(?P<total>\d+)$")
READ_LIMIT = 4 << 20  # bytes per poll: a huge backlog is read over several polls


def _seconds(clock: str) -> float:
    """tqdm's elapsed time, `MM:SS` or `H:MM:SS`."""
    total = 0.0
    for part in clock.split(":"):
        total = total * 60 + float(part or 0)
    return total


class TrainerLogReader:
    """Reads the trainer's log from where it left off; `poll()` -> a Batch of points."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = ""
        self._last_step: dict[str, int] = {}
        self._seen: set[tuple[str, int]] = set()
        self._progress: tuple[int, float] = (0, 0.0)  # (step, elapsed) of the last bar line
        self._total: int | None = None
        self._warned: set[str] = set()
        self.found_any = False

    def poll(self) -> Batch:
        batch = Batch()
        try:
            size = self.path.stat().st_size
            if size < self._offset:  # rotated or truncated: the new file from its start
                self._warn(batch, f"shrank:{size}", f"trainer log {self.path} shrank; read again from its start")
                self._offset, self._partial = 0, ""
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read(READ_LIMIT)
        except OSError:
            return batch
        self._offset += len(data)
        text = self._partial + data.decode("utf-8", errors="replace")
        pieces = re.split(r"[\r\n]", text)
        self._partial = pieces.pop()  # the line being written
        for piece in pieces:
            self._line(piece.strip(), batch)
        if _BAR.match(self._partial.strip()):  # tqdm's current bar: whole, the next starts with \r
            self._line(self._partial.strip(), batch)
        return batch

    def _warn(self, batch: Batch, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            batch.warnings.append(message)

    def _emit(self, batch: Batch, point: Point) -> None:
        if (point.tag, point.step) in self._seen:
            return  # tqdm redraws the same step
        self._seen.add((point.tag, point.step))
        self.found_any = True
        batch.add(point, self._last_step)

    def _line(self, line: str, batch: Batch) -> None:
        epoch = _EPOCH.match(line)
        if epoch:
            step, elapsed = self._progress
            self._emit(batch, Point(EPOCH_START, step, float(epoch["n"]), elapsed))
            return
        if not line.startswith("steps:"):
            return
        bar = _BAR.match(line)
        if bar is None:
            self._warn(batch, "bar", f"trainer log {self.path}: a progress line that does not "
                       f"parse, skipped: {line[:120]!r}")
            return
        step, elapsed = int(bar["n"]), _seconds(bar["elapsed"])
        if step < self._progress[0]:  # a new process counts from 0 again
            self._seen = {(t, s) for t, s in self._seen if s < step}
        self._progress = (step, elapsed)
        total = int(bar["total"])
        if total != self._total:
            self._total = total
            self._emit(batch, Point(TOTAL_STEPS, step, float(total), elapsed))
        loss = _AVR_LOSS.search(bar["postfix"] or "")
        if loss and step > 0:
            self._emit(batch, Point(LOSS_AVERAGE, step, float(loss["loss"]), elapsed))
