"""Calibration of the automatic 1-10 scores against people's review scores.

A least-squares line `human = slope * auto + intercept` per score, once MIN_REVIEWS epochs
have both; the remaining error is the mean absolute error of the calibrated scores, in
sample and leave-one-out (the honest figure with so few points).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


# --- The team's weighting: a ridge fit on the evaluator's features (issue 25) -------------
#
# The line above only rescales one automatic score. The team may weigh things differently
# from the evaluators (a wrong face worse than a wrong background, say): with enough reviews,
# `fit_team` learns   human - auto = offset + sum(w_f * z_f)   over the epoch's features z
# (standardised on the reviewed epochs; a missing one counts as their mean). Ridge shrinks
# every weight (and the offset) toward 0, i.e. toward the raw automatic score, so a handful
# of reviews moves it little; a bootstrap over the reviews gives each weight's spread and each
# calibrated score's 80% interval. bench/judge/calibrate.py measures it leave-one-run-out.

# Aggregate metrics (evaluators.aggregate_epoch) the fit may weigh; issue shares are the
# share of an epoch's images with that issue (evaluators.score.ISSUE_ORDER names).
TEAM_METRICS = ("visual_score", "style_score", "prompt_score", "background_match_rate",
                "background_partly_rate", "color_accuracy", "style_quality")
TEAM_ISSUES = ("wrong_skin", "wrong_hair", "wrong_background_structure", "not_pixel_art",
               "off_palette", "missing_colors")
TEAM_FEATURES = TEAM_METRICS + tuple(f"share_{i}" for i in TEAM_ISSUES)
# Below 40 reviews the fit ranked epochs worse than the raw scores (leave-one-run-out on our
# labelled sets, bench/judge/calibrate.py; docs/evaluators.md), so it is used from there on.
MIN_TEAM_REVIEWS = 40
TEAM_ALPHA = 4.0        # ridge penalty on each standardised weight, in reviews' worth
OFFSET_ALPHA = 2.0      # and on the offset
BOOTSTRAP = 200
INTERVAL = (10.0, 90.0)  # percentiles of the bootstrap: an 80% interval


def team_features(aggregate: Mapping[str, Any]) -> np.ndarray:
    """The epoch's features in TEAM_FEATURES order, NaN where the aggregate has none."""
    out = [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
           for v in (aggregate.get(m) for m in TEAM_METRICS)]
    n = aggregate.get("n_images") or 0
    counts = aggregate.get("issue_counts") or {}
    out += [(float(counts.get(issue, 0)) / n) if n else math.nan for issue in TEAM_ISSUES]
    return np.asarray(out, dtype=float)


def _ridge(z: np.ndarray, r: np.ndarray, alpha: float) -> np.ndarray:
    """[offset, weights...] minimising |r - offset - z w|^2 + OFFSET_ALPHA offset^2 + alpha |w|^2."""
    a = np.column_stack([np.ones(len(z)), z])
    penalty = np.diag([OFFSET_ALPHA] + [alpha] * z.shape[1])
    return np.linalg.solve(a.T @ a + penalty, a.T @ r)


@dataclass(frozen=True)
class TeamFit:
    score: str
    n: int
    alpha: float
    mean: np.ndarray        # feature means on the reviewed epochs (standardisation)
    scale: np.ndarray       # and spreads (1 where a feature did not vary)
    beta: np.ndarray        # [offset, weights...] on the reviews
    boot: np.ndarray        # BOOTSTRAP x len(beta): the fits on resampled reviews
    mae_raw: float          # |human - auto|
    mae_loo: float          # each review predicted by a fit without it

    def _z(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, dtype=float) - self.mean) / self.scale
        return np.where(np.isfinite(z), z, 0.0)

    def apply(self, auto: float, features: np.ndarray) -> tuple[float, float, float]:
        """(calibrated, low, high): the score and its 80% bootstrap interval, within 1-10."""
        row = np.concatenate([[1.0], self._z(features)])
        spread = auto + self.boot @ row
        low, high = np.percentile(spread, INTERVAL)
        def clip(value: float) -> float:
            return float(np.clip(value, 1.0, 10.0))

        return clip(auto + row @ self.beta), clip(low), clip(high)

    def weights(self) -> dict[str, tuple[float, float]]:
        """Feature -> (weight, bootstrap standard deviation), in score points per spread."""
        sd = self.boot[:, 1:].std(axis=0)
        return {f: (float(w), float(s)) for f, w, s in zip(TEAM_FEATURES, self.beta[1:], sd, strict=True)}


