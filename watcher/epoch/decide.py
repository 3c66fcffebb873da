"""The decide stage: the rules (`watcher.rules`) judged on the metric series of the epochs.

A `Rule` is plain data (metric, comparison, threshold, epoch, mode, action, on_missing), in
the spirit of Lightning's EarlyStopping. `decide(rules, history, epoch)` turns the rules and the epochs
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

Outcomes: pass | fail | pending | marked | cannot_judge. `Decision.action` is the action to
take now: the rule's action on "fail" (and on "marked"), its `on_missing` on "cannot_judge",
"none" otherwise. A missing, null, NaN or non-numeric metric once the rule is due (at or after
its epoch) gives "cannot_judge" with a message naming the metric and why, never an exception
and never a silent "pending": it always alerts, and `on_missing = "stop"` also stops. A "by"
rule is judged at the next evaluated epoch that has the value.
`decide` only looks at records with epoch <= the epoch asked about (the latest record of an
epoch wins), so asking again about an old epoch gives the same decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from watcher.metrics import EpochAggregate
from watcher.rules import (
    NEGATED,
    PLAN_RULES,
    Decision,
    Outcome,
    Rule,
    check_rules,
    is_training_rule,
    metric_value,
)

__all__ = ["PLAN_RULES", "Decision", "EpochRecord", "Rule", "Verdict", "decide", "decide_all",
           "decide_epoch", "quality_rule", "verdict"]

QUALITY_METRIC = "overall_score"


# an epoch's numbers as the rules read them: its aggregate, or a baseline's dict of metrics
EpochNumbers = EpochAggregate | Mapping[str, Any]
VerdictWord = Literal["success", "partial", "failure", "pending"]


@dataclass(frozen=True)
class EpochRecord:
    """One evaluated epoch: its number and its aggregate (a baseline's: a dict of metrics)."""

    epoch: int
    metrics: EpochNumbers


@dataclass(frozen=True)
class Verdict:
    """The run so far against its rules (`verdict`); `to_dict()` is the JSON form."""

    verdict: VerdictWord
    reasons: list[str]
    best_epoch: int | None = None
    best_score: float | None = None
    quality_target: float | None = None
    partial_at_least: float | None = None
    epochs: list[int] = field(default_factory=list)
    # {"epoch", "value", "criterion"} / {"criterion", "epoch", "value", "message"} each
    candidates: list[dict[str, Any]] = field(default_factory=list)
    stop_failures: list[dict[str, Any]] = field(default_factory=list)
    oscillations: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _epochs(history: Iterable[EpochRecord], upto: int) -> dict[int, EpochNumbers]:
    """epoch -> metrics for epochs <= upto, in epoch order; a later record of an epoch wins."""
    latest: dict[int, EpochNumbers] = {}
    for record in history:
        if record.epoch <= upto:
            latest[record.epoch] = record.metrics
    return dict(sorted(latest.items()))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:g}"


