"""The team's weighting (watcher.report.calibration.fit_team / team_calibrate): a ridge fit
of the reviewer's score on the evaluator's features, with bootstrap uncertainty, used in the
report once MIN_TEAM_REVIEWS reviewed epochs exist across the store's runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_report_support import seeded_config

from watcher.cli import main
from watcher.config import load_config
from watcher.report import write_report
from watcher.report.calibration import (
    MIN_TEAM_REVIEWS,
    TEAM_FEATURES,
    fit_team,
    team_calibrate,
    team_features,
    team_lines,
)
from watcher.report.history import RunHistory
from watcher.store import Store

SKIN = TEAM_FEATURES.index("share_wrong_skin")


def _epochs(n: int, seed: int) -> tuple[list[dict], list[float]]:
    """Aggregates whose reviewer marks down wrong faces 3 points more than the auto score does."""
    rng = np.random.default_rng(seed)
    aggregates, human = [], []
    for _ in range(n):
        wrong = int(rng.integers(0, 3))
        auto = float(rng.uniform(4, 9))
        aggregates.append({"overall_score": auto, "visual_score": auto, "style_score": auto,
                           "prompt_score": auto, "background_match_rate": float(rng.uniform(0, 1)),
                           "n_images": 2, "issue_counts": {"wrong_skin": wrong} if wrong else {}})
        human.append(float(np.clip(auto - 3.0 * wrong / 2 + rng.normal(0, 0.2), 1, 10)))
    return aggregates, human


def test_features_are_the_aggregates_numbers_and_issue_shares() -> None:
    x = team_features({"visual_score": 7.0, "background_match_rate": None, "n_images": 4,
                       "issue_counts": {"wrong_skin": 1}})
    assert len(x) == len(TEAM_FEATURES) and x[0] == 7.0 and x[SKIN] == 0.25
    assert np.isnan(x[TEAM_FEATURES.index("background_match_rate")])
    assert np.isnan(team_features({})[SKIN])  # no images: no share, not a zero


def test_the_fit_learns_what_the_reviewer_weighs_and_says_how_sure_it_is() -> None:
    aggregates, human = _epochs(80, seed=1)
    auto = [a["overall_score"] for a in aggregates]
    fit = fit_team("overall", auto, [team_features(a) for a in aggregates], human)
    weights = fit.weights()
    assert min(weights, key=lambda k: weights[k][0]) == "share_wrong_skin"
    w, sd = weights["share_wrong_skin"]
    assert w < -0.8 and 0 < sd < abs(w) / 3          # clearly negative, and its spread shown
    assert fit.mae_loo < fit.mae_raw / 3              # it helps on reviews it did not see
    clean = {**aggregates[0], "issue_counts": {}}
    bad = {**aggregates[0], "issue_counts": {"wrong_skin": 2}}
    v_clean, lo, hi = fit.apply(7.0, team_features(clean))
    v_bad, _, _ = fit.apply(7.0, team_features(bad))
    assert lo <= v_clean <= hi and hi - lo > 0 and v_clean - v_bad > 2.0
    # few reviews: the ridge keeps the weights small (close to the raw score)
    few = fit_team("overall", auto[:3], [team_features(a) for a in aggregates[:3]], human[:3])
    assert abs(few.weights()["share_wrong_skin"][0]) < abs(w) / 2
    with pytest.raises(ValueError, match="need 2"):
        fit_team("overall", auto[:1], [team_features(aggregates[0])], human[:1])


def _run(name: str, aggregates: list[dict], human: list[float]) -> RunHistory:
    run = RunHistory(name=name)
    for epoch, (a, h) in enumerate(zip(aggregates, human, strict=True), start=1):
        run.epochs[epoch] = a
        run.reviews[epoch] = {"visual": h, "style": h, "prompt": h}
    return run


def test_reviews_of_all_runs_are_pooled_from_min_team_reviews_and_the_lines_show_the_best() -> None:
    aggregates, human = _epochs(MIN_TEAM_REVIEWS, seed=2)
    runs = [_run(f"r{i}", aggregates[i::4], human[i::4]) for i in range(4)]
    assert team_calibrate(runs[:3]) == []             # fewer than MIN_TEAM_REVIEWS reviews
    fits = team_calibrate(runs)
    assert {f.score for f in fits} == {"visual", "style", "prompt", "overall"}
    assert all(f.n == MIN_TEAM_REVIEWS for f in fits)
    overall = next(f for f in fits if f.score == "overall")
    text = "\n".join(team_lines(runs[0], fits, MIN_TEAM_REVIEWS))
    values = {e: overall.apply(runs[0].epochs[e]["overall_score"], team_features(runs[0].epochs[e]))[0]
              for e in runs[0].evaluated}
    best = max(values, key=lambda e: (values[e], -e))
    assert f"Best epoch by the team's weighting: {best} " in text
    assert "share_wrong_skin" in text and "+-" in text
    waiting = team_lines(runs[0], [], 7)
    assert waiting[0].endswith(f"starts at {MIN_TEAM_REVIEWS} reviewed epochs across the runs of "
                               "this state store; 7 so far.")


def test_the_report_says_how_many_reviews_the_team_weighting_waits_for(tmp_path: Path) -> None:
    config = seeded_config(tmp_path, "SD15_KEEP_TOKENS_3_EXPERIMENT")
    for epoch in (1, 3):
        assert main(["review", "--config", str(config), "--epoch", str(epoch), "--visual", "6",
                     "--style", "6", "--prompt-score", "6"]) == 0
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        text = write_report(cfg, store).read_text()
    assert f"starts at {MIN_TEAM_REVIEWS} reviewed epochs across the runs of this state store; 2 so far." in text
