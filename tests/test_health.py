"""Trainer health: the overdue-epoch arithmetic on timestamps."""

from __future__ import annotations

import pytest

from watcher.health import EpochClock, overdue

MIN = 60.0


def test_overdue_boundary() -> None:
    assert not overdue(now=1000 + 22 * MIN, last_progress_at=1000, expected_epoch_s=11 * MIN,
                       factor=2.0)  # exactly at the limit: not yet
    assert overdue(now=1000 + 22 * MIN + 0.001, last_progress_at=1000,
                   expected_epoch_s=11 * MIN, factor=2.0)
    assert not overdue(now=1000, last_progress_at=1000, expected_epoch_s=1, factor=1)
    with pytest.raises(ValueError):
        overdue(1, 0, 0, 2)
    with pytest.raises(ValueError):
        overdue(1, 0, 10, -1)


def test_clock_before_any_checkpoint_times_from_trainer_start() -> None:
    clock = EpochClock(expected_epoch_s=11 * MIN, factor=2.0)
    assert clock.status(now=5000, trainer_started_at=None) is None  # nothing to time yet
    assert clock.expected_epoch() == 1
    assert clock.overdue_message(1000 + 20 * MIN, trainer_started_at=1000) is None
    message = clock.overdue_message(1000 + 25 * MIN, trainer_started_at=1000)
    assert message is not None
    assert message.startswith("epoch 1 checkpoint overdue by 3.0 min")
    assert "since the trainer started" in message and "limit 22.0 min" in message


def test_clock_after_checkpoints_reports_lateness_and_observed_pace() -> None:
    clock = EpochClock(expected_epoch_s=11 * MIN, factor=2.0)
    start = 1000.0
    for epoch, minutes in ((1, 10), (2, 22), (3, 33)):
        clock.checkpoint_seen(start + minutes * MIN, epoch)
    health = clock.status(start + 33 * MIN + 20 * MIN, trainer_started_at=start)
    assert health is not None
    assert health.waiting_for_epoch == 4 and not health.overdue
    assert health.observed_epoch_s == pytest.approx(11.5 * MIN)
    health = clock.status(start + 33 * MIN + 50 * MIN, trainer_started_at=start)
    assert health is not None and health.overdue
    assert health.overdue_by_s == pytest.approx(28 * MIN)
    assert "epoch 4 checkpoint overdue by 28.0 min: 50.0 min since the last checkpoint" in health.message
    assert "11.5 min (median)" in health.message


def test_save_every_2_epochs_doubles_the_interval() -> None:
    clock = EpochClock(expected_epoch_s=10 * MIN, factor=1.5, epochs_per_checkpoint=2)
    clock.checkpoint_seen(0.0)  # epoch unknown: counted as epoch 2
    assert clock.expected_epoch() == 4
    assert clock.overdue_message(29 * MIN, trainer_started_at=-20 * MIN) is None
    assert clock.overdue_message(31 * MIN, trainer_started_at=-20 * MIN) is not None


def test_restarted_trainer_times_from_its_new_start() -> None:
    clock = EpochClock(expected_epoch_s=10 * MIN, factor=2.0)
    clock.checkpoint_seen(0.0, epoch=3)
    # The trainer was restarted (resume) an hour later: time from the restart.
    assert clock.overdue_message(80 * MIN, trainer_started_at=65 * MIN) is None
    assert clock.overdue_message(86 * MIN, trainer_started_at=65 * MIN) is not None


def test_no_alert_once_all_epochs_are_seen() -> None:
    clock = EpochClock(expected_epoch_s=MIN, factor=2.0, total_epochs=2)
    clock.checkpoint_seen(0.0, 1)
    assert clock.overdue_message(10 * MIN, trainer_started_at=0.0) is not None
    clock.checkpoint_seen(MIN, 2)
    assert clock.finished() and clock.status(100 * MIN, trainer_started_at=0.0) is None


def test_invalid_clock() -> None:
    with pytest.raises(ValueError):
        EpochClock(expected_epoch_s=0)
    with pytest.raises(ValueError):
        EpochClock(expected_epoch_s=60, epochs_per_checkpoint=0)
