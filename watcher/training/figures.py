"""The figures `status` shows, from the points of one run: pure arithmetic, no clock.

`figures(series, total_epochs)` -> step, epoch, loss (kohya's moving average), lr, steps per
second, mean seconds per epoch (end to end), seconds to the last epoch and the validation loss: each None
when the points do not tell it, never guessed. A NaN or infinite loss is None here with
`loss_finite` False (JSON has no NaN); the health rules (`health`) say it out loud.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from watcher.training.points import (
    EPOCH_START,
    LOSS_AVERAGE,
    LOSS_CURRENT,
    LOSS_EPOCH,
    LR_PREFERRED,
    LR_PREFIX,
    TOTAL_STEPS,
    VALIDATION_EPOCH,
    VALIDATION_STEP,
    Point,
)

Series = Mapping[str, Sequence[Point]]  # tag -> points in step order
RATE_WINDOW = 50  # the last points the speed is measured over
FIGURE_KEYS = ("step", "epoch", "loss", "lr", "steps_per_s", "epoch_s", "eta_s", "validation_loss")


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    step: int  # the global step the epoch ended at
    wall_time: float


def loss_series(series: Series) -> Sequence[Point]:
    """kohya's moving average, else the per-step loss."""
    return series.get(LOSS_AVERAGE) or series.get(LOSS_CURRENT) or ()


def lr_tag(series: Series) -> str | None:
    for tag in LR_PREFERRED:
        if series.get(tag):
            return tag
    return next((t for t in sorted(series) if t.startswith(LR_PREFIX) and series[t]), None)


def epoch_ends(series: Series) -> list[EpochEnd]:
    """When each epoch ended: kohya's `loss/epoch_average` (its step is the epoch), or in a
    log the start of the next epoch."""
    losses = loss_series(series)
    ends: dict[int, EpochEnd] = {}
    for p in series.get(LOSS_EPOCH, ()):
        # kohya logs it right after the epoch's last step: the steps logged before it
        before = [q.step for q in losses if q.wall_time <= p.wall_time]
        if before:
            ends[p.step] = EpochEnd(p.step, max(before), p.wall_time)
    for p in series.get(EPOCH_START, ()):
        epoch = int(p.value) - 1
        if epoch >= 1 and epoch not in ends:
            ends[epoch] = EpochEnd(epoch, p.step, p.wall_time)
    return [ends[e] for e in sorted(ends)]


def epoch_of(step: int, ends: Sequence[EpochEnd]) -> int:
    """The epoch a global step belongs to (the one after the last known end, past them)."""
    return next((e.epoch for e in ends if step <= e.step), (ends[-1].epoch if ends else 0) + 1)


def _last(points: Sequence[Point] | None) -> Point | None:
    return points[-1] if points else None


def steps_per_s(points: Sequence[Point]) -> float | None:
    """Over the last RATE_WINDOW points of the latest stretch whose clock runs forward (a
    new process restarts a log's clock)."""
    window: list[Point] = []
    for p in reversed(points):
        if window and p.wall_time > window[-1].wall_time:
            break
        window.append(p)
        if len(window) >= RATE_WINDOW:
            break
    if len(window) < 2:
        return None
    newest, oldest = window[0], window[-1]
    dt, ds = newest.wall_time - oldest.wall_time, newest.step - oldest.step
    return ds / dt if dt > 0 and ds > 0 else None


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)


def _significant(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else float(f"{value:.{digits}g}")


def _epoch_seconds(losses: Sequence[Point], ends: Sequence[EpochEnd]) -> float | None:
    """Mean seconds from one epoch's end to the next: the cadence, with what kohya does
    between epochs (saving, sampling). With one end only, the first epoch's logged steps,
    scaled to all its steps (the first step is logged when it ends: its time is unseen)."""
    gaps = [b.wall_time - a.wall_time for a, b in itertools.pairwise(ends) if b.wall_time > a.wall_time]
    if gaps:
        return sum(gaps) / len(gaps)
    if not ends or not losses:
        return None
    first, end = losses[0], ends[0]
    if end.wall_time <= first.wall_time or end.step <= first.step:
        return None
    return (end.wall_time - first.wall_time) * end.step / (end.step - first.step)


def figures(series: Series, total_epochs: int | None) -> dict[str, Any]:
    """The run's training figures (FIGURE_KEYS, plus `loss_finite`, `epochs_done`,
    `total_steps`)."""
    losses = loss_series(series)
    lr = lr_tag(series)
    stepped = [p for tag in (LOSS_AVERAGE, LOSS_CURRENT) for p in series.get(tag, ())]
    if lr:
        stepped += series[lr]
    step = max((p.step for p in stepped), default=None)
    last_loss = _last(losses)
    ends = epoch_ends(series)
    done = ends[-1].epoch if ends else 0
    per_epoch = ends[-1].step / done if ends and ends[-1].step > 0 else None
    total_point = _last(series.get(TOTAL_STEPS))
    total_steps = int(total_point.value) if total_point else (
        round(per_epoch * total_epochs) if per_epoch and total_epochs else None)

    epoch: int | None = None
    if step is not None:
        epoch = done + 1 if not ends or step > ends[-1].step else done
        started = _last(series.get(EPOCH_START))
        if started:
            epoch = max(epoch, int(started.value))
        if total_epochs:
            epoch = min(epoch, total_epochs)

    rate = steps_per_s(losses)
    epoch_s = _epoch_seconds(losses, ends)
    eta: float | None = None
    if step is not None and total_steps and rate:
        eta = max(0.0, (total_steps - step) / rate)
    elif epoch_s and total_epochs:
        eta = max(0.0, (total_epochs - done) * epoch_s)
    validation = _last(series.get(VALIDATION_EPOCH)) or _last(series.get(VALIDATION_STEP))
    return {
        "step": step,
        "epoch": epoch,
        "loss": _significant(last_loss.value) if last_loss else None,
        "loss_finite": last_loss.finite if last_loss else None,
        "lr": _significant(series[lr][-1].value) if lr else None,
        "steps_per_s": _round(rate, 3),
        "epoch_s": _round(epoch_s, 1),
        "eta_s": _round(eta, 0),
        "validation_loss": _significant(validation.value) if validation else None,
        "epochs_done": done,
        "total_steps": total_steps,
    }
