"""One logged scalar, and the tag names kohya's train_network.py logs under.

kohya (through accelerate's TensorBoard tracker) logs at each optimisation step, with the
global step as TensorBoard's step: `loss/current`, `loss/average` (its moving average, the
`avr_loss` of the progress bar), `lr/unet` and `lr/textencoder` (or `lr/group0`, `lr/group1`
... with several parameter groups); at the end of each epoch `loss/epoch_average` with the
epoch number as the step; with a validation set `loss/validation/step_average` and
`loss/validation/epoch_average` (epoch number as the step).

The trainer-log reader adds two tags of its own, for what only the log says:
`progress/total_steps` (the progress bar's total) and `epoch/start` (the epoch number, at the
global step it began).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

LOSS_CURRENT = "loss/current"
LOSS_AVERAGE = "loss/average"
LOSS_EPOCH = "loss/epoch_average"
VALIDATION_EPOCH = "loss/validation/epoch_average"
VALIDATION_STEP = "loss/validation/step_average"
LR_PREFIX = "lr/"
LR_PREFERRED = ("lr/unet", "lr/group0", "lr/group1", "lr/textencoder")
TOTAL_STEPS = "progress/total_steps"
EPOCH_START = "epoch/start"
# tags whose step is the epoch number, not the global step
EPOCH_TAGS = frozenset({LOSS_EPOCH, VALIDATION_EPOCH})


def wanted(tag: str) -> bool:
    """The tags epochwatch keeps (kohya also logs norms and d*lr; those are not kept)."""
    return (tag.startswith("loss/") or (tag.startswith(LR_PREFIX) and "d*lr" not in tag)
            or tag in (TOTAL_STEPS, EPOCH_START))


@dataclass(frozen=True)
class Point:
    """One scalar: `tag` at `step`, `value` (NaN and inf kept as they are), at `wall_time`
    (seconds on the source's clock: Unix time for TensorBoard, the progress bar's elapsed
    time for a log)."""

    tag: str
    step: int
    value: float
    wall_time: float

    @property
    def finite(self) -> bool:
        return math.isfinite(self.value)
