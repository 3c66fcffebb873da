"""A run's epoch history as the reports and analyses read it, from a state store or a
baseline file: parameters, per-epoch aggregate metrics, reviews, decisions, sample paths.

Standard library only: loading a history is cheap and never imports numpy or matplotlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.epoch.decide import EpochRecord
from watcher.metrics import BACKGROUND_METRIC, PERCENT_METRICS
from watcher.rules import Decision, Rule
from watcher.store import Store

# An epoch counts as "green" (right background) when most background prompts come out
# right: the root-cause findings and the cross-run analysis use this one definition.
GREEN_RATE = 0.5
# The plan's scores and metrics, in the order the report shows them.
SCORE_METRICS = ("visual_score", "style_score", "prompt_score", "overall_score")
RATE_METRICS = PERCENT_METRICS


def number(value: Any) -> float | None:
    """A finite float, or None for missing / null / NaN / bool / text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


@dataclass
class RunHistory:
    """One training run: what was tried (params) and what came out, epoch by epoch."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)  # epoch -> aggregate
    kind: str = "store"  # store | baseline
    source: str = ""
    status: str | None = None
    notes: str = ""
    reviews: dict[int, dict[str, Any]] = field(default_factory=dict)  # the latest of each epoch
    review_history: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # all, oldest first
    images: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    result_dirs: dict[int, Path] = field(default_factory=dict)
    decisions: dict[int, list[Decision]] = field(default_factory=dict)
    max_epochs_known: int | None = None  # baselines: how many epochs the run had
    stated_outcomes: dict[str, Any] = field(default_factory=dict)  # baselines: the plan's words
    rules: list[Rule] | None = None  # what its daemon judged it by (None: not recorded)
    partial_at_least: float | None = None  # its plan's line between failure and partial

    @property
    def evaluated(self) -> list[int]:
        return sorted(self.epochs)

    @property
    def max_epochs(self) -> int | None:
        planned = number(self.flat_params().get("max_train_epochs"))
        if planned is not None:
            return int(planned)
        return self.max_epochs_known

    def value(self, epoch: int, metric: str) -> float | None:
        return number(self.epochs.get(epoch, {}).get(metric))

    def series(self, metric: str) -> dict[int, float]:
        """epoch -> value for the epochs that have a number for `metric`."""
        out = {}
        for e in self.evaluated:
            v = self.value(e, metric)
            if v is not None:
                out[e] = v
        return out

    def flat_params(self) -> dict[str, Any]:
        """The plan's grouped parameters flattened: {"network_dim": 32, "keep_tokens": 3, ...}."""
        flat: dict[str, Any] = {}
        for key, value in self.params.items():
            if key == "run_name":
                continue
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        return flat

    def green(self) -> dict[int, bool]:
        """epoch -> background right (rate >= GREEN_RATE), for epochs with a rate."""
        return {e: v >= GREEN_RATE for e, v in self.series(BACKGROUND_METRIC).items()}

    def first_green(self) -> int | None:
        return next((e for e, ok in self.green().items() if ok), None)

    def best(self) -> tuple[int | None, float | None]:
        """(epoch, overall_score) of the best epoch; the earliest wins a tie."""
        scores = self.series("overall_score")
        if not scores:
            return None, None
        epoch = max(scores, key=lambda e: (scores[e], -e))
        return epoch, scores[epoch]

    def records(self) -> list[EpochRecord]:
        """The epochs as `watcher.epoch.decide.EpochRecord`s."""

        return [EpochRecord(epoch=e, metrics=m) for e, m in sorted(self.epochs.items())]


def load_run(store: Store, name: str) -> RunHistory:
    """One run from a state store; the latest evaluation of an epoch wins."""
    row = store.run_row(name)
    history = RunHistory(name=name, params=row.params if row else {}, kind="store",
                         source=str(store.path), status=row.status if row else None)
    judged = store.judged_by(name)
    if judged is not None:
        history.rules, history.partial_at_least = judged
    for ev in store.evaluations(name):
        history.epochs[ev.epoch] = ev.aggregate.to_dict()
        history.images[ev.epoch] = list(ev.metrics.get("images") or [])
        history.result_dirs[ev.epoch] = Path(ev.result_dir)
    for d in store.decisions(name):
        history.decisions.setdefault(d.epoch, []).append(d.decision)
    for r in store.reviews(name):
        history.reviews[r.epoch] = {"visual": r.visual, "style": r.style, "prompt": r.prompt,
                                    "notes": r.notes}
    for r in store.review_history(name):
        history.review_history.setdefault(r.epoch, []).append(
            {"visual": r.visual, "style": r.style, "prompt": r.prompt, "notes": r.notes,
             "created_at": r.created_at})
    return history


def run_names(store: Store) -> list[str]:
    return [r[0] for r in store.conn.execute("SELECT name FROM runs ORDER BY created_at, name")]


def load_store(path: Path) -> list[RunHistory]:
    """Every run in one state database (which must exist: opening would create it)."""
    if not path.is_file():
        raise FileNotFoundError(f"no state database at {path}")
    with Store(path) as store:
        return [load_run(store, name) for name in run_names(store)]
