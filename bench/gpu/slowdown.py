"""Trainer figures from the training worker's step times (pure: numbers in, numbers out).

A step is (start, end) in time.monotonic() seconds, which all processes of a Linux machine
share. The main process records windows: "alone" (the trainer has the GPU to itself) and
"shared" (the daemon evaluates an epoch meanwhile). Within a window, training progress is
counted in steps, a step overlapping the window's edge counted by the fraction inside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

Window = tuple[float, float]
Step = tuple[float, float]


def progress(steps: Sequence[Step], window: Window) -> float:
    """Training steps done inside window (fractions at the edges)."""
    lo, hi = window
    done = 0.0
    for start, end in steps:
        if end <= start:
            continue
        overlap = min(hi, end) - max(lo, start)
        if overlap > 0:
            done += overlap / (end - start)
    return done


def alone_step_s(steps: Sequence[Step], windows: Sequence[Window]) -> float:
    """Median duration of the steps lying wholly inside an alone window."""
    inside = [end - start for start, end in steps
              if any(lo <= start and end <= hi for lo, hi in windows)]
    if not inside:
        raise ValueError("no complete training step inside the alone windows")
    return float(statistics.median(inside))


def summarize(steps: Sequence[Step], alone: Sequence[Window], shared: Sequence[Window],
              pause_cost_s: float | None) -> dict[str, float | None]:
    """Slowdown of training while the daemon evaluates, and the training time that costs per
    epoch (one evaluation per epoch) against pausing training for the same samples
    (pause_cost_s; None when it could not be measured).

    training_time_lost_per_epoch_s = shared window length - (steps done in it x alone step
    time): how much later the run finishes because one epoch's evaluation ran beside it.
    """
    step_alone = alone_step_s(steps, alone)
    lost, ratios, shared_steps = [], [], []
    for window in shared:
        length = window[1] - window[0]
        done = progress(steps, window)
        if done <= 0:
            raise ValueError("the trainer made no progress during an evaluation window")
        shared_steps.append(length / done)
        ratios.append(length / done / step_alone)
        lost.append(length - done * step_alone)
    lost_s = statistics.mean(lost)
    return {
        "trainer_step_s_alone": step_alone,
        "trainer_step_s_shared": statistics.mean(shared_steps),
        "trainer_slowdown": statistics.mean(ratios),
        "training_time_lost_per_epoch_s": lost_s,
        "pause_cost_s": pause_cost_s,
        "sharing_saves_s_per_epoch": None if pause_cost_s is None else pause_cost_s - lost_s,
        "shared_windows": float(len(shared)),
    }
