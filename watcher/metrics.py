"""The epoch's numbers, declared once: `EpochAggregate`, one field per metric of
`evaluators.aggregate_epoch`, each with its range and the words and colour it is shown with.

Everything else derives from these fields: `watcher.rules.METRICS` and `METRIC_RANGES` (what
a rule may name, the load-time range check), the curves' labels, scales and colours
(`label`, `percent_scale`, `colour`). `to_dict()` gives the aggregate back key for key as
`aggregate_epoch` wrote it (metrics.json, the state database, Supabase read that dict), and
`from_dict()` reads any metrics.json ever written: a key an older evaluator did not write stays
absent, a key this code does not know is kept as it is.

To add a metric: produce it in `evaluators.aggregate_epoch` and declare it here, in the same
order (tests/test_metrics.py holds the two together).

Standard library only: `status` reads aggregates and must start fast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any


def _metric(low: float, high: float | None, label: str = "", *, percent: bool = False,
            colour: str = "", marker: str = "") -> Any:
    """A numeric metric field: its range (low, high; None: unbounded) and how it is drawn."""
    return field(default=None, metadata={"range": (low, high), "label": label,
                                         "percent": percent, "colour": colour, "marker": marker})


@dataclass(frozen=True)
class EpochAggregate:
    """One epoch's aggregate over its images; the field names are the metric names rules use."""

    background_match_rate: float | None = _metric(0.0, 1.0, "background match", percent=True,
                                                  colour="#2e7d32", marker="o")
    background_partly_rate: float | None = _metric(0.0, 1.0)
    color_accuracy: float | None = _metric(0.0, 100.0, "colour accuracy", percent=True,
                                           colour="#1565c0", marker="^")
    style_quality: float | None = _metric(0.0, 100.0, "style quality", percent=True,
                                          colour="#8e24aa", marker="s")
    # auto scores are 1 + 9 x (evaluators/score.py)
    visual_score: float | None = _metric(1.0, 10.0, colour="#ef6c00", marker="^")
    style_score: float | None = _metric(1.0, 10.0, colour="#8e24aa", marker="s")
    prompt_score: float | None = _metric(1.0, 10.0, colour="#00838f", marker="v")
    overall_score: float | None = _metric(1.0, 10.0, "overall score", colour="#212121", marker="o")
    unique_colors: float | None = _metric(0.0, None)
    background_hex: str | None = None
    issues: tuple[str, ...] = ()
    issue_counts: Mapping[str, int] = field(default_factory=dict)
    n_images: int | None = _metric(0.0, None)
    # CLIPScore 0-100 (watcher.clipjudge), only with [evaluation] clip_model: advisory
    clip_score: float | None = _metric(0.0, 100.0)
    # what from_dict met that is not declared above, and the keys it read in their order
    # (None: made here, every declared key): to_dict gives the dict back as it was read
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    read_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> EpochAggregate:
        data = data or {}
        known = {k: v for k, v in data.items() if k in _DECLARED}
        if isinstance(known.get("issues"), list):
            known["issues"] = tuple(known["issues"])
        return cls(**known, extra={k: v for k, v in data.items() if k not in _DECLARED},
                   read_keys=tuple(data))

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for name in self.read_keys if self.read_keys is not None else _DECLARED:
            value = self.get(name)
            out[name] = list(value) if name == "issues" else \
                dict(value) if name == "issue_counts" else value
        return out

    def get(self, name: str) -> Any:
        """A metric by name (None when it has none): for code that takes the name as data."""
        if name in _DECLARED:
            return getattr(self, name)
        return self.extra.get(name)

    def __contains__(self, name: object) -> bool:
        return name in (self.read_keys if self.read_keys is not None else _DECLARED)

    def __getitem__(self, name: str) -> Any:
        """Mapping access, so the rules' `metric_value` reads an aggregate as it reads a dict."""
        if name not in self:
            raise KeyError(name)
        return self.get(name)


_DECLARED: tuple[str, ...] = tuple(f.name for f in fields(EpochAggregate)
                                   if f.name not in ("extra", "read_keys"))
_NUMERIC = [f for f in fields(EpochAggregate) if "range" in f.metadata]

# the metric names a sample rule may compare with a threshold, in aggregate order
SAMPLE_METRICS: tuple[str, ...] = tuple(f.name for f in _NUMERIC)
SAMPLE_METRIC_RANGES: dict[str, tuple[float, float | None]] = {
    f.name: f.metadata["range"] for f in _NUMERIC}
# how the curves (curves.png, the served page) draw a metric
LABELS: dict[str, str] = {f.name: f.metadata["label"] for f in _NUMERIC if f.metadata["label"]}
COLOURS: dict[str, str] = {f.name: f.metadata["colour"] for f in _NUMERIC if f.metadata["colour"]}
MARKERS: dict[str, str] = {f.name: f.metadata["marker"] for f in _NUMERIC if f.metadata["marker"]}
# the rates drawn in % (a 0-1 rate x 100, a 0-100 figure as it is), in curve order
PERCENT_METRICS: tuple[str, ...] = tuple(f.name for f in _NUMERIC if f.metadata["percent"])


def percent_scale(metric: str) -> float:
    """What a PERCENT_METRICS value is multiplied by to read as a percentage."""
    high = SAMPLE_METRIC_RANGES[metric][1]
    return 100.0 if high == 1.0 else 1.0


# The metric that says whether the background came out right: an epoch is "green" when it is
# at least GREEN_RATE (the root-cause findings, the cross-run analysis, the grid picture).
BACKGROUND_METRIC = "background_match_rate"
