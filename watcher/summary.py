"""How an epoch's numbers are shown in one line: the one formatter for `status`, `replay`,
`demo`, `serve`, `evaluate` and the launcher (standard library only, so `status` stays light).

- `fmt`: one value, "-" when there is none.
- `table_header` / `metric_cells`: the epoch table's metric columns (bg match, colour, style,
  score), the same widths everywhere; `sep` is the gap between columns.
- `one_line_verdict`: `bg 0/4 right, colour 41.0, style 63.2, score 3.4/10 -> STOP (...)`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from watcher.metrics import BACKGROUND_METRIC, EpochAggregate

if TYPE_CHECKING:
    from watcher.rules import Decision

    # an epoch's numbers: its aggregate, or a dict of metrics (a line of `status --json`)
    Numbers = EpochAggregate | Mapping[str, Any]

# (aggregate key, column header, width, format) of the epoch table, left to right
EPOCH_COLUMNS: tuple[tuple[str, str, int, str], ...] = (
    (BACKGROUND_METRIC, "bg match", 8, ".2f"),
    ("color_accuracy", "colour", 6, ".1f"),
    ("style_quality", "style", 6, ".1f"),
    ("overall_score", "score", 5, ".1f"),
)


# the numbers an epoch is summed up by (the log line "evaluation finished", the table above)
SUMMARY_METRICS: tuple[str, ...] = tuple(key for key, _, _, _ in EPOCH_COLUMNS)


def fmt(value: Any, spec: str = ".1f") -> str:
    """`value` formatted by `spec`; "-" for a missing (or non-numeric) value."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return format(value, spec)


def cell(value: Any, float_spec: str) -> str:
    """A table cell: "-" for None, a float by `float_spec`, anything else as its text."""
    if value is None:
        return "-"
    return format(value, float_spec) if isinstance(value, float) else str(value)


def table_header(sep: str = "  ") -> str:
    return sep.join(f"{header:>{width}}" for _, header, width, _ in EPOCH_COLUMNS)


def metric_cells(metrics: Numbers, sep: str = "  ") -> str:
    return sep.join(f"{fmt(metrics.get(key), spec):>{width}}" for key, _, width, spec in EPOCH_COLUMNS)


def one_line_verdict(aggregate: Numbers, decisions: Sequence[Decision]) -> str:
    """`bg 0/4 right, colour 41.0, style 63.2, score 3.4/10 -> STOP (green_background_by_epoch_4)`."""
    parts = []
    rate = aggregate.get(BACKGROUND_METRIC)
    n = aggregate.get("n_images") or 0
    if rate is not None:
        parts.append(f"bg {round(rate * n)}/{n} right")
    if aggregate.get("color_accuracy") is not None:
        parts.append(f"colour {aggregate['color_accuracy']:.1f}")
    if aggregate.get("style_quality") is not None:
        parts.append(f"style {aggregate['style_quality']:.1f}")
    if aggregate.get("overall_score") is not None:
        parts.append(f"score {aggregate['overall_score']:.1f}/10")
    stops = [d.criterion for d in decisions if d.stops]
    alerts = [d.criterion for d in decisions if d.alerts]
    marks = [d.criterion for d in decisions if d.marked]
    if stops:
        tail = f"STOP ({', '.join(stops)})"
    elif alerts:
        tail = f"continue, alert ({', '.join(alerts)})"
    else:
        tail = "continue"
    if marks:
        tail += " [production candidate]"
    return ", ".join(parts) + " -> " + tail
