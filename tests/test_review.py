"""`epochwatch review`: a person's scores into the store and the Supabase outbox, and the
calibration of the automatic scores once five epochs are reviewed."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_report_support import seeded_config

from watcher.cli import main
from watcher.config import load_config
from watcher.report import write_report
from watcher.report.calibration import MIN_REVIEWS, calibrate, fit
from watcher.report.history import load_run
from watcher.store import Store

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    return seeded_config(tmp_path, RUN)


def _review(config: Path, epoch: int, v: float, s: float, p: float, notes: str = "") -> int:
    return main(["review", "--config", str(config), "--epoch", str(epoch), "--visual", str(v),
                 "--style", str(s), "--prompt-score", str(p), "--notes", notes])


def test_review_is_saved_and_queued_for_supabase(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _review(config, 3, 7.0, 6.5, 8.0, "crown  clear,\nbackground green") == 0
    out = capsys.readouterr().out
    assert "review saved: SD15_KEEP_TOKENS_3_EXPERIMENT epoch 3: visual 7, style 6.5, prompt 8" in out
    assert f"1 reviewed epoch(s); calibration starts at {MIN_REVIEWS}" in out
    cfg = load_config(config)
    with Store(cfg.state_db) as store:
        [review] = store.reviews(RUN)
        assert (review.epoch, review.visual, review.style, review.prompt) == (3, 7.0, 6.5, 8.0)
        assert review.notes == "crown clear, background green"
        [item] = [i for i in store.due("supabase") if i.payload.get("table") == "epoch_reviews"]
        row = item.payload["row"]
        assert item.payload["on_conflict"] == "run_name,epoch"
        assert (row["run_name"], row["epoch"], row["overall_score"]) == (RUN, 3, pytest.approx(7.1667, abs=1e-4))
        # the same review again is not queued twice; a corrected one is
        assert _review(config, 3, 7.0, 6.5, 8.0, "crown clear, background green") == 0
        assert len([i for i in store.due("supabase") if i.payload.get("table") == "epoch_reviews"]) == 1
        assert _review(config, 3, 7.5, 6.5, 8.0) == 0
        reviews = [i for i in store.due("supabase") if i.payload.get("table") == "epoch_reviews"]
        assert len(reviews) == 2 and store.reviews(RUN)[0].visual == 7.5


@pytest.mark.parametrize(("argv", "message"), [
    (["--epoch", "3", "--visual", "11", "--style", "5", "--prompt-score", "5"], "--visual must be a score from 1 to 10"),
    (["--epoch", "3", "--visual", "5", "--style", "nan", "--prompt-score", "5"], "--style must be a score from 1 to 10"),
    (["--epoch", "3", "--visual", "5", "--style", "5", "--prompt-score", "0"], "--prompt-score must be a score from 1 to 10"),
    (["--epoch", "3", "--visual", "5", "--style", "5"], "--prompt-score P is required"),
    (["--epoch", "12", "--visual", "5", "--style", "5", "--prompt-score", "5"],
     "epoch 12 of SD15_KEEP_TOKENS_3_EXPERIMENT has no evaluation (evaluated: 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)"),
])
def test_bad_reviews_are_refused(config: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["review", "--config", str(config), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    with Store(load_config(config).state_db) as store:
        assert store.reviews(RUN) == []


def test_the_old_prompt_spelling_still_works_with_a_note(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["review", "-c", str(config), "--epoch", "2", "--visual", "6", "--style", "5",
                 "--prompt", "4"]) == 0
    captured = capsys.readouterr()
    assert "--prompt is deprecated; use --prompt-score" in captured.err
    assert "epoch 2: visual 6, style 5, prompt 4" in captured.out
    with Store(load_config(config).state_db) as store:
        assert [r.prompt for r in store.reviews(RUN)] == [4.0]


def test_calibration_recovers_a_linear_relation() -> None:
    auto = [6.0, 7.0, 7.5, 8.0, 9.0]
    human = [2 * a - 8 for a in auto]
    c = fit("overall", auto, human)
    assert (c.slope, c.intercept) == (pytest.approx(2.0), pytest.approx(-8.0))
    assert c.mae_fit == pytest.approx(0.0, abs=1e-9) and c.mae_loo == pytest.approx(0.0, abs=1e-9)
    assert c.mae_raw == pytest.approx(sum(abs(a - h) for a, h in zip(auto, human, strict=True)) / 5)
    assert c.apply(9.5) == pytest.approx(10.0) and c.apply(4.0) == pytest.approx(1.0)  # clipped
    with pytest.raises(ValueError, match="need 5"):
        fit("overall", auto[:4], human[:4])


def test_calibration_with_noise_reports_the_remaining_error() -> None:
    auto = [5.0, 6.0, 7.0, 8.0, 9.0, 6.5]
    human = [4.6, 5.4, 6.9, 7.2, 8.1, 5.5]
    c = fit("visual", auto, human)
    assert 0 < c.mae_fit < c.mae_raw and c.mae_loo > c.mae_fit


def test_five_reviews_calibrate_and_the_report_shows_the_error(
        config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = load_config(config)
    # ON_TIME overall scores at 1, 3, 5, 7, 10: 6.0, 7.1, 7.7, 8.1, 8.5; people score lower
    for epoch, v in [(1, 5.0), (3, 6.0), (5, 6.5), (7, 7.5), (10, 7.5)]:
        assert _review(config, epoch, v, v - 0.5, v + 0.5) == 0
    out = capsys.readouterr().out
    assert "calibration overall: human = " in out and "(leave-one-out" in out and "n=5" in out
    with Store(cfg.state_db) as store:
        fits = {c.score: c for c in calibrate(load_run(store, RUN))}
        assert set(fits) == {"visual", "style", "prompt", "overall"}
        assert fits["overall"].n == 5 and fits["overall"].mae_fit < fits["overall"].mae_raw
        text = write_report(cfg, store).read_text()
    line = next(x for x in text.splitlines() if x.startswith("| overall | 5 |"))
    assert f"{fits['overall'].mae_loo:.2f} |" in line
