"""The next run's plan, from this run and the hypothesis chosen for it (`analyze hypotheses
--plan-out`): the hypothesis as its goal, this run as its baseline and a criterion to beat
it, the rest of this plan's criteria, decision points, branches and next steps carried on.
Written as TOML that `watcher.plan.load_plan` reads back."""

from __future__ import annotations

import json
import re
from typing import Any

from watcher.plan import Plan
from watcher.report.history import RunHistory
from watcher.report.hypotheses import Hypothesis
from watcher.rules import Rule


def next_run_name(run: str, step: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"{run}_{step}".upper()).strip("_")[:128]


def next_plan(run: RunHistory, chosen: Hypothesis, rules: list[Rule], plan: Plan | None) -> dict[str, Any]:
    """The next plan as the data of a plan.toml."""
    info: dict[str, Any] = {
        "run": next_run_name(run.name, chosen.name), "goal": f"{chosen.title}: {chosen.rationale}",
        "confidence": round(chosen.confidence, 2),
        "source": f"epochwatch analyze hypotheses after {run.name}"}
    if chosen.changes:
        info["tries"] = chosen.changes
    if plan is not None and plan.plan.compare_at_epoch:
        info["compare_at_epoch"] = plan.plan.compare_at_epoch
    previous = {"name": run.name, "role": "the run before this one", "source": "store"}
    beat = {"name": f"Beats {run.name}", "check": "near_baseline", "baseline": run.name,
            "metric": "overall_score", "within": 0.0}
    if plan is None:
        criteria = [{"name": r.name, "rule": r.name} for r in rules]
        return {"plan": info, "criteria": [*criteria, beat], "baselines": [previous]}
    carried = [c.model_dump(exclude_defaults=True) for c in plan.criteria]
    baselines = [b.model_dump(exclude_defaults=True, exclude={"file", "store"}) for b in plan.baselines
                 if b.name != run.name]
    for b, src in zip(baselines, [b for b in plan.baselines if b.name != run.name], strict=True):
        for key in ("file", "store"):
            if getattr(src, key) is not None:
                b[key] = str(getattr(src, key))  # absolute: the next plan may live elsewhere
    return {
        "plan": info, "criteria": [*carried, beat],
        "expectations": [e.model_dump(exclude_defaults=True) for e in plan.expectations],
        "decision_points": [d.model_dump(exclude_defaults=True) for d in plan.decision_points],
        "branches": [b.model_dump(exclude_defaults=True) for b in plan.branches],
        "next_steps": [s.model_dump(exclude_defaults=True) for s in plan.next_steps if s.name != chosen.name],
        "baselines": [previous, *baselines],
    }


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def to_toml(data: dict[str, Any], header: list[str]) -> str:
    """Tables and arrays of tables of plain values (what `next_plan` gives)."""
    out = [f"# {line}" for line in header]
    for name, body in data.items():
        for table in body if isinstance(body, list) else [body]:
            out += ["", f"[[{name}]]" if isinstance(body, list) else f"[{name}]"]
            out += [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(out) + "\n"
