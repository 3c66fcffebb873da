"""The report's best-epoch line says when nothing set the named epoch apart."""

from __future__ import annotations

import pytest

from watcher.report.history import RunHistory
from watcher.report.report import best_epoch_line


def _run(scores: dict[int, float]) -> RunHistory:
    return RunHistory(name="r", epochs={e: {"overall_score": s} for e, s in scores.items()})


@pytest.mark.parametrize(("scores", "expected"), [
    ({1: 3.0, 2: 7.5, 3: 6.0}, "epoch 2 (7.5/10)"),
    ({1: 1.0, 2: 1.0, 3: 1.0, 4: 1.0}, "none stands out: every epoch scores 1.0/10 (epoch 1 is the earliest)"),
    ({1: 2.0, 2: 8.0, 3: 5.0, 4: 8.0, 5: 8.0}, "epoch 2 (8.0/10, tied with epochs 4, 5: the earliest is named)"),
    ({1: 2.0, 2: 8.0, 3: 8.0}, "epoch 2 (8.0/10, tied with epoch 3: the earliest is named)"),
    ({1: 4.0}, "epoch 1 (4.0/10)"),
])
def test_best_epoch_line_names_ties(scores: dict[int, float], expected: str) -> None:
    run = _run(scores)
    assert best_epoch_line(run, *run.best()) == expected


def test_no_scored_epoch_is_a_dash() -> None:
    run = _run({})
    assert best_epoch_line(run, *run.best()) == "-"
