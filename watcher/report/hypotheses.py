"""The next experiments: the plan's next steps for the branch the run is on (`watcher.plan`),
or, for a run without a plan, steps derived from the rules that failed, the findings and the
kohya parameters recorded.

Confidence: the plan's prior for each step, moved up or down by the evidence the plan names
(findings, baselines) when it holds for this run. They rank the options; they are not
measured probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.kohya import kohya_network_arg
from watcher.plan import Evidence, NextStep, Plan
from watcher.report.analysis import outcomes
from watcher.report.history import RunHistory, number
from watcher.report.kohyaedit import with_network_args
from watcher.report.rootcause import Finding
from watcher.rules import Rule


@dataclass
class Hypothesis:
    name: str
    title: str
    rationale: str
    confidence: float
    changes: dict[str, Any] = field(default_factory=dict)   # kohya option -> new value
    actions: list[str] = field(default_factory=list)        # steps outside the kohya config

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "rationale": self.rationale,
                "confidence": round(self.confidence, 2), "changes": self.changes,
                "actions": self.actions}


def _clamp(x: float) -> float:
    return max(0.05, min(0.95, x))


def _current(key: str, params: dict[str, Any], kohya: dict[str, Any]) -> Any:
    return kohya_network_arg(kohya, key) if key in ("conv_dim", "conv_alpha") else params.get(key)


def kohya_changes(changes: dict[str, Any], kohya: dict[str, Any]) -> dict[str, Any]:
    """A step's changes as kohya options: a `network_args` table merged into the config's list,
    and a new learning_rate carried to unet_lr / text_encoder_lr (which override it)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "network_args" and isinstance(value, dict):
            out[key] = with_network_args(kohya.get("network_args"), value)
        else:
            out[key] = value
    lr, new_lr = number(kohya.get("learning_rate")), number(changes.get("learning_rate"))
    if lr and new_lr is not None:
        for key in ("unet_lr", "text_encoder_lr"):
            v = number(kohya.get(key))
            if v is not None:
                out[key] = v * new_lr / lr
    return out


def _in_effect(changes: dict[str, Any], params: dict[str, Any], kohya: dict[str, Any]) -> bool:
    """Every change is already this run's value: trying it again tells nothing new."""
    flat: dict[str, Any] = {}
    for key, value in changes.items():
        flat.update({k: v for k, v in value.items()} if isinstance(value, dict) else {key: value})
    return bool(flat) and all(
        str(_current(k, params, kohya)) == str(v) or number(_current(k, params, kohya)) == number(v) is not None
        for k, v in flat.items())


def _holds(e: Evidence, run: RunHistory, kinds: set[str], branch: str | None,
           baselines: dict[str, RunHistory]) -> dict[str, Any] | None:
    """The format fields of the evidence's `says`, or None when it does not hold."""
    found = [k for k in e.findings if k in kinds]
    fields: dict[str, Any] = {"first": run.first_green(), "found": ", ".join(found).replace("_", " ")}
    if e.findings and not found:
        return None
    if e.branch is not None and e.branch != branch:
        return None
    name = e.baseline or e.earlier_than
    if name is not None:
        base = baselines.get(name)
        if base is None:
            return None
        o = outcomes(base)
        fields.update(baseline=name, best_score=o["best_score"], baseline_first=o["first_green_epoch"])
        if e.earlier_than and not (fields["first"] is not None and o["first_green_epoch"] is not None
                                   and fields["first"] < o["first_green_epoch"]):
            return None
    return fields


def _from_plan(step: NextStep, run: RunHistory, kinds: set[str], branch: str | None,
               kohya: dict[str, Any], baselines: dict[str, RunHistory]) -> Hypothesis:
    conf, why = step.confidence, [step.why]
    for e in step.evidence:
        fields = _holds(e, run, kinds, branch, baselines)
        if fields is not None:
            conf += e.by
            if e.says:
                why.append(e.says.format(**fields))
    return Hypothesis(step.name, step.title, " ".join(why), _clamp(conf),
                      changes=kohya_changes(step.changes, kohya), actions=list(step.actions))


