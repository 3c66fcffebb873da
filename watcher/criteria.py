"""Decision rules: declarative criteria judged on the metric series of the evaluated epochs.

A `Rule` is plain data (metric, comparison, threshold, epoch, mode, action), in the spirit of
Lightning's EarlyStopping. `decide(rules, history, epoch)` turns the rules and the epochs
evaluated so far into one `Decision` per rule that has something to say at that epoch.

Comparison: the value is rounded to 9 decimal places, then compared with the threshold using
the rule's operator, so the boundary is exact: `>= 0.5` passes at 0.5, `> 0.5` fails at 0.5,
and float noise such as 8.4999999999 counts as 8.5.

Modes (E = the rule's epoch; None or 0 means "from the first epoch"):
- `at E`: judged at epoch E only. If epoch E was never evaluated (save_every_n_epochs > 1),
  the first evaluated epoch after E gets one "pending" decision saying so.
- `by E`: judged once, at the first evaluated epoch >= E that has a value for the metric, on
  that epoch's value. Earlier epochs get "pending"; later epochs get nothing, so a stop fires
  once. With saves every 2 epochs, "by 5" is judged at epoch 6.
- `from E`: judged at every evaluated epoch >= E.
- `oscillation`: fails when the condition held at an earlier evaluated epoch and does not
  hold now (green, then wrong again); passes while it still holds; "pending" before it is
  first reached.
- `candidate`: outcome "marked" at each epoch where the condition holds (a production
  candidate), "pass" otherwise.

Outcomes: pass | fail | pending | marked. `Decision.action` is the action to take now: the
rule's action on "fail" (and on "marked"), "none" otherwise. A missing, null, NaN or
non-numeric metric gives "pending" with a message naming the metric, never an exception.
`decide` only looks at records with epoch <= the epoch asked about (the latest record of an
epoch wins), so asking again about an old epoch gives the same decisions.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!="}
MODES = ("at", "by", "from", "oscillation", "candidate")
ACTIONS = ("stop", "alert", "none", "mark")
VALUE_DECIMALS = 9
QUALITY_METRIC = "overall_score"
PARTIAL_QUALITY = 7.0  # the plan: 7-7.9/10 is a partial success, below 7 a failure


@dataclass(frozen=True)
class Rule:
    """One criterion: `metric comparison threshold`, judged per `mode` at `epoch`, then `action`.

    Example: Rule("green_background_by_epoch_4", "background_match_rate", ">=", 0.5, epoch=4,
    mode="by", action="stop") stops the trainer when fewer than half of the background
    prompts come out right at epoch 4 (or the first evaluated epoch after it).
    """

    name: str
    metric: str
    comparison: str
    threshold: float
    epoch: int | None = None
    mode: str = "by"
    action: str = "alert"

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
        if self.action == "mark" and self.mode != "candidate":
            raise ValueError(f"{where}: action 'mark' needs mode 'candidate'")
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float)) \
                or not math.isfinite(self.threshold):
            raise ValueError(f"{where}: threshold must be a finite number")
        object.__setattr__(self, "threshold", float(self.threshold))
        if self.epoch is not None and (isinstance(self.epoch, bool) or not isinstance(self.epoch, int)
                                       or self.epoch < 0):
            raise ValueError(f"{where}: epoch must be a whole number >= 0")
        if self.mode in ("at", "by") and not self.epoch:
            raise ValueError(f"{where}: mode {self.mode!r} needs an epoch >= 1")

    @classmethod
    def from_config(cls, obj: Any) -> Rule:
        """Build from a `[[criteria]]` entry: any object (or mapping) with the config's names."""
        def get(key: str, default: Any = None) -> Any:
            if isinstance(obj, Mapping):
                return obj.get(key, default)
            return getattr(obj, key, default)

        return cls(name=get("name"), metric=get("metric"), comparison=get("comparison", ">="),
                   threshold=get("threshold"), epoch=get("epoch"), mode=get("mode", "by"),
                   action=get("action", "alert"))

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


