"""Trainer health: is the next epoch's checkpoint overdue?

The plan expects 10-12 minutes an epoch. A checkpoint is overdue when nothing new has
appeared for `factor` x the expected time between checkpoints since the last progress (the
last checkpoint, or the trainer's start if that is later, e.g. after a restart). Pure
arithmetic on timestamps: the daemon feeds it times, nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def overdue(now: float, last_progress_at: float, expected_epoch_s: float, factor: float) -> bool:
    """True when more than factor x expected_epoch_s has passed since last_progress_at.
    Exactly at the limit is not overdue yet."""
    if expected_epoch_s <= 0 or factor <= 0:
        raise ValueError("expected_epoch_s and factor must be > 0")
    return now - last_progress_at > expected_epoch_s * factor


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


@dataclass(frozen=True)
class EpochHealth:
    """Where the run stands at `now` (see EpochClock.status)."""

    waiting_for_epoch: int
    last_progress_at: float
    elapsed_s: float
    limit_s: float
    overdue: bool
    overdue_by_s: float
    observed_epoch_s: float | None  # median time between checkpoints seen so far
    message: str


@dataclass
class EpochClock:
    """Checkpoint detection times -> is the next one overdue, and by how much.

    `epochs_per_checkpoint` is kohya's save_every_n_epochs: with 2, a checkpoint is expected
    every 2 x expected_epoch_s. `total_epochs` (max_train_epochs), when given, ends the
    watch once that many epochs have been seen.
    """

    expected_epoch_s: float
    factor: float = 2.0
    epochs_per_checkpoint: int = 1
    total_epochs: int | None = None
    checkpoint_times: list[float] = field(default_factory=list)
    last_epoch: int = 0

    def __post_init__(self) -> None:
        if self.expected_epoch_s <= 0 or self.factor <= 0 or self.epochs_per_checkpoint < 1:
            raise ValueError("expected_epoch_s and factor must be > 0, epochs_per_checkpoint >= 1")

    def checkpoint_seen(self, at: float, epoch: int | None = None) -> None:
        """Record a settled checkpoint (its epoch when known, else counted)."""
        self.checkpoint_times.append(at)
        self.last_epoch = max(self.last_epoch, epoch if epoch is not None
                              else self.last_epoch + self.epochs_per_checkpoint)

    def expected_epoch(self) -> int:
        """The epoch whose checkpoint is awaited next."""
        return self.last_epoch + self.epochs_per_checkpoint

    @property
    def interval_s(self) -> float:
        return self.expected_epoch_s * self.epochs_per_checkpoint

    def observed_epoch_s(self) -> float | None:
        """Median time between successive checkpoints, per epoch."""
        times = sorted(self.checkpoint_times)
        gaps = sorted(b - a for a, b in zip(times, times[1:], strict=False))
        if not gaps:
            return None
        mid = len(gaps) // 2
        median = gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
        return median / self.epochs_per_checkpoint

    def finished(self) -> bool:
        return self.total_epochs is not None and self.last_epoch >= self.total_epochs

    def status(self, now: float, trainer_started_at: float | None) -> EpochHealth | None:
        """None when there is nothing to time (no start and no checkpoint, or all epochs seen)."""
        starts = [t for t in (trainer_started_at, max(self.checkpoint_times, default=None))
                  if t is not None]
        if not starts or self.finished():
            return None
        last = max(starts)
        elapsed = max(0.0, now - last)
        limit = self.interval_s * self.factor
        late = overdue(now, last, self.interval_s, self.factor)
        observed = self.observed_epoch_s()
        since = "the last checkpoint" if self.checkpoint_times and last in self.checkpoint_times \
            else "the trainer started"
        message = (f"epoch {self.expected_epoch()} checkpoint "
                   + (f"overdue by {_minutes(elapsed - limit)}: " if late else "on time: ")
                   + f"{_minutes(elapsed)} since {since}, limit {_minutes(limit)} "
                   f"({self.factor:g} x {_minutes(self.interval_s)} expected)")
        if observed is not None:
            message += f"; epochs so far took {_minutes(observed)} (median)"
        return EpochHealth(self.expected_epoch(), last, elapsed, limit, late,
                           max(0.0, elapsed - limit), observed, message)

    def overdue_message(self, now: float, trainer_started_at: float | None) -> str | None:
        """The alert text when the next checkpoint is overdue, else None."""
        health = self.status(now, trainer_started_at)
        return health.message if health is not None and health.overdue else None
