"""The rules a run is judged by, and the decisions they give: one source for both.

- `Rule`: one declarative criterion (metric, comparison, threshold, epoch, mode, action,
  on_missing). Its `__post_init__` is the only rule validation: the config's `[[criteria]]`
  entries are turned into Rules and its errors reported with the TOML line.
- `PLAN_RULES`: the default criteria, read from configs/default_criteria.toml.
- `METRICS`: the metric names a rule may use (`watcher.metrics.EpochAggregate`'s, the trainer's).
- `Decision`: one rule's judgement at one epoch, with its reason; `alert_kind` says which
  decisions alert (and how), `stops` which ones stop the trainer.
"""

from __future__ import annotations

import math
import operator
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from watcher.metrics import SAMPLE_METRIC_RANGES, SAMPLE_METRICS, EpochAggregate

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
# The words a rule and a decision are made of: each Literal is the one list, its tuple the
# runtime copy (validation, error messages).
Comparison = Literal[">=", ">", "<=", "<", "=="]
Mode = Literal["at", "by", "from", "oscillation", "candidate"]
Action = Literal["stop", "alert", "none", "mark"]
OnMissing = Literal["alert", "stop"]
# unmarked: a candidate rule whose mark was not reached (nothing wrong, nothing marked)
Outcome = Literal["pass", "fail", "pending", "marked", "unmarked", "cannot_judge"]
MODES: tuple[Mode, ...] = get_args(Mode)
ACTIONS: tuple[Action, ...] = get_args(Action)
ON_MISSING: tuple[OnMissing, ...] = get_args(OnMissing)
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
assert set(get_args(Comparison)) == set(COMPARISONS)
VALUE_DECIMALS = 9

# Training metrics (watcher.training.health.training_metrics): the trainer's own figures,
# judged by the daemon as they arrive (not at an epoch's evaluation) against the epoch in
# training. loss: kohya's average loss; loss_finite: 0 once a loss was NaN/inf, else 1;
# loss_rise: the loss over its running minimum; minutes_since_step: while the trainer lives.
TRAINING_METRIC_RANGES: dict[str, tuple[float, float | None]] = {
    "loss": (0.0, None), "loss_finite": (0.0, 1.0), "loss_rise": (0.0, None), "lr": (0.0, None),
    "steps_per_s": (0.0, None), "validation_loss": (0.0, None), "minutes_since_step": (0.0, None),
}
TRAINING_METRICS: tuple[str, ...] = tuple(TRAINING_METRIC_RANGES)
# The metric names a rule may use (an epoch's, declared in watcher.metrics.EpochAggregate, then
# the trainer's) and each one's possible values (low, high; None: unbounded): a threshold or
# target outside them can never be met or never fail.
METRICS: tuple[str, ...] = SAMPLE_METRICS + TRAINING_METRICS
METRIC_RANGES: dict[str, tuple[float, float | None]] = {**SAMPLE_METRIC_RANGES,
                                                        **TRAINING_METRIC_RANGES}
# A learned judge's metrics (watcher.clipjudge): advisory, so a rule may stop the trainer on
# one only when it says so itself (`learned_stop = true`).
LEARNED_METRICS = frozenset({"clip_score"})


def is_training_rule(rule: Rule) -> bool:
    """Judged over the trainer's figures (watcher.training.monitor), not an epoch's samples."""
    return rule.metric in TRAINING_METRICS


def range_problem(metric: str, value: float) -> str | None:
    """Why `value` can never be a value of `metric` (None when it can, or the metric is unknown)."""
    low, high = METRIC_RANGES.get(metric, (-math.inf, None))
    top = math.inf if high is None else high
    return None if low <= value <= top else f"{value:g} is outside {metric}'s range ({low:g}..{top:g})"


