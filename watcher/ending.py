"""How a run ended, from the state database: the facts every ending message sums up.

A stop decided at epoch N stops nothing when the trainer had already written its last epoch
(a slow evaluation, a GPU host under load): the run then finished, and every message (the
launcher's, the report's run status, the run's recorded status) says the stop came too late
instead of "stopped at epoch N". Epochs judged after a stop are marked as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from watcher.store import Store


@dataclass(frozen=True)
class LateStop:
    stop_epoch: int
    trainer_last_epoch: int

    def __str__(self) -> str:
        return (f"stop decided at epoch {self.stop_epoch}; the trainer had already finished "
                f"at epoch {self.trainer_last_epoch}")


def last_epoch_reached(store: Store, run: str) -> int:
    """The highest epoch whose checkpoint (or sample set) was seen; 0 before the first."""
    return max((c.epoch for c in store.checkpoints(run) if c.epoch is not None), default=0)


def first_stop_epoch(store: Store, run: str) -> int | None:
    """The epoch of the run's first decided stop (a termination signal is not a decision)."""
    return min((r.epoch for r in store.stop_requests(run) if r.epoch is not None), default=None)


def late_stop(store: Store, run: str, last_planned_epoch: int) -> LateStop | None:
    """The first decided stop, when the trainer had finished on its own before it was
    decided: its exit recorded earlier (the launcher's record), or its last planned epoch
    already seen. None otherwise (no stop, or a stop in time)."""
    requests = [r for r in store.stop_requests(run) if r.epoch is not None]
    if not requests:
        return None
    first = min(requests, key=lambda r: r.requested_at)
    trainer = store.trainer(run)
    exited_first = (trainer is not None and trainer.state == "exited"
                    and trainer.ended_at is not None and trainer.ended_at <= first.requested_at)
    seen_first = [c.epoch for c in store.checkpoints(run)
                  if c.epoch is not None and c.detected_at <= first.requested_at]
    if not exited_first and max(seen_first, default=0) < last_planned_epoch:
        return None
    return LateStop(int(first.epoch or 0), last_epoch_reached(store, run))


def after_stop_note(epoch: int, stop_epoch: int | None) -> str:
    """" (after the stop at epoch N)" for an epoch judged after the run's stop, else ""."""
    return f" (after the stop at epoch {stop_epoch})" if stop_epoch is not None and epoch > stop_epoch else ""