# The plan's decision points (docs/NEXT_TRAINING_RUN_PLAN.md), used when the config has none.
PLAN_RULES: tuple[Rule, ...] = (
    Rule("green_background_by_epoch_4", "background_match_rate", ">=", 0.5, epoch=4,
         mode="by", action="stop"),
    Rule("background_oscillation", "background_match_rate", ">=", 0.5, mode="oscillation",
         action="alert"),
    Rule("quality_8_by_epoch_7", "overall_score", ">=", 8.0, epoch=7, mode="by", action="alert"),
    Rule("color_accuracy_80_by_epoch_5", "color_accuracy", ">=", 80.0, epoch=5, mode="by",
         action="alert"),
    Rule("production_candidate", "overall_score", ">=", 8.5, mode="candidate", action="mark"),
)


@dataclass(frozen=True)
class EpochRecord:
    """One evaluated epoch: its number and the `aggregate` dict of its metrics.json."""

    epoch: int
    metrics: Mapping[str, Any]


@dataclass(frozen=True)
class Decision:
    """One rule's judgement at one epoch, with the numbers behind it in `evidence`."""

    criterion: str
    metric: str
    value: float | None
    comparison: str
    threshold: float
    outcome: str  # pass | fail | pending | marked
    action: str  # what to do now: the rule's action on fail / marked, else "none"
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def stops(self) -> bool:
        return self.outcome == "fail" and self.action == "stop"

    @property
    def alerts(self) -> bool:
        return self.outcome == "fail" and self.action == "alert"

    @property
    def marked(self) -> bool:
        return self.outcome == "marked"

    def to_dict(self) -> dict[str, Any]:
        """The keys `Store.save_decision` and metrics.json's "decisions" use."""
        return {"criterion": self.criterion, "metric": self.metric, "value": self.value,
                "comparison": self.comparison, "threshold": self.threshold,
                "outcome": self.outcome, "action": self.action, "message": self.message,
                "evidence": dict(self.evidence)}


def metric_value(metrics: Mapping[str, Any] | None, metric: str) -> tuple[float | None, str]:
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


def _epochs(history: Iterable[EpochRecord], upto: int) -> dict[int, Mapping[str, Any]]:
    """epoch -> metrics for epochs <= upto, in epoch order; a later record of an epoch wins."""
    latest: dict[int, Mapping[str, Any]] = {}
    for record in history:
        if record.epoch <= upto:
            latest[record.epoch] = record.metrics
    return dict(sorted(latest.items()))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