@dataclass(frozen=True)
class Rule:
    """One criterion: `metric comparison threshold`, judged per `mode` at `epoch`, then `action`.

    Example: Rule("green_background_by_epoch_4", "background_match_rate", ">=", 0.5, epoch=4,
    mode="by", action="stop") stops the trainer when fewer than half of the background
    prompts come out right at epoch 4 (or the first evaluated epoch after it).
    `on_missing` is what happens when the metric has no value once the rule is due: always an
    alert ("cannot_judge"), and with "stop" the trainer is stopped as on a failure.
    """

    name: str
    metric: str
    comparison: Comparison = ">="
    threshold: float = 0.0
    epoch: int | None = None
    mode: Mode = "by"
    action: Action = "alert"
    on_missing: OnMissing = "alert"
    learned_stop: bool = False  # the explicit opt-in for a stop rule on a LEARNED_METRICS metric

    def __post_init__(self) -> None:
        where = f"criterion {self.name!r}"
        if not self.name or not self.metric:
            raise ValueError(f"{where}: name and metric must be non-empty")
        if self.comparison not in COMPARISONS:
            raise ValueError(f"{where}: comparison must be one of {', '.join(COMPARISONS)}")
        if self.mode not in MODES:
            raise ValueError(f"{where}: mode must be one of {', '.join(MODES)}")
        if self.action not in ACTIONS:
            raise ValueError(f"{where}: action must be one of {', '.join(ACTIONS)}")
        if self.on_missing not in ON_MISSING:
            raise ValueError(f"{where}: on_missing must be one of {', '.join(ON_MISSING)}")
        if self.metric in LEARNED_METRICS and "stop" in (self.action, self.on_missing) \
                and self.learned_stop is not True:
            raise ValueError(f"{where}: {self.metric} is a learned judge's, advisory: it stops "
                             "nothing unless the rule sets learned_stop = true")
        if self.action == "mark" and self.mode != "candidate":
            raise ValueError(f"{where}: action 'mark' needs mode 'candidate'")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise ValueError(f"{where}: threshold must be a finite number")
        object.__setattr__(self, "threshold", float(self.threshold))
        if (problem := range_problem(self.metric, self.threshold)) is not None:
            raise ValueError(f"{where}: threshold {problem}: the rule could never be judged as meant")
        if self.epoch is not None and (isinstance(self.epoch, bool) or not isinstance(self.epoch, int)
                                       or self.epoch < 0):
            raise ValueError(f"{where}: epoch must be a whole number >= 0")
        if self.mode in ("at", "by", "from") and not self.epoch:
            raise ValueError(f"{where}: mode {self.mode!r} needs an epoch"
                             + ("" if self.epoch is None else " >= 1"))

    @classmethod
    def from_config(cls, obj: Any) -> Rule:
        """Build from a `[[criteria]]` entry: any object (or mapping) with the config's names."""
        def get(key: str, default: Any = None) -> Any:
            if isinstance(obj, Mapping):
                return obj.get(key, default)
            return getattr(obj, key, default)

        return cls(name=get("name"), metric=get("metric"), comparison=get("comparison", ">="),
                   threshold=get("threshold"), epoch=get("epoch"), mode=get("mode", "by"),
                   action=get("action", "alert"), on_missing=get("on_missing", "alert"),
                   learned_stop=bool(get("learned_stop", False)))

    @property
    def start(self) -> int:
        """The first epoch the rule is judged at (0: from the start)."""
        return self.epoch or 0

    def holds(self, value: float) -> bool:
        """The condition, with the value rounded to VALUE_DECIMALS places first."""
        return COMPARISONS[self.comparison](round(value, VALUE_DECIMALS), self.threshold)

    def describe(self) -> str:
        """`background_match_rate >= 0.5 by epoch 4`."""
        target = f"{self.metric} {self.comparison} {self.threshold:g}"
        if self.mode in ("at", "by", "from") and self.epoch:
            return f"{target} {self.mode} epoch {self.epoch}"
        if self.mode == "oscillation":
            return f"{target} stays so once reached" + (f" (from epoch {self.epoch})" if self.epoch else "")
        if self.mode == "candidate":
            return f"{target} marks a production candidate" + (f" (from epoch {self.epoch})" if self.epoch else "")
        return target


# The default criteria (a config without [[criteria]]): data in configs/, not code, so that
# no run's numbers live here. Read once, at import; a broken file is a broken install.
DEFAULT_CRITERIA_FILE = Path(__file__).resolve().parents[1] / "configs" / "default_criteria.toml"


