"""bench.judge.reweight's ranking figures (Spearman per family and per run, best epoch) on a
hand-made set, and its fit of the fault points on synthetic rows (the full measurement renders
780 images: `python -m bench.judge.reweight`, docs/evaluators.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.judge.reweight import FAULTS, MIN_SEEN, fit_points, ranking
from evaluators.faults import FAULT_POINTS

HALF_ROOT3 = math.sqrt(3) / 2


def _rows() -> list[dict]:
    # two SD 1.5-like runs of 3 epochs, then one SDXL-like run, in one set
    human = [3, 9, 5, 8, 2, 8, 1, 2, 3]
    before = [4, 8, 8, 7, 9, 5, 3, 2, 1]
    after = [4, 8, 6, 7, 3, 6, 1, 2, 3]
    return [{"set": "s", "id": f"e{i}", "family": "sd15" if i < 6 else "sdxl", "human": float(h),
             "before": float(b), "after": float(a), "issues": []}
            for i, (h, b, a) in enumerate(zip(human, before, after, strict=True))]


def test_ranking_counts_spearman_per_run_and_the_reviewers_best_epoch() -> None:
    before = ranking(_rows(), "before", run_size=3)
    after = ranking(_rows(), "after", run_size=3)
    # run 1: 4, 8, 8 against 3, 9, 5 -> ranks (1, 2.5, 2.5) vs (1, 3, 2): sqrt(3)/2; the tie
    # at 8 goes to the earlier epoch (as RunHistory.best), the reviewer's 9: right.
    # run 2: 7, 9, 5 against 8, 2, 8: -sqrt(3)/2, best epoch the reviewer's 2: wrong.
    # run 3 (SDXL-like): exactly reversed: -1, best epoch wrong.
    assert before["n_runs"] == 3
    assert before["spearman_by_run"] == pytest.approx([HALF_ROOT3, -HALF_ROOT3, -1.0], abs=1e-3)
    assert before["spearman_in_run"] == pytest.approx(-1 / 3, abs=1e-3)
    assert before["best_epoch_is_reviewers"] == pytest.approx(1 / 3, abs=1e-3)
    assert before["spearman_sdxl"] == -1.0
    assert before["spearman_in_run_sd15"] == pytest.approx(0.0, abs=1e-3)
    assert before["best_epoch_is_reviewers_sd15"] == 0.5 and before["best_epoch_is_reviewers_sdxl"] == 0.0
    assert after["spearman_by_run"] == pytest.approx([1.0, HALF_ROOT3, 1.0], abs=1e-3)
    assert after["best_epoch_is_reviewers"] == 1.0
    assert after["spearman_sdxl"] == 1.0


def test_a_run_the_reviewer_scores_flat_has_no_spearman_but_a_best_epoch() -> None:
    rows = [{"set": "s", "id": f"e{i}", "family": "sd15", "human": 5.0, "before": float(i), "after": 1.0,
             "issues": []} for i in range(3)]
    result = ranking(rows, "before", run_size=3)
    assert result["spearman_by_run"] == [None] and result["spearman_in_run"] is None
    assert result["best_epoch_is_reviewers"] == 1.0  # every epoch is the reviewer's best


def test_the_fit_recovers_hidden_points_and_leaves_unseen_faults_at_zero() -> None:
    rng = np.random.default_rng(3)
    rows = []
    for i in range(300):
        issues = [f for f in ("wrong_background", "not_pixel_art", "wrong_hair") if rng.random() < 0.3]
        if i < MIN_SEEN - 1:
            issues.append("off_palette")  # seen too rarely to fit
        before = float(rng.uniform(4, 9))
        human = before - 0.5 - 2.0 * ("wrong_background" in issues) - 1.0 * ("not_pixel_art" in issues) \
            + 1.0 * ("wrong_hair" in issues) + float(rng.normal(0, 0.05))
        rows.append({"issues": issues, "before": before, "human": human})
    fit = fit_points(rows)
    assert fit["points"]["wrong_background"] == 2.0 and fit["points"]["not_pixel_art"] == 1.0
    assert fit["points"]["wrong_hair"] == 0.0  # a fault never earns points back
    assert fit["points"]["off_palette"] == 0.0 and fit["seen"]["off_palette"] == MIN_SEEN - 1
    # the +1 that wrong hair may not give back lifts the offset from -0.5 by about 0.3 x 1
    assert fit["offset"] == pytest.approx(-0.5 + 0.3, abs=0.1)


def test_the_table_names_every_fitted_fault_in_quarter_points() -> None:
    assert set(FAULTS) <= set(FAULT_POINTS)
    assert all(p >= 0 and (p * 4).is_integer() for p in FAULT_POINTS.values())