class _Judge:
    """Judges one rule at one epoch over the series of epochs <= that epoch."""

    def __init__(self, rule: Rule, epochs: dict[int, EpochNumbers], epoch: int) -> None:
        self.rule, self.epoch = rule, epoch
        self.series = {e: metric_value(m, rule.metric)[0] for e, m in epochs.items()}
        self.value, self.missing = metric_value(epochs.get(epoch), rule.metric)
        if epoch not in epochs:
            self.missing = f"epoch {epoch} has no evaluation"

    def decision(self, outcome: Outcome, message: str, **evidence: Any) -> Decision:
        rule = self.rule
        action = rule.action if outcome in ("fail", "marked") else "none"
        if outcome == "cannot_judge":
            action = rule.on_missing
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

    def judged(self, pass_outcome: Outcome = "pass", **evidence: Any) -> Decision:
        assert self.value is not None
        ok = self.rule.holds(self.value)
        return self.decision(pass_outcome if ok else "fail",
                             f"{self.now()} (needs {self.rule.describe()})", **evidence)

    def run(self) -> Decision | None:
        rule = self.rule
        if self.epoch < rule.start:
            shown = f"now {_fmt(self.value)}" if self.value is not None else self.missing
            return self.pending(f"not judged before epoch {rule.start}; {shown}", "before_epoch")
        judge: Callable[[], Decision | None] = getattr(self, f"_{rule.mode}")
        return judge()

    def _missing(self, note: str = "") -> Decision:
        """The rule is due and its metric has no value: say so, and why, out loud."""
        return self.decision("cannot_judge", f"cannot judge: {self.missing}{note} "
                             f"({self.rule.describe()})", reason="missing_metric")

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
            # "stable since" the start of the current unbroken stretch, naming any relapse
            relapses = sorted(e for e, v in self.series.items()
                              if reached[0] < e < self.epoch and v is not None and not self.rule.holds(v))
            since = min((e for e in reached if not relapses or e > relapses[-1]), default=self.epoch)
            note = f" (after a relapse at epoch(s) {', '.join(map(str, relapses))})" if relapses else ""
            return self.decision("pass", f"{self.now()}: stable since epoch {since}{note}",
                                 reached_at=reached)
        epochs = ", ".join(map(str, reached))
        return self.decision("fail", f"oscillation: held at epoch(s) {epochs}, now {self.now()}",
                             reached_at=reached)

    def _candidate(self) -> Decision:
        if self.value is None:
            return self._missing()
        if self.rule.holds(self.value):
            return self.decision("marked", f"production candidate: {self.now()}")
        # not "pass": a pass next to "not a candidate" read as a contradiction
        return self.decision("unmarked", f"below the production-candidate mark: {self.now()}")


def decide(rules: Sequence[Rule], history: Iterable[EpochRecord], epoch: int, *,
           training: bool = False) -> list[Decision]:
    """The decisions at `epoch`, in rule order, from the evaluated epochs in `history`.

    Deterministic: only records with epoch <= `epoch` count, so a repeated call (after a
    restart, or once later epochs exist) returns equal decisions. Rules with nothing to say
    at this epoch (a `by`/`at` rule judged earlier) give no decision. Rules over training
    metrics are judged only with `training=True` (watcher.training.monitor), the others
    only without it.
    """
    check_rules(rules)
    epochs = _epochs(history, epoch)
    decisions = (_Judge(rule, epochs, epoch).run() for rule in rules
                 if is_training_rule(rule) == training)
    return [d for d in decisions if d is not None]


def decide_epoch(rules: Sequence[Rule], history: Iterable[EpochRecord], epoch: int,
                 aggregate: EpochAggregate) -> list[Decision]:
    """The decide stage: `epoch`'s decisions, its `aggregate` joined to the earlier epochs'
    (`history`, without this evaluation)."""
    return decide(rules, [*history, EpochRecord(epoch=epoch, metrics=aggregate)], epoch)


def decide_all(rules: Sequence[Rule], history: Iterable[EpochRecord]) -> dict[int, list[Decision]]:
    """decide() at every evaluated epoch, in order."""
    records = list(history)
    return {e: decide(rules, records, e) for e in sorted({r.epoch for r in records})}


def quality_rule(rules: Sequence[Rule]) -> Rule | None:
    """The rule whose threshold is the run's quality target: the first `overall_score` rule
    of mode at/by/from that asks for a value at or above its threshold."""
    return next((r for r in rules if r.metric == QUALITY_METRIC
                 and r.mode in ("at", "by", "from") and r.comparison in (">=", ">")), None)