def fit_team(score: str, auto: Sequence[float], features: Sequence[np.ndarray],
             human: Sequence[float], alpha: float = TEAM_ALPHA, seed: int = 0,
             bootstrap: int = BOOTSTRAP, loo: bool = True) -> TeamFit:
    """The team's weighting from reviewed epochs (auto score, features, reviewer's score).
    `bootstrap=0, loo=False` only for benchmarks that refit thousands of times."""
    x = np.asarray(features, dtype=float).reshape(len(features), len(TEAM_FEATURES))
    a, y = np.asarray(auto, dtype=float), np.asarray(human, dtype=float)
    if not len(a) == len(x) == len(y) or len(a) < 2:
        raise ValueError(f"need 2+ matching reviews to fit {score}, have {len(y)}")
    finite = np.isfinite(x)
    counts = finite.sum(axis=0)
    mean = np.where(counts > 0, np.where(finite, x, 0.0).sum(axis=0) / np.maximum(counts, 1), 0.0)
    filled = np.where(finite, x, mean)
    scale = filled.std(axis=0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    z = (filled - mean) / scale
    r = y - a
    beta = _ridge(z, r, alpha)
    rng = np.random.default_rng(seed)
    boot = np.array([_ridge(z[i], r[i], alpha) for i in rng.integers(0, len(r), (bootstrap, len(r)))]
                    or [beta])
    errors = []
    for i in range(len(r) if loo else 0):
        keep = np.arange(len(r)) != i
        b = _ridge(z[keep], r[keep], alpha)
        errors.append(abs(float(np.clip(a[i] + b[0] + z[i] @ b[1:], 1, 10)) - y[i]))
    return TeamFit(score, len(y), alpha, mean, scale, beta, boot, mae_raw=float(np.abs(a - y).mean()),
                   mae_loo=float(np.mean(errors)) if errors else math.nan)


def team_calibrate(runs: Sequence[RunHistory]) -> list[TeamFit]:
    """One TeamFit per score from the reviews of all these runs (the team's, pooled: one run
    has a handful), once MIN_TEAM_REVIEWS reviewed epochs have the score."""
    out = []
    for score in PAIRS:
        auto: list[float] = []
        human: list[float] = []
        feats: list[np.ndarray] = []
        for run in runs:
            epochs, a, h = pairs(run, score)
            auto += a
            human += h
            feats += [team_features(run.epochs[e]) for e in epochs]
        if len(auto) >= MIN_TEAM_REVIEWS:
            out.append(fit_team(score, auto, feats, human))
    return out


def team_lines(run: RunHistory, fits: Sequence[TeamFit], reviews: int) -> list[str]:
    """The report's lines for the team's weighting: the fit, then each epoch's calibrated score."""
    if not fits:
        return [f"The team's weighting (a ridge fit on the evaluator's features) starts at "
                f"{MIN_TEAM_REVIEWS} reviewed epochs across the runs of this state store; {reviews} so far."]
    lines = ["The team's weighting (ridge on the evaluator's features, reviews of all runs pooled; "
             "weights in score points per spread, +- bootstrap SD; intervals 80%):", "",
             "| score | reviews | error before | leave-one-out | largest weights |", "|---|---:|---:|---:|---|"]
    for f in fits:
        top = sorted(f.weights().items(), key=lambda kv: -abs(kv[1][0]))[:3]
        lines.append(f"| {f.score} | {f.n} | {f.mae_raw:.2f} | {f.mae_loo:.2f} | "
                     + ", ".join(f"{k} {w:+.2f} +- {sd:.2f}" for k, (w, sd) in top) + " |")
    overall = next((f for f in fits if f.score == "overall"), None)
    if overall is None:
        return lines
    lines += ["", "| epoch | auto overall | team-calibrated (80% interval) |", "|---:|---:|---|"]
    best: tuple[float, int] | None = None
    for e in run.evaluated:
        auto = run.value(e, "overall_score")
        if auto is None:
            continue
        value, low, high = overall.apply(auto, team_features(run.epochs[e]))
        if best is None or (value, -e) > best:  # the earliest of equal scores
            best = (value, -e)
        lines.append(f"| {e} | {auto:.1f} | {value:.1f} ({low:.1f}-{high:.1f}) |")
    if best is not None:
        lines += ["", f"Best epoch by the team's weighting: {abs(best[1])} (advisory: the rules "
                  "judge the automatic scores)."]
    return lines
