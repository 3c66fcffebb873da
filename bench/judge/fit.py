"""Fit the visual score's miss penalties (evaluators.score.MISS_PENALTY) on the labelled set
and report the fit on a held-out set built with another seed.

    .venv/bin/python -m bench.judge.fit [--holdout-seed 14]

visual = 1 + 9 x base x prod(1 - penalty[role] for each missed role), overall = mean(visual,
style, prompt). A grid search over the background, skin and hair penalties (0-0.8 in steps
of 0.05, up to 0.8; clothing, eyes, lips stay as they are) maximises Spearman(overall, reviewer 1-10)
on the fit set (labels.json); the held-out set is never used to choose.
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
from scipy.stats import spearmanr

from bench.judge.agreement import evaluate
from bench.judge.build import LABELS, build
from evaluators.score import MISS_PENALTY, OTHER_MISS_PENALTY

STEPS = np.round(np.arange(0.0, 0.81, 0.05), 2)


def _factor(missed: list[str], penalty: dict[str, float]) -> float:
    out = 1.0
    for role in missed:
        out *= 1.0 - penalty.get(role, OTHER_MISS_PENALTY)
    return out


def spearman_with(rows: list[dict], penalty: dict[str, float]) -> float:
    overall = []
    for r in rows:
        base = (r["visual"] - 1.0) / 9.0 / _factor(r["missed"], MISS_PENALTY)
        visual = 1.0 + 9.0 * base * _factor(r["missed"], penalty)
        parts = [v for v in (visual, r["style"], r["prompt"]) if v is not None]
        overall.append(sum(parts) / len(parts))
    return float(spearmanr(overall, [r["labels"]["overall"] for r in rows]).statistic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holdout-seed", type=int, default=14)
    parser.add_argument("--holdout-n", type=int, default=150)
    args = parser.parse_args(argv)
    fit_items = json.loads(LABELS.read_text())["items"]
    hold_items = build(args.holdout_n, args.holdout_seed)
    _, fit_rows = evaluate(fit_items)
    hold_summary, hold_rows = evaluate(hold_items)
    best = (-2.0, dict(MISS_PENALTY))
    for bg, skin, hair in itertools.product(STEPS, STEPS, STEPS):
        penalty = {**MISS_PENALTY, "background": float(bg), "skin": float(skin), "hair": float(hair)}
        rho = spearman_with(fit_rows, penalty)
        if rho > best[0] + 1e-9:
            best = (rho, penalty)
    none = {k: 0.0 for k in MISS_PENALTY}
    result = {
        "current": {k: MISS_PENALTY[k] for k in ("background", "skin", "hair")},
        "fitted": {k: best[1][k] for k in ("background", "skin", "hair")},
        "fit_spearman_current": round(spearman_with(fit_rows, MISS_PENALTY), 4),
        "fit_spearman_fitted": round(best[0], 4),
        "fit_spearman_no_penalty": round(spearman_with(fit_rows, none), 4),
        "holdout_spearman_current": round(spearman_with(hold_rows, MISS_PENALTY), 4),
        "holdout_spearman_fitted": round(spearman_with(hold_rows, best[1]), 4),
        "holdout_spearman_no_penalty": round(spearman_with(hold_rows, none), 4),
        "holdout": hold_summary,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