class _Judge:
    """Judges one rule at one epoch over the series of epochs <= that epoch."""

    def __init__(self, rule: Rule, epochs: dict[int, Mapping[str, Any]], epoch: int) -> None:
        self.rule, self.epoch = rule, epoch
        self.series = {e: metric_value(m, rule.metric)[0] for e, m in epochs.items()}
        self.value, self.missing = metric_value(epochs.get(epoch), rule.metric)
        if epoch not in epochs:
            self.missing = f"epoch {epoch} has no evaluation"

    def decision(self, outcome: str, message: str, **evidence: Any) -> Decision:
        rule = self.rule
        action = rule.action if outcome in ("fail", "marked") else "none"
        full = {"epoch": self.epoch, "mode": rule.mode, "rule_epoch": rule.epoch,
                "rule_action": rule.action,
                "series": [[e, v] for e, v in self.series.items()], **evidence}
        text = f"{rule.name}: {message}" + (f" -> {action}" if action != "none" else "")
        return Decision(rule.name, rule.metric, self.value, rule.comparison, rule.threshold,
                        outcome, action, text, full)

    def now(self) -> str:
        """`background_match_rate 0.25 < 0.5 at epoch 4`."""
        assert self.value is not None
        sign = self.rule.comparison if self.rule.holds(self.value) else NEGATED[self.rule.comparison]
        return f"{self.rule.metric} {_fmt(self.value)} {sign} {self.rule.threshold:g} at epoch {self.epoch}"

    def pending(self, why: str, reason: str) -> Decision:
        return self.decision("pending", f"{why} ({self.rule.describe()})", reason=reason)

    def judged(self, pass_outcome: str = "pass", **evidence: Any) -> Decision:
        assert self.value is not None
        ok = self.rule.holds(self.value)
        return self.decision(pass_outcome if ok else "fail",
                             f"{self.now()} (needs {self.rule.describe()})", **evidence)

    def run(self) -> Decision | None:
        rule = self.rule
        if self.epoch < rule.start:
            shown = f"now {_fmt(self.value)}" if self.value is not None else self.missing
            return self.pending(f"not judged before epoch {rule.start}; {shown}", "before_epoch")
        return getattr(self, f"_{rule.mode}")()

    def _missing(self, note: str = "") -> Decision:
        return self.pending(f"{self.missing}{note}", "missing_metric")

    def _at(self) -> Decision | None:
        target = self.rule.start
        if self.epoch == target:
            return self._missing("; this rule is judged at this epoch only") \
                if self.value is None else self.judged(judged_at=target)
        earlier_after = [e for e in self.series if target < e < self.epoch]
        if target not in self.series and not earlier_after:
            return self.pending(f"epoch {target} was not evaluated, so this rule was never "
                                "judged (use mode 'by' with save_every_n_epochs > 1)", "epoch_skipped")
        return None

    def _by(self) -> Decision | None:
        done = [e for e, v in self.series.items() if e >= self.rule.start and v is not None]
        if done and done[0] < self.epoch:
            return None  # judged already, at done[0]: a stop fires once
        if self.value is None:
            return self._missing("; judged at the next evaluated epoch that has it")
        return self.judged(judged_at=self.epoch)

    def _from(self) -> Decision:
        return self._missing() if self.value is None else self.judged()

    def _oscillation(self) -> Decision:
        if self.value is None:
            return self._missing()
        reached = [e for e, v in self.series.items()
                   if e < self.epoch and v is not None and self.rule.holds(v)]
        holds = self.rule.holds(self.value)
        if not reached:
            if holds:
                return self.decision("pass", f"{self.now()}: reached", reached_at=[self.epoch])
            return self.pending(f"not reached yet: {self.now()}", "not_reached")
        if holds:
            return self.decision("pass", f"{self.now()}: stable since epoch {reached[0]}",
                                 reached_at=reached)
        epochs = ", ".join(map(str, reached))
        return self.decision("fail", f"oscillation: held at epoch(s) {epochs}, now {self.now()}",
                             reached_at=reached)

    def _candidate(self) -> Decision:
        if self.value is None:
            return self._missing()
        if self.rule.holds(self.value):
            return self.decision("marked", f"production candidate: {self.now()}")
        return self.decision("pass", f"not a production candidate: {self.now()}")


def check_rules(rules: Sequence[Rule]) -> None:
    """Rule names key the stored decisions, so they must be unique."""
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ValueError(f"criterion {rule.name!r} is defined twice")
        seen.add(rule.name)


def decide(rules: Sequence[Rule], history: Iterable[EpochRecord], epoch: int) -> list[Decision]:
    """The decisions at `epoch`, in rule order, from the evaluated epochs in `history`.

    Deterministic: only records with epoch <= `epoch` count, so a repeated call (after a
    restart, or once later epochs exist) returns equal decisions. Rules with nothing to say
    at this epoch (a `by`/`at` rule judged earlier) give no decision.
    """
    check_rules(rules)
    epochs = _epochs(history, epoch)
    decisions = (_Judge(rule, epochs, epoch).run() for rule in rules)
    return [d for d in decisions if d is not None]


def decide_all(rules: Sequence[Rule], history: Iterable[EpochRecord]) -> dict[int, list[Decision]]:
    """decide() at every evaluated epoch, in order."""
    records = list(history)
    return {e: decide(rules, records, e) for e in sorted({r.epoch for r in records})}


