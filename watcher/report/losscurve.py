"""The trainer's loss for the report: `loss.png` beside curves.png, from the training figures
the daemon stored (`watcher.training.storage.load_series`): kohya's average loss by global
step (the per-step loss faint, the validation loss per epoch), each epoch's end dotted and
labelled, the epochs with a stop or alert decision flagged, and a NaN / infinite loss pointed
out. A run without training figures gets no loss.png (an old one is removed): never an empty
or made-up figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from watcher.training.figures import Series, epoch_ends, loss_series
from watcher.training.points import LOSS_CURRENT, VALIDATION_EPOCH

LOSS_PNG = "loss.png"
DECISION_COLOURS = {"stop": "#c62828", "alert": "#b26a00"}


def loss_figure(name: str, series: Series, decisions: Mapping[int, str]) -> Any | None:
    """The loss panel as a matplotlib Figure; None when the series has no loss."""
    losses = loss_series(series)
    if not losses:
        return None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="constrained")
    ax = fig.subplots()
    current = series.get(LOSS_CURRENT, ())
    if current and current is not losses:
        ax.plot([p.step for p in current if p.finite], [p.value for p in current if p.finite],
                color="#90a4ae", linewidth=0.8, alpha=0.6, label="loss/current (per step)")
    ax.plot([p.step for p in losses if p.finite], [p.value for p in losses if p.finite],
            color="#1565c0", linewidth=2.0, label=f"{losses[0].tag} (kohya's average)")
    ends = epoch_ends(series)
    end_step = {e.epoch: e.step for e in ends}
    validation = [(end_step[p.step], p.value) for p in series.get(VALIDATION_EPOCH, ())
                  if p.finite and p.step in end_step]
    if validation:
        ax.plot(*zip(*validation, strict=True), marker="o", linestyle="none", color="#2e7d32",
                markersize=7, label="validation loss (epoch)")
    for k, end in enumerate(ends):
        ax.axvline(end.step, color="#757575", linestyle=":", linewidth=1.0,
                   label="epoch end" if k == 0 else None)
        ax.annotate(f"e{end.epoch}", (end.step, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 3), textcoords="offset points", ha="center", fontsize=9,
                    color="#424242")
        word = decisions.get(end.epoch)
        if word in DECISION_COLOURS:
            ax.axvline(end.step, color=DECISION_COLOURS[word], linestyle="-.", linewidth=1.4,
                       label=f"{word} decision (epoch {end.epoch})")
    bad = next((p for p in (*current, *losses) if not p.finite), None)
    if bad is not None:
        ax.axvline(bad.step, color="#d81b60", linewidth=2.0,
                   label=f"loss {bad.value} from step {bad.step}")
    ax.set_title(f"{name}: training loss", loc="left", pad=16)
    ax.set_xlabel("global step")
    ax.set_ylabel("loss")
    ax.set_xlim(0, max(p.step for p in (*losses, *current)) * 1.01 or 1)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return fig
