"""A run judged by its plan (`watcher.plan.Plan`), or by its rules when it has none: each
success criterion met / not met / pending / not measurable with the evidence, the decision
points answered so far, and the outcome branch the run is on.

"by epoch N" is judged on the first evaluated epoch >= N (as `watcher.epoch.decide` does); before
that the criterion is pending and the evidence shows the best value so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcher.epoch.decide import Verdict, decide_all, verdict
from watcher.plan import Branch, Criterion, DecisionPoint, Plan, partial_at_least
from watcher.report.analysis import outcomes
from watcher.report.history import RunHistory
from watcher.report.rootcause import Finding
from watcher.rules import Rule

MET, NOT_MET, PENDING, UNMEASURED = "met", "not met", "pending", "not measurable"
UNITS = {"overall_score": "/10", "visual_score": "/10", "style_score": "/10",
         "prompt_score": "/10", "color_accuracy": "%", "style_quality": "%"}


@dataclass(frozen=True)
class CriterionResult:
    group: str      # primary | secondary
    name: str
    target: str
    status: str     # met | not met | pending | not measurable
    evidence: str


@dataclass(frozen=True)
class DecisionResult:
    point: DecisionPoint
    answer: str     # yes | no | pending
    evidence: str

    @property
    def todo(self) -> list[str]:
        return {"yes": self.point.if_yes, "no": self.point.if_no}.get(self.answer, [])


def finished(run: RunHistory) -> bool:
    """The run is over: stopped, failed, or its last planned epoch evaluated."""
    last = max(run.epochs, default=0)
    return (run.max_epochs is not None and last >= run.max_epochs) or run.status in (
        "stopped", "finished", "failed", "stopping")


def _v(value: float, metric: str) -> str:
    return f"{value:.2f}" if metric not in UNITS else f"{value:.1f}{UNITS[metric]}"


def _by(run: RunHistory, rule: Rule) -> tuple[str, str]:
    """A by / at rule: its value at the judged epoch (the first evaluated one >= its epoch)."""
    s, epoch, unit = run.series(rule.metric), rule.start, UNITS.get(rule.metric, "")
    if not s:
        return UNMEASURED, f"no {rule.metric} measured"
    judged = next((e for e in s if e >= epoch), None)
    if judged is None:
        best = max(s, key=lambda e: (s[e], -e))
        if finished(run):
            return NOT_MET, (f"the run ended at epoch {max(s)}, before epoch {epoch}; "
                             f"best {_v(s[best], rule.metric)} at epoch {best}")
        return PENDING, (f"judged at epoch {epoch}; evaluated up to {max(s)}, "
                         f"best so far {_v(s[best], rule.metric)} at epoch {best}")
    first = next((e for e in s if rule.holds(s[e])), None)
    tail = f"; first {rule.threshold:g}{unit}+ at epoch {first}" if first is not None else ""
    return (MET if rule.holds(s[judged]) else NOT_MET), f"{_v(s[judged], rule.metric)} at epoch {judged}{tail}"


def _first(run: RunHistory, rule: Rule) -> tuple[str, str]:
    """A by / at rule: met once the condition first holds at or before its epoch."""
    s, last = run.series(rule.metric), max(run.epochs, default=0)
    first = next((e for e in s if rule.holds(s[e])), None)
    if not s:
        return UNMEASURED, f"no {rule.metric} measured"
    if first is not None and first <= rule.start:
        return MET, f"first reached at epoch {first} ({rule.metric} {s[first]:.2f})"
    if last >= rule.start:
        judged = next((e for e in s if e >= rule.start), max(s))
        tail = f"first reached at epoch {first}" if first is not None else f"never reached up to epoch {last}"
        return NOT_MET, f"{rule.metric} {s[judged]:.2f} at epoch {judged}; {tail}"
    return PENDING, f"not reached yet at epoch {last}"


def _stays(run: RunHistory, rule: Rule) -> tuple[str, str]:
    """An oscillation rule: once the condition held, it keeps holding."""
    s = run.series(rule.metric)
    held = {e: rule.holds(v) for e, v in s.items()}
    first = next((e for e, ok in held.items() if ok), None)
    flips = [(a, b) for a, b in zip(held, list(held)[1:], strict=False) if held[a] and not held[b]]
    if first is None:
        cond = f"{rule.metric} {rule.comparison} {rule.threshold:g}"
        return ((UNMEASURED if finished(run) or not s else PENDING),
                f"no {rule.metric} measured" if not s else
                f"{cond} never held" if finished(run) else f"{cond} has not held yet")
    if flips:
        return NOT_MET, "; ".join(f"held at {a}, lost at {b}" for a, b in flips)
    return MET, f"held at every evaluated epoch from {first} to {max(e for e, ok in held.items() if ok)}"


def _candidate(run: RunHistory, rule: Rule) -> tuple[str, str]:
    s = run.series(rule.metric)
    if not s:
        return UNMEASURED, f"no {rule.metric}"
    best = max(s, key=lambda e: (s[e], -e))
    if any(rule.holds(v) for e, v in s.items() if e >= rule.start):
        return MET, f"{_v(s[best], rule.metric)} at epoch {best}"
    return (NOT_MET if finished(run) else PENDING), f"best {_v(s[best], rule.metric)} at epoch {best}"


def judge_rule(run: RunHistory, rule: Rule, how: str = "value") -> tuple[str, str]:
    if rule.mode == "oscillation":
        return _stays(run, rule)
    if rule.mode == "candidate":
        return _candidate(run, rule)
    if rule.mode == "from":
        s = {e: v for e, v in run.series(rule.metric).items() if e >= rule.start}
        bad = [e for e, v in s.items() if not rule.holds(v)]
        if bad:
            return NOT_MET, f"{rule.metric} {_v(s[bad[0]], rule.metric)} at epoch {bad[0]}"
        return (MET, f"held at epochs {min(s)}-{max(s)}") if s else (PENDING, f"judged from epoch {rule.start}")
    return _first(run, rule) if how == "first" else _by(run, rule)


def _kept_while_learnt(run: RunHistory, findings: Sequence[Finding]) -> tuple[str, str]:
    traded = [f for f in findings if f.kind == "quality_traded_for_background"]
    if traded:
        return NOT_MET, "; ".join(f.message.split(": ", 1)[1] for f in traded)
    if run.first_green() is None:
        return (UNMEASURED, "the background was never learnt") if finished(run) else (
            PENDING, "background not learnt yet")
    return MET, "no epoch where the score fell as the background was learnt"


def _smooth(run: RunHistory, c: Criterion, findings: Sequence[Finding]) -> tuple[str, str]:
    flips = [f for f in findings if f.kind == "oscillation"]
    s, drop = run.series(c.metric), c.max_drop or 0.0
    drops = [(a, b) for a, b in zip(s, list(s)[1:], strict=False) if s[a] - s[b] > drop]
    if len(s) < 3:
        return PENDING, f"{len(s)} scored epoch(s); needs 3"
    if flips or drops:
        parts = [f"background oscillates ({len(flips)}x)"] if flips else []
        parts += [f"score {s[a]:.1f}->{s[b]:.1f} at epoch {a}->{b}" for a, b in drops]
        return NOT_MET, "; ".join(parts)
    return MET, f"no background oscillation; no score drop over {drop:g} between epochs"


def _near(run: RunHistory, c: Criterion, baselines: Sequence[RunHistory]) -> tuple[str, str]:
    base = next((b for b in baselines if b.name == c.baseline), None)
    best = max(run.series(c.metric).values(), default=None)
    if base is None:
        return UNMEASURED, f"baseline {c.baseline} not available"
    target = outcomes(base)["best_score"] if c.metric == "overall_score" else max(
        base.series(c.metric).values(), default=None)
    if best is None or target is None:
        return UNMEASURED, f"no {c.metric} to compare"
    status = MET if best >= target - (c.within or 0) else (NOT_MET if finished(run) else PENDING)
    return status, f"best {_v(best, c.metric)} vs {target:g}{UNITS.get(c.metric, '')} ({best - target:+.1f})"


def _named_colours(run: RunHistory, c: Criterion) -> tuple[str, str]:
    last = max(run.epochs, default=0)
    if c.epoch is None:
        epoch, where = run.best()[0], "the best"
    else:
        epoch, where = next((e for e in run.evaluated if e >= c.epoch), None), "the judged"
        if epoch is None:
            return ((UNMEASURED, f"the run ended at epoch {last}, before epoch {c.epoch}") if finished(run)
                    else (PENDING, f"judged at epoch {c.epoch}; evaluated up to {last}"))
    right = total = 0
    for img in run.images.get(epoch, []) if epoch is not None else []:
        for colour in img.get("per_color") or []:
            if colour.get("role") == c.role:
                de = colour.get("delta_e")
                total += 1
                right += isinstance(de, (int, float)) and de <= c.delta_e
    if not total:
        return UNMEASURED, f"no {c.role} colour named in the prompts (or no per-colour scores)"
    status = MET if right / total >= c.share else NOT_MET
    evidence = f"{right}/{total} {c.role} colours within delta E {c.delta_e:g} at {where} epoch {epoch}"
    issues = sorted({str(i) for e in run.evaluated for i in (run.epochs[e].get("issues") or [])
                     if c.issue and all(w in str(i) for w in c.issue)})
    if issues and status == MET:
        return NOT_MET, evidence + f"; issues: {', '.join(issues)}"
    return status, evidence


def criterion_target(c: Criterion, rule: Rule | None) -> str:
    if rule is not None:
        return rule.describe()
    if c.check == "smooth":
        return f"no oscillation, no {c.metric} drop > {c.max_drop or 0:g}"
    if c.check == "near_baseline":
        return f"best {c.metric} within {c.within or 0:g} of {c.baseline}'s"
    if c.check == "named_colours":
        when = f"by epoch {c.epoch}" if c.epoch else "at the best epoch"
        return f"{c.share:.0%} of named {c.role} colours within delta E {c.delta_e:g} {when}"
    return "score does not fall as the background turns right"  # kept_while_learnt


def plan_criteria(run: RunHistory, findings: Sequence[Finding], baselines: Sequence[RunHistory],
                  rules: Sequence[Rule], plan: Plan | None = None) -> list[CriterionResult]:
    """The plan's criteria judged on `run`; without a plan, each rule is one."""
    by_name = {r.name: r for r in rules}
    if plan is None:
        return [CriterionResult("secondary" if r.mode == "candidate" else "primary", r.name,
                                r.describe(), *judge_rule(run, r)) for r in rules]
    out = []
    for c in plan.criteria:
        rule = by_name.get(c.rule) if c.rule else None
        if rule is not None:
            result = judge_rule(run, rule, c.judge)
        elif c.check == "kept_while_learnt":
            result = _kept_while_learnt(run, findings)
        elif c.check == "smooth":
            result = _smooth(run, c, findings)
        elif c.check == "near_baseline":
            result = _near(run, c, baselines)
        elif c.check == "named_colours":
            result = _named_colours(run, c)
        else:  # a rule the config no longer has (load refuses this)
            result = (UNMEASURED, f"no rule {c.rule!r}")
        out.append(CriterionResult(c.group, c.name, criterion_target(c, rule), *result))
    return out


