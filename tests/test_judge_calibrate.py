"""bench.judge.calibrate's leave-one-run-out bookkeeping, on synthetic reviewed epochs (the
full measurement renders 600 images: `python -m bench.judge.calibrate`, docs/evaluators.md)."""

from __future__ import annotations

import numpy as np

from bench.judge.calibrate import leave_one_run_out, pseudo_runs
from watcher.report.calibration import TEAM_FEATURES


def _epochs(n: int) -> list[dict]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        auto = float(rng.uniform(3, 9))
        skin = float(rng.integers(0, 2))
        features = np.zeros(len(TEAM_FEATURES))
        features[TEAM_FEATURES.index("share_wrong_skin")] = skin
        out.append({"set": "s", "id": f"e{i}", "family": "sdxl" if i % 3 == 0 else "sd15", "auto": auto,
                    "features": features, "human": float(np.clip(auto - 3 * skin, 1, 10)), "faults": {}})
    return out


def test_pseudo_runs_are_single_family_and_whole() -> None:
    runs = pseudo_runs(_epochs(95), 10)
    assert all(len(r) == 10 and len({e["family"] for e in r}) == 1 for r in runs)
    assert len(runs) == 3 + 6  # 32 sdxl-like -> 3 runs, 63 sd15-like -> 6 (leftovers dropped)


def test_leave_one_run_out_scores_the_raw_fit_and_learns_the_hidden_weight() -> None:
    runs = pseudo_runs(_epochs(200), 10)
    table = leave_one_run_out(runs, draws=2)
    expected = np.mean([np.mean([abs(e["auto"] - e["human"]) for e in r]) for r in runs])
    assert table["raw"]["mae"] == round(float(expected), 3)
    # the reviewer marks wrong faces down 3 points: with 160 reviews the ridge fit knows it
    assert table["160/ridge"]["mae"] < table["raw"]["mae"] / 2
    assert table["160/ridge"]["spearman_in_run"] > table["raw"]["spearman_in_run"]
    assert table["160/line"]["mae"] > table["160/ridge"]["mae"]  # one slope cannot see faces