def verdict(rules: Sequence[Rule], history: Iterable[EpochRecord], *,
            partial_at_least: float | None = None) -> Verdict:
    """The run so far against its rules and its plan's `partial_at_least` (watcher.plan).

    - "success": overall_score reached the quality target (the threshold of `quality_rule`)
      at some epoch, every stop rule passed, and no oscillation rule failed;
    - "failure": a stop rule failed, a stop rule's metric never met its condition, or the
      best overall_score is below `partial_at_least`;
    - "partial": anything else with a best overall_score of `partial_at_least` or more (below
      the target, or on target with a late or unstable background);
    - "pending": nothing evaluated, a stop rule not judged yet, no overall_score yet while a
      target or `partial_at_least` needs one, or nothing to judge the run by at all.
    No number is made up: without a quality rule the quality is not judged (the verdict
    rests on the stop and oscillation rules), and without `partial_at_least` a best score
    below the target makes the run partial, never a failure; the reasons say which.
    Also: best epoch (highest overall_score, the earliest on ties) and production candidates.
    """
    rules = [r for r in rules if not is_training_rule(r)]  # the samples' verdict only
    records = list(history)
    per_epoch = decide_all(rules, records)
    epochs = _epochs(records, max(per_epoch, default=0))
    scores = {e: v for e, m in epochs.items() if (v := metric_value(m, QUALITY_METRIC)[0]) is not None}
    best_epoch = max(scores, key=lambda e: (scores[e], -e)) if scores else None
    quality = quality_rule(rules)
    target = quality.threshold if quality is not None else None

    def made(outcomes: set[str], modes: set[str]) -> list[dict[str, Any]]:
        return [{"criterion": d.criterion, "epoch": e, "value": d.value, "message": d.message}
                for e, ds in per_epoch.items() for d in ds
                if d.outcome in outcomes and next(r.mode for r in rules if r.name == d.criterion) in modes]

    stop_rules = [r for r in rules if r.action == "stop"]
    stop_names = {r.name for r in stop_rules}
    stop_judged = {(d.criterion, e): d for e, ds in per_epoch.items() for d in ds
                   if d.criterion in stop_names and (d.outcome in ("pass", "fail") or d.stops)}
    stop_failures: list[dict[str, Any]] = [
        {"criterion": d.criterion, "epoch": e, "value": d.value, "message": d.message}
        for (_, e), d in sorted(stop_judged.items(), key=lambda kv: kv[0][1])
        if d.outcome == "fail" or d.stops]
    unjudged = [r.name for r in stop_rules if r.mode in ("at", "by")
                and not any(name == r.name for name, _ in stop_judged)]
    never_met = [r.name for r in stop_rules
                 if not any(v is not None and r.holds(v)
                            for v in (metric_value(m, r.metric)[0] for m in epochs.values()))]
    oscillations = made({"fail"}, {"oscillation"})
    candidates = [{"epoch": c["epoch"], "value": c["value"], "criterion": c["criterion"]}
                  for c in made({"marked"}, {"candidate"})]

    best = scores.get(best_epoch) if best_epoch is not None else None
    reasons: list[str] = [f["message"] for f in stop_failures]
    if not unjudged:
        failed = {f["criterion"] for f in stop_failures}
        reasons += [f"{name}: condition never met" for name in never_met if name not in failed]
    judged_by = bool(stop_rules or target is not None or partial_at_least is not None
                     or any(r.mode == "oscillation" for r in rules))
    outcome: VerdictWord
    if reasons:
        outcome = "failure"
    elif not epochs or unjudged or not judged_by or (
            best is None and (target is not None or partial_at_least is not None)):
        outcome = "pending"
        reasons.append("nothing evaluated yet" if not epochs else
                       f"not judged yet: {', '.join(unjudged)}" if unjudged else
                       "nothing to judge the run by: no stop rule, no oscillation rule and "
                       f"no {QUALITY_METRIC} target" if not judged_by else
                       f"no {QUALITY_METRIC} yet")
    elif best is not None and partial_at_least is not None and best < partial_at_least:
        outcome = "failure"
        reasons.append(f"best {QUALITY_METRIC} {best:g} < {partial_at_least:g}")
    else:
        if best is not None and target is not None and best < target:
            reasons.append(f"best {QUALITY_METRIC} {best:g} < target {target:g}")
        reasons += [o["message"] for o in oscillations]
        outcome = "partial" if reasons else "success"
        if outcome == "success":
            quality_said = (f"best {QUALITY_METRIC} {best:g} >= {target:g} at epoch {best_epoch}"
                            if best is not None and target is not None else
                            f"quality not judged: no {QUALITY_METRIC} rule (at/by/from, >= or >) "
                            "sets a target")
            reasons.append(f"{quality_said}; stop rules passed; no oscillation")
        elif target is not None and partial_at_least is None and best is not None and best < target:
            reasons.append("the plan sets no partial_at_least, so a score below the target "
                           "counts as partial, not as a failure")
    return Verdict(outcome, reasons, best_epoch=best_epoch, best_score=best, quality_target=target,
                   partial_at_least=partial_at_least, epochs=list(epochs), candidates=candidates,
                   stop_failures=stop_failures, oscillations=oscillations)
