"""What a reviewer takes off the 1-10 overall for each fault the evaluators find (issue 25).

Kept apart from evaluators.score so that evaluators.aggregate (loaded with a config, and by
`status`) needs neither scipy nor scikit-image.
"""

from __future__ import annotations

from collections.abc import Mapping

# Points a reviewer takes off the 1-10 overall for each fault (an issue of evaluators.score) an
# image shows, beyond what the visual, style and prompt scores already take. Facts about the
# judge, not about a run (a team's own weighting is the report's calibration,
# watcher.report.calibration). Fitted by `python -m bench.judge.reweight` on labelled seeds
# 14-16 and reported on held-out seeds 13 and 17 (docs/evaluators.md). Issues not named here
# cost nothing beyond the three scores.
FAULT_POINTS: dict[str, float] = {
    "wrong_background": 1.25, "wrong_background_structure": 0.5, "not_pixel_art": 0.5,
    "wrong_skin": 0.75, "wrong_hair": 0.0, "missing_colors": 0.0, "off_palette": 0.0,
}


def reviewed_overall(mean_of_scores: float, fault_shares: Mapping[str, float]) -> float:
    """The overall 1-10: the mean of the visual, style and prompt scores less FAULT_POINTS for
    each fault times the share of images showing it (1 or 0 for one image); at least 1."""
    points = sum(FAULT_POINTS.get(fault, 0.0) * share for fault, share in fault_shares.items())
    return max(1.0, mean_of_scores - points)