def plan_next_steps(plan: Plan, run: RunHistory, findings: Sequence[Finding], kohya: dict[str, Any],
                    baselines: Sequence[RunHistory], branch: str | None) -> list[Hypothesis]:
    """The plan's next steps for `branch` (or the findings they name), best first."""
    kinds = {f.kind for f in findings}
    params = {**run.flat_params(), **{k: v for k, v in kohya.items() if v is not None}}
    known = {b.name: b for b in baselines}
    out = [_from_plan(s, run, kinds, branch, kohya, known) for s in plan.next_steps
           if (branch in s.branches or kinds & set(s.findings))
           and not _in_effect(s.changes, params, kohya)]
    return sorted(out, key=lambda h: -h.confidence)


def generic_next_steps(run: RunHistory, findings: Sequence[Finding], kohya: dict[str, Any],
                       rules: Sequence[Rule], failed: set[str]) -> list[Hypothesis]:
    """For a run without a plan: one step per kind of trouble its rules and findings show,
    starting from the kohya values it trained with."""
    kinds = {f.kind for f in findings}
    params = {**run.flat_params(), **{k: v for k, v in kohya.items() if v is not None}}
    failed_metrics = {r.metric for r in rules if r.name in failed}
    out: list[Hypothesis] = []
    kt = number(params.get("keep_tokens"))
    if failed_metrics & {"background_match_rate", "color_accuracy"} and kt is not None:
        out.append(Hypothesis(
            "keep_tokens_more", f"keep_tokens {int(kt) + 2}",
            f"{' and '.join(sorted(failed_metrics & {'background_match_rate', 'color_accuracy'}))} "
            "failed: keep more leading caption tags (where colour tags usually sit) out of the "
            "shuffle.", 0.4, changes={"keep_tokens": int(kt) + 2}))
    lr = number(params.get("learning_rate"))
    unstable = kinds & {"oscillation", "quality_traded_for_background", "style_loss", "color_drift"}
    if unstable and lr:
        out.append(Hypothesis(
            "learning_rate_half", f"Learning rate {lr / 2:g}",
            "The run was unstable (" + ", ".join(sorted(unstable)) + "): halve the learning rate.",
            0.4 + 0.05 * (len(unstable) - 1), changes=kohya_changes({"learning_rate": lr / 2}, kohya)))
    epochs = number(params.get("max_train_epochs"))
    if "still_improving" in kinds and epochs:
        more = int(epochs * 1.5)
        out.append(Hypothesis(
            "more_epochs", f"Longer training ({more} epochs)",
            "The score was still rising at the last epochs.", 0.4,
            changes={"max_train_epochs": more}))
    dim = number(params.get("network_dim"))
    if "plateau" in kinds and failed_metrics and dim:
        out.append(Hypothesis(
            "network_dim_double", f"network_dim {int(dim) * 2}",
            "The score flattened out below the targets: a larger LoRA may hold more.", 0.3,
            changes={"network_dim": int(dim) * 2}))
    return sorted((h for h in out if not _in_effect(h.changes, params, kohya)), key=lambda h: -h.confidence)


def render_hypotheses(run: RunHistory, which: str, items: Sequence[Hypothesis]) -> str:
    lines = [f"next experiments for {run.name} (branch: {which})"]
    if not items:
        lines.append("  none: nothing in the plan (or, without one, in the rules' results) applies")
    for i, h in enumerate(items, 1):
        lines.append(f"{i}. {h.title}  [confidence {h.confidence:.0%}]")
        lines.append(f"   why: {h.rationale}")
        for key, value in h.changes.items():
            lines.append(f"   kohya: {key} = {value!r}")
        for step in h.actions:
            lines.append(f"   todo: {step}")
    return "\n".join(lines)


def next_experiments(run: RunHistory, findings: Sequence[Finding], kohya: dict[str, Any],
                     rules: Sequence[Rule], plan: Plan | None,
                     baselines: Sequence[RunHistory]) -> tuple[str, list[Hypothesis]]:
    """(the branch the run is on, its next steps): from the plan, else from the rules."""
    from watcher.report.plan import branch_of, failed_rules, verdict_of

    if plan is not None:
        branch = branch_of(run, rules, plan)
        name = branch.name if branch else None
        return (branch.title if branch else "none of the plan's"), plan_next_steps(
            plan, run, findings, kohya, baselines, name)
    word = verdict_of(run, rules, plan).verdict
    return f"{word}, no plan", generic_next_steps(run, findings, kohya, rules, failed_rules(run, rules))
