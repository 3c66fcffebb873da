"""Calibration of the automatic 1-10 scores against people's review scores.

A least-squares line `human = slope * auto + intercept` per score, once MIN_REVIEWS epochs
have both; the remaining error is the mean absolute error of the calibrated scores, in
sample and leave-one-out (the honest figure with so few points).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from watcher.report.history import RunHistory

MIN_REVIEWS = 5
NARROW_SPREAD = 1.0  # automatic scores spanning less than this give an unreliable slope
# review column -> automatic metric
PAIRS = {"visual": "visual_score", "style": "style_score", "prompt": "prompt_score",
         "overall": "overall_score"}


@dataclass(frozen=True)
class Calibration:
    score: str          # visual | style | prompt | overall
    n: int
    slope: float
    intercept: float
    mae_raw: float      # |human - auto| before calibration
    mae_fit: float      # after, on the reviews it was fitted to
    mae_loo: float      # after, each review predicted by a line fitted without it
    auto_spread: float  # range of the automatic scores: a line over a narrow range is not reliable

    def apply(self, auto: float) -> float:
        return float(np.clip(self.slope * auto + self.intercept, 1.0, 10.0))


def _line(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope and intercept; a flat x gives slope 0 (the mean of y)."""
    if np.ptp(x) == 0:
        return 0.0, float(y.mean())
    a = np.column_stack([x, np.ones_like(x)])
    (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
    return float(slope), float(intercept)


def fit(score: str, auto: Sequence[float], human: Sequence[float]) -> Calibration:
    x, y = np.asarray(auto, dtype=float), np.asarray(human, dtype=float)
    if len(x) != len(y) or len(x) < MIN_REVIEWS:
        raise ValueError(f"need {MIN_REVIEWS}+ pairs to calibrate {score}, have {min(len(x), len(y))}")
    slope, intercept = _line(x, y)
    loo = []
    for i in range(len(x)):
        keep = np.arange(len(x)) != i
        s, b = _line(x[keep], y[keep])
        loo.append(abs(s * x[i] + b - y[i]))
    return Calibration(score, len(x), slope, intercept,
                       mae_raw=float(np.abs(x - y).mean()),
                       mae_fit=float(np.abs(slope * x + intercept - y).mean()),
                       mae_loo=float(np.mean(loo)), auto_spread=float(np.ptp(x)))


def pairs(run: RunHistory, score: str) -> tuple[list[int], list[float], list[float]]:
    """(epochs, auto, human) for the reviewed epochs that have the automatic score."""
    metric = PAIRS[score]
    epochs, auto, human = [], [], []
    for epoch, review in sorted(run.reviews.items()):
        a = run.value(epoch, metric)
        if a is None:
            continue
        h = (sum(review[k] for k in ("visual", "style", "prompt")) / 3
             if score == "overall" else float(review[score]))
        epochs.append(epoch)
        auto.append(a)
        human.append(h)
    return epochs, auto, human


def calibrate(run: RunHistory) -> list[Calibration]:
    """One calibration per score, or [] while fewer than MIN_REVIEWS epochs have both."""
    out = []
    for score in PAIRS:
        _, auto, human = pairs(run, score)
        if len(auto) >= MIN_REVIEWS:
            out.append(fit(score, auto, human))
    return out