def failed_rules(run: RunHistory, rules: Sequence[Rule]) -> set[str]:
    """The rules that failed (or could not be judged when due) at some epoch of `run`."""
    per_epoch = decide_all(list(rules), run.records())
    return {d.criterion for ds in per_epoch.values() for d in ds if d.outcome in ("fail", "cannot_judge")}


def decision_points(run: RunHistory, rules: Sequence[Rule], plan: Plan) -> list[DecisionResult]:
    by_name, last = {r.name: r for r in rules}, max(run.epochs, default=0)
    out = []
    for p in plan.decision_points:
        if last < p.after_epoch and not finished(run):
            out.append(DecisionResult(p, "pending", f"evaluated up to epoch {last}"))
            continue
        if p.rule is not None and p.rule in by_name:
            status, evidence = judge_rule(run, by_name[p.rule])
        else:
            metric = p.metric or "overall_score"
            s = {e: v for e, v in run.series(metric).items() if e <= p.after_epoch}
            best = max(s, key=lambda e: (s[e], -e)) if s else None
            ok = best is not None and p.at_least is not None and s[best] >= p.at_least
            status = MET if ok else (UNMEASURED if best is None else NOT_MET)
            evidence = f"no {metric}" if best is None else f"best {_v(s[best], metric)} at epoch {best}"
        answer = {MET: "yes", NOT_MET: "no"}.get(status, "pending")
        out.append(DecisionResult(p, answer, evidence))
    return out


def branch_of(run: RunHistory, rules: Sequence[Rule], plan: Plan) -> Branch | None:
    """The first branch of the plan whose condition holds for `run`."""
    failed = failed_rules(run, rules)
    last = max(run.epochs, default=0)
    for b in plan.branches:
        best = max(run.series(b.metric).values(), default=None)
        if b.when_fails:
            hit = bool(failed & set(b.when_fails))
        elif b.before_epoch is not None:
            hit = last < b.before_epoch or best is None
        elif b.best_at_least is not None:
            hit = best is not None and best >= b.best_at_least
        else:
            hit = True
        if hit:
            return b
    return None


def verdict_of(run: RunHistory, rules: Sequence[Any], plan: Plan | None) -> Verdict:
    """The run's verdict as `watcher.epoch.decide.verdict` gives it (success / partial / failure /
    pending), from the same rules the daemon judged with and its plan's `partial_at_least`."""

    return verdict(list(rules), run.records(), partial_at_least=partial_at_least(plan))
