"""Is the training itself healthy? Pure checks over the points, no clock of their own.

- a NaN or infinite loss (kohya's per-step or average loss);
- a loss that rises `loss_rise_factor` times over its running minimum (after the first
  RISE_WARMUP points, which start high);
- no new step for `stall_minutes` while the trainer process lives (a hung dataloader, NCCL,
  a full disk): the caller passes how long it has seen no new step.

`training_metrics` gives the same facts as numbers, the metrics `[[criteria]]` rules may use
(`metric = "loss"`, `"loss_finite"`, `"loss_rise"`, `"minutes_since_step"`, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from watcher.training.figures import Series, epoch_ends, epoch_of, loss_series
from watcher.training.points import LOSS_AVERAGE, LOSS_CURRENT, Point

RISE_WARMUP = 20


@dataclass(frozen=True)
class Finding:
    """One health problem: `kind` (loss_nan | loss_rise | stalled), a dedupe `key` (one
    alert per occurrence), and the one-line message."""

    kind: str
    key: str
    message: str


def first_nonfinite(series: Series) -> Point | None:
    """The first NaN/inf loss point (per-step or average), or None."""
    bad = [p for tag in (LOSS_CURRENT, LOSS_AVERAGE) for p in series.get(tag, ()) if not p.finite]
    return min(bad, key=lambda p: p.step) if bad else None


def loss_rise(series: Series) -> tuple[float, float] | None:
    """(latest loss, running minimum) of kohya's average loss, past the warm-up; None when
    there is not enough to say, or the latest loss is not finite."""
    finite = [p.value for p in loss_series(series)[RISE_WARMUP:] if p.finite]
    if len(finite) < 2 or not math.isfinite(loss_series(series)[-1].value):
        return None
    low = min(finite)
    return finite[-1], low


def findings(series: Series, figures: dict[str, Any], *, loss_rise_factor: float,
             stall_minutes: float, seconds_since_step: float | None) -> list[Finding]:
    out: list[Finding] = []
    bad = first_nonfinite(series)
    if bad is not None:
        out.append(Finding("loss_nan", "loss_nan",
                           f"{bad.tag} is {bad.value} at step {bad.step} (epoch "
                           f"{epoch_of(bad.step, epoch_ends(series))}): the run is lost from there"))
    rise = loss_rise(series)
    if rise is not None and rise[1] > 0 and rise[0] > loss_rise_factor * rise[1]:
        latest, low = rise
        out.append(Finding("loss_rise", f"loss_rise:{figures.get('epoch')}",
                           f"loss {latest:.4g} is {latest / low:.1f}x its minimum {low:.4g} "
                           f"(limit {loss_rise_factor:g}x) at step {figures.get('step')}"))
    if seconds_since_step is not None and seconds_since_step > stall_minutes * 60:
        out.append(Finding("stalled", f"stalled:{figures.get('step')}",
                           f"no new training step for {seconds_since_step / 60:.1f} min "
                           f"(limit {stall_minutes:g} min) at step {figures.get('step')} while "
                           "the trainer process lives"))
    return out


def training_metrics(series: Series, figures: dict[str, Any],
                     seconds_since_step: float | None) -> dict[str, float | None]:
    """The numbers rules over training figures compare (TRAINING_METRICS in watcher.rules)."""
    last = loss_series(series)[-1] if loss_series(series) else None
    rise = loss_rise(series)
    return {
        "loss": last.value if last else None,  # NaN stays NaN: such a rule cannot judge it
        "loss_finite": None if last is None else float(first_nonfinite(series) is None),
        "loss_rise": rise[0] / rise[1] if rise and rise[1] > 0 else None,
        "lr": figures.get("lr"),
        "steps_per_s": figures.get("steps_per_s"),
        "validation_loss": figures.get("validation_loss"),
        "minutes_since_step": None if seconds_since_step is None else seconds_since_step / 60,
    }