def verdict(rules: Sequence[Rule], history: Iterable[EpochRecord]) -> dict[str, Any]:
    """The run so far against the plan's decision points.

    - "success": overall_score reached the quality target (the threshold of the first
      `overall_score` rule of mode at/by/from, else 8) at some epoch, every stop rule passed,
      and no oscillation rule failed;
    - "failure": a stop rule failed, a stop rule's metric never met its condition, or the
      best overall_score is below 7;
    - "partial": anything else with a best overall_score of 7 or more (7-7.9, or 8+ with a
      late or unstable background);
    - "pending": nothing evaluated, no overall_score yet, or a stop rule not judged yet.
    Also: best epoch (highest overall_score, the earliest on ties) and production candidates.
    """
    records = list(history)
    per_epoch = decide_all(rules, records)
    epochs = _epochs(records, max(per_epoch, default=0))
    scores = {e: v for e, m in epochs.items() if (v := metric_value(m, QUALITY_METRIC)[0]) is not None}
    best_epoch = max(scores, key=lambda e: (scores[e], -e)) if scores else None
    target = next((r.threshold for r in rules if r.metric == QUALITY_METRIC
                   and r.mode in ("at", "by", "from") and r.comparison in (">=", ">")), 8.0)

    def made(outcomes: set[str], modes: set[str]) -> list[dict[str, Any]]:
        return [{"criterion": d.criterion, "epoch": e, "value": d.value, "message": d.message}
                for e, ds in per_epoch.items() for d in ds
                if d.outcome in outcomes and next(r.mode for r in rules if r.name == d.criterion) in modes]

    stop_rules = [r for r in rules if r.action == "stop"]
    stop_names = {r.name for r in stop_rules}
    stop_judged = {(d.criterion, e): d for e, ds in per_epoch.items() for d in ds
                   if d.criterion in stop_names and d.outcome in ("pass", "fail")}
    stop_failures = [{"criterion": d.criterion, "epoch": e, "value": d.value, "message": d.message}
                     for (_, e), d in sorted(stop_judged.items(), key=lambda kv: kv[0][1])
                     if d.outcome == "fail"]
    unjudged = [r.name for r in stop_rules if r.mode in ("at", "by")
                and not any(name == r.name for name, _ in stop_judged)]
    never_met = [r.name for r in stop_rules
                 if not any(v is not None and r.holds(v)
                            for v in (metric_value(m, r.metric)[0] for m in epochs.values()))]
    oscillations = made({"fail"}, {"oscillation"})
    candidates = [{"epoch": c["epoch"], "value": c["value"], "criterion": c["criterion"]}
                  for c in made({"marked"}, {"candidate"})]

    best = scores.get(best_epoch) if best_epoch is not None else None
    reasons = [f["message"] for f in stop_failures]
    if not unjudged:
        failed = {f["criterion"] for f in stop_failures}
        reasons += [f"{name}: condition never met" for name in never_met if name not in failed]
    if reasons:
        outcome = "failure"
    elif not epochs or best is None or unjudged:
        outcome = "pending"
        reasons.append("nothing evaluated yet" if not epochs else
                       f"not judged yet: {', '.join(unjudged)}" if unjudged else
                       f"no {QUALITY_METRIC} yet")
    elif best < PARTIAL_QUALITY:
        outcome = "failure"
        reasons.append(f"best {QUALITY_METRIC} {best:g} < {PARTIAL_QUALITY:g}")
    else:
        if best < target:
            reasons.append(f"best {QUALITY_METRIC} {best:g} < target {target:g}")
        reasons += [o["message"] for o in oscillations]
        outcome = "partial" if reasons else "success"
        if outcome == "success":
            reasons.append(f"best {QUALITY_METRIC} {best:g} >= {target:g} at epoch {best_epoch}; "
                           "stop rules passed; no oscillation")
    return {"verdict": outcome, "reasons": reasons, "best_epoch": best_epoch, "best_score": best,
            "quality_target": target, "epochs": list(epochs), "candidates": candidates,
            "stop_failures": stop_failures, "oscillations": oscillations}