def _default_rules(path: Path = DEFAULT_CRITERIA_FILE) -> tuple[Rule, ...]:
    try:
        entries = tomllib.loads(path.read_text(encoding="utf-8"))["criteria"]
        return tuple(Rule.from_config(e) for e in entries)
    except (OSError, KeyError, TypeError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise RuntimeError(f"{path}: cannot read the default criteria: {exc}") from None


PLAN_RULES: tuple[Rule, ...] = _default_rules()


def check_rules(rules: Iterable[Rule]) -> None:
    """Rule names key the stored decisions, so they must be unique."""
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"criterion {rule.name!r} is defined twice")
        seen.add(rule.name)


@dataclass(frozen=True)
class Decision:
    """One rule's judgement at one epoch, with the numbers behind it in `evidence`.

    `message` is the reason, one line (`green_background_by_epoch_4: background_match_rate
    0 < 0.5 at epoch 4 (needs ...) -> stop`); `evidence["reason"]` a machine-readable cause
    for pending and cannot_judge outcomes.
    """

    criterion: str
    metric: str
    value: float | None
    comparison: str
    threshold: float
    outcome: Outcome
    action: Action  # what to do now: the rule's action on fail / marked, on_missing on cannot_judge
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.action == "stop" and self.outcome in ("fail", "cannot_judge")

    @property
    def alerts(self) -> bool:
        return self.alert_kind is not None and not self.stops

    @property
    def marked(self) -> bool:
        return self.outcome == "marked"

    @property
    def alert_kind(self) -> str | None:
        """The alert this decision calls for (an alerts.ALERT_KINDS name), or None."""
        if self.outcome == "cannot_judge":
            return "cannot_judge"
        if self.outcome != "fail" or self.action not in ("stop", "alert"):
            return None
        if self.action == "stop":
            return "stop_decision"
        return "oscillation" if self.evidence.get("mode") == "oscillation" else "criterion_failed"

    def to_dict(self) -> dict[str, Any]:
        """The keys `Store.save_decision` and metrics.json's "decisions" use."""
        return {"criterion": self.criterion, "metric": self.metric, "value": self.value,
                "comparison": self.comparison, "threshold": self.threshold,
                "outcome": self.outcome, "action": self.action, "message": self.message,
                "evidence": dict(self.evidence)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        """Back from `to_dict` (metrics.json, the state database, Supabase rows)."""
        return cls(criterion=str(d["criterion"]), metric=str(d.get("metric") or ""),
                   value=None if d.get("value") is None else float(d["value"]),
                   comparison=str(d.get("comparison") or ""),
                   threshold=float(d.get("threshold") or 0.0), outcome=cast(Outcome, str(d["outcome"])),
                   action=cast(Action, str(d["action"])), message=str(d.get("message") or ""),
                   evidence=dict(d.get("evidence") or {}))


def decisions_from_dicts(items: Iterable[Mapping[str, Any]] | None) -> list[Decision]:
    """Stored decisions (dicts) back as Decisions."""
    return [Decision.from_dict(d) for d in items or []]


def decision_word(decisions: Iterable[Decision]) -> str:
    """One word for an epoch's decisions: stop | alert | continue."""
    if any(d.stops for d in decisions):
        return "stop"
    if any(d.alert_kind for d in decisions):
        return "alert"
    return "continue"


def metric_value(metrics: Mapping[str, Any] | EpochAggregate | None,
                 metric: str) -> tuple[float | None, str]:
    """(value, "") or (None, why it is missing). Bools and strings are not numbers."""
    if metrics is None:
        return None, "no evaluation"
    if metric not in metrics:
        return None, f"{metric} is not among the epoch's metrics"
    raw = metrics[metric]
    if raw is None:
        return None, f"{metric} has no value (null: nothing to measure it on)"
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        return None, f"{metric} is not a number ({type(raw).__name__})"
    if not math.isfinite(raw):
        return None, f"{metric} is not finite ({raw})"
    return float(raw), ""
