"""`report.md` for one run: parameters, the plan's criteria with evidence, verdict, best epoch
and production candidate, baselines, root cause, next experiments, review calibration.

Deterministic (no clock): the same store gives the same file, so a commit of an unchanged
report is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from watcher.config import WatchConfig
from watcher.ending import late_stop
from watcher.epoch.decide import Verdict
from watcher.metrics import BACKGROUND_METRIC
from watcher.plan import Plan
from watcher.report.analysis import outcomes
from watcher.report.baselines import plan_baselines
from watcher.report.calibration import (
    MIN_REVIEWS,
    NARROW_SPREAD,
    Calibration,
    TeamFit,
    calibrate,
    team_calibrate,
    team_lines,
)
from watcher.report.history import RunHistory, load_run, run_names
from watcher.report.hypotheses import Hypothesis, next_experiments
from watcher.report.losscurve import LOSS_PNG
from watcher.report.pictures import write_run_pictures
from watcher.report.plan import (
    CriterionResult,
    DecisionResult,
    branch_of,
    decision_points,
    finished,
    plan_criteria,
    verdict_of,
)
from watcher.report.rootcause import Finding, on_time_epoch, root_cause
from watcher.rules import Rule, decision_word
from watcher.store import Store

ICON = {"met": "✅ met", "not met": "❌ not met", "pending": "⏳ pending",
        "not measurable": "➖ not measurable"}


def _f(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _params(run: RunHistory) -> list[str]:
    lines = ["| group | parameter | value |", "|---|---|---|"]
    for group, values in run.params.items():
        if isinstance(values, dict):
            for key, value in values.items():
                lines.append(f"| {group} | `{key}` | {_f(value, 'g')} |")
    return lines if len(lines) > 2 else ["(no parameters recorded)"]


def _epochs(run: RunHistory) -> list[str]:
    lines = ["| epoch | background | bg hex | colour % | style % | Visual | Style | Prompt | overall | decision |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for e in run.evaluated:
        a = run.epochs[e]
        ds = run.decisions.get(e, [])
        word = decision_word(ds) if ds else "-"
        if any(d.marked for d in ds):
            word += " (candidate)"
        rate = run.value(e, BACKGROUND_METRIC)
        lines.append(f"| {e} | {_f(rate, '.0%') if rate is not None else '-'} | {_f(a.get('background_hex'))} | "
                     f"{_f(run.value(e, 'color_accuracy'))} | {_f(run.value(e, 'style_quality'))} | "
                     f"{_f(run.value(e, 'visual_score'))} | {_f(run.value(e, 'style_score'))} | "
                     f"{_f(run.value(e, 'prompt_score'))} | **{_f(run.value(e, 'overall_score'))}** | {word} |")
    return lines if run.evaluated else ["No epoch evaluated yet."]


def _learned(run: RunHistory) -> list[str]:
    """The learned judge's CLIPScore per epoch, when the run had one (advisory: no decision
    rests on it unless a rule opted in)."""
    scored = [e for e in run.evaluated if run.value(e, "clip_score") is not None]
    if not scored:
        return []
    return ["CLIPScore (prompt adherence, 100 x max(cos, 0); advisory): "
            + ", ".join(f"epoch {e} {_f(run.value(e, 'clip_score'))}" for e in scored) + ".", ""]


def _criteria(results: Sequence[CriterionResult]) -> list[str]:
    lines = ["| | criterion | target | result | evidence |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.group} | {r.name} | {r.target} | {ICON[r.status]} | {r.evidence} |")
    return lines


def _baselines(run: RunHistory, baselines: Sequence[RunHistory], verdict: str,
               at: int | None) -> list[str]:
    at_head, at_rule = (f" score at {at} |", "---:|") if at else ("", "")
    lines = [f"| run | first right background | best epoch | best score |{at_head} verdict |",
             f"|---|---:|---:|---:|{at_rule}---|"]
    mine = outcomes(run)
    rows = [(run, mine, verdict)] + [(b, outcomes(b), outcomes(b)["verdict"]) for b in baselines]
    for r, o, v in rows:
        green = "unknown" if o["first_green_epoch"] is None else (
            f"never (to epoch {o['first_green_epoch'] - 1})" if o["first_green_censored"]
            else _f(o["first_green_epoch"], "d"))
        name = f"**{r.name}** (this run)" if r is run else r.name
        at_cell = f" {_f(r.value(at, 'overall_score'))} |" if at else ""
        lines.append(f"| {name} | {green} | {_f(o['best_epoch'], 'd')} | {_f(o['best_score'])} |"
                     f"{at_cell} {v or '-'} |")
    lines.append("")
    for b in baselines:
        o = outcomes(b)
        parts = []
        if mine["best_score"] is not None and o["best_score"] is not None:
            parts.append(f"best score {mine['best_score'] - o['best_score']:+.1f} "
                         f"({mine['best_score']:.1f} vs {o['best_score']:.1f})")
        if o["first_green_epoch"] is not None and mine["first_green_epoch"] is not None:
            diff = o["first_green_epoch"] - mine["first_green_epoch"]
            when = "the same epoch" if diff == 0 else f"{abs(diff)} epoch(s) {'earlier' if diff > 0 else 'later'}"
            if mine["first_green_censored"]:
                when = f"not yet (baseline: epoch {o['first_green_epoch']})"
            parts.append(f"background right {when}")
        lines.append(f"- vs {b.name}: " + ("; ".join(parts) if parts else "nothing comparable yet")
                     + (f". _{b.notes}_" if b.notes else ""))
    return lines


def _calibration(run: RunHistory, fits: Sequence[Calibration]) -> list[str]:
    if not run.reviews:
        return [f"No manual review yet. Review epochs with `epochwatch review --config FILE --epoch N "
                f"--visual V --style S --prompt P`; calibration starts at {MIN_REVIEWS} reviewed epochs."]
    lines = ["| epoch | Visual | Style | Prompt | auto overall | notes |", "|---:|---:|---:|---:|---:|---|"]
    for e, r in sorted(run.reviews.items()):
        notes = str(r.get("notes") or "").replace("|", "/").replace("\n", " ")
        lines.append(f"| {e} | {r['visual']:g} | {r['style']:g} | {r['prompt']:g} | "
                     f"{_f(run.value(e, 'overall_score'))} | {notes} |")
    lines.append("")
    if not fits:
        lines.append(f"{len(run.reviews)} of {MIN_REVIEWS} reviewed epochs needed before the automatic "
                     "scores are calibrated.")
        return lines
    lines += ["Calibration (least squares, human = slope x auto + intercept):", "",
              "| score | reviews | slope | intercept | error before | error after | leave-one-out | note |",
              "|---|---:|---:|---:|---:|---:|---:|---|"]
    for c in fits:
        remarks: list[str] = []
        if c.auto_spread < NARROW_SPREAD:
            remarks.append(f"auto scores span only {c.auto_spread:.2f}: slope unreliable")
        if c.mae_loo >= c.mae_raw:
            remarks.append("no better than the raw scores")
        lines.append(f"| {c.score} | {c.n} | {c.slope:.2f} | {c.intercept:+.2f} | {c.mae_raw:.2f} | "
                     f"{c.mae_fit:.2f} | {c.mae_loo:.2f} | {'; '.join(remarks)} |")
    lines += ["", "Errors are mean absolute differences on the 1-10 scale; the leave-one-out figure "
              "predicts each review from a line fitted without it, the fairer estimate of the "
              "remaining error."]
    return lines


def _pictures(run: RunHistory, run_dir: Path) -> list[str]:
    lines = ["![metric curves](curves.png)", ""]
    if (run_dir / LOSS_PNG).is_file():  # only a run with training figures has one
        lines += ["![training loss by step, epoch ends dotted](loss.png)", ""]
    lines += ["![samples by epoch](grid.png)", ""]
    sheets = []
    for e in run.evaluated:
        folder = run.result_dirs.get(e)
        if folder is not None and (folder / "contact_sheet.png").is_file():
            rel = os.path.relpath(folder / "contact_sheet.png", run_dir)
            sheets.append(f"[epoch {e}]({Path(rel).as_posix()})")
    if sheets:
        lines.append("Contact sheets: " + " · ".join(sheets))
    return lines


def _plan(plan: Plan | None) -> list[str]:
    if plan is None:
        return ["No plan: this run is judged by its rules (`[[criteria]]`). Name a plan with "
                "`[run] plan = \"plan.toml\"` (see docs/plan.md).", ""]
    p = plan.plan
    lines = [f"- Goal: {p.goal}"]
    lines += [f"- Expected: {p.expected}"] if p.expected else []
    lines += [f"- Confidence: {p.confidence:.0%}"] if p.confidence is not None else []
    if p.tries:
        lines.append("- Tries: " + ", ".join(f"`{k} = {v!r}`" for k, v in p.tries.items()))
    return [*lines, f"- Plan file: `{plan.path.name if plan.path else '-'}`", ""]


def _decisions(points: Sequence[DecisionResult]) -> list[str]:
    lines = []
    for r in points:
        head = f"- After epoch {r.point.after_epoch}: {r.point.question} **{r.answer}** ({r.evidence})"
        lines.append(head + (": " + "; ".join(r.todo) if r.todo else ""))
    return lines or ["The plan has no decision points."]


def best_epoch_line(run: RunHistory, epoch: int | None, score: float | None) -> str:
    if epoch is None or score is None:
        return "-"
    # the earliest of equals is named, but a reviewer should see that nothing set it apart
    tied = [e for e in run.evaluated if e != epoch and run.value(e, "overall_score") == score]
    if not tied:
        return f"epoch {epoch} ({score:.1f}/10)"
    if len(tied) + 1 == len(run.evaluated):
        return f"none stands out: every epoch scores {score:.1f}/10 (epoch {epoch} is the earliest)"
    return f"epoch {epoch} ({score:.1f}/10, tied with epoch{'s' if len(tied) > 1 else ''} " \
        f"{', '.join(map(str, tied))}: the earliest is named)"


def render_report(run: RunHistory, *, run_dir: Path, kohya_config: str | None,
                  criteria: Sequence[CriterionResult], verdict: Verdict,
                  baselines: Sequence[RunHistory], findings: Sequence[Finding],
                  next_steps: Sequence[Hypothesis], fits: Sequence[Calibration],
                  plan: Plan | None = None, points: Sequence[DecisionResult] = (),
                  branch: str = "", missing: Sequence[str] = (), rules: Sequence[Rule] = (),
                  team: Sequence[TeamFit] = (), team_reviews: int = 0) -> str:
    best_epoch, best_score = verdict.best_epoch, verdict.best_score
    candidates = verdict.candidates
    if candidates:
        top = max(candidates, key=lambda c: (c["value"], -c["epoch"]))
        candidate = f"epoch {top['epoch']} ({top['value']:.1f}/10)"
    else:
        candidate = "none yet: no epoch reached the production threshold"
    out = [f"# {run.name}", "",
           f"{len(run.epochs)} evaluated epoch(s)" + (f" of {run.max_epochs}" if run.max_epochs else "")
           + (f"; run status: {run.status}" if run.status else "") + ".", "",
           f"**Verdict: {verdict.verdict.upper()}**"
           + ("" if finished(run) or verdict.verdict == "pending"
              else " (so far: the run has epochs to go)"), ""]
    out += [f"- {r}" for r in verdict.reasons]
    out += ["", f"- Best epoch: {best_epoch_line(run, best_epoch, best_score)}",
            f"- Production candidate: {candidate}", ""]
    out += ["## Plan", "", *_plan(plan)]
    source = (plan.plan.source or "plan.toml") if plan else "the run's rules"
    out += [f"## Success criteria ({source})", "", *_criteria(criteria), ""]
    if plan is not None:
        out += ["## Decision points", "", *_decisions(points), ""]
    out += ["## Epochs", "", *_epochs(run), "", *_learned(run)]
    out += ["## Pictures", "", *_pictures(run, run_dir), ""]
    out += ["## Comparison with the baselines", ""]
    out += [f"- **not available**: {m}" for m in missing] + ([""] if missing else [])
    if baselines:
        at = plan.plan.compare_at_epoch if plan else None
        out += [*_baselines(run, baselines, verdict.verdict, at), ""]
    else:
        out += ["No baseline: " + ("the plan names none." if plan else "a run without a plan has none.")
                + " Add `[[baselines]]` to the plan to compare with earlier runs.", ""]
    out += ["## Root cause", ""]
    out += [f"- **{f.severity}**: {f.message}" for f in findings] or ["- nothing to report"]
    out += ["", "## Next experiments", "", f"Branch: {branch}.", ""]
    chosen = branch_of(run, rules, plan) if plan is not None else None
    if chosen is not None and chosen.steps:
        out += ["The plan for this outcome: " + "; ".join(chosen.steps) + ".", ""]
    for i, h in enumerate(next_steps, 1):
        change = ", ".join(f"`{k} = {v!r}`" for k, v in h.changes.items()) or "no kohya change"
        out.append(f"{i}. **{h.title}** ({h.confidence:.0%}): {h.rationale} Changes: {change}.")
    if not next_steps:
        out.append("Nothing in the plan's decision tree applies yet." if plan else
                   "Nothing to suggest from the rules and findings yet.")
    out += ["", "`epochwatch analyze hypotheses --config FILE --out next.toml --plan-out next-plan.toml` "
            "writes the kohya config of the first one with a config change, and the next run's plan.", ""]
    out += ["## Manual review and calibration", "", *_calibration(run, fits), ""]
    if run.reviews or team:
        out += [*team_lines(run, team, team_reviews), ""]
    out += ["## Parameters", ""]
    if kohya_config:
        out += [f"kohya config: `{kohya_config}`", ""]
    out += [*_params(run), ""]
    return "\n".join(out)


def _team(store: Store) -> dict[str, Any]:
    """The team's weighting from the reviews of every run in the store (issue 25)."""
    runs = [load_run(store, name) for name in run_names(store)]
    return {"team": team_calibrate(runs), "team_reviews": sum(len(r.reviews) for r in runs)}


def write_report(cfg: WatchConfig, store: Store) -> Path:
    """report.md, grid.png, curves.png (and loss.png) in the run's results folder; once the run is over
    (stopped, or its last epoch evaluated) records the verdict and best epoch in the store.
    Returns the report's path."""

    run_dir = Path(cfg.run_results_dir)
    write_run_pictures(cfg, store)
    run = load_run(store, cfg.run.name)
    if (late := late_stop(store, cfg.run.name, cfg.max_train_epochs)) is not None:
        run.status = f"{run.status or 'finished'} ({late})"  # the run status line says so
    if not run.params:
        run.params = cfg.params()
    plan = cfg.plan
    baselines, missing = plan_baselines(plan, cfg.state_db) if plan is not None else ([], [])
    rules = cfg.rules()
    findings = root_cause(run, on_time_epoch(rules))
    verdict = verdict_of(run, rules, plan)
    branch, steps = next_experiments(run, findings, dict(cfg.kohya), rules, plan, baselines)
    text = render_report(
        run, run_dir=run_dir,
        kohya_config=str(cfg.run.kohya_config) if cfg.run.kohya_config else None,
        criteria=plan_criteria(run, findings, baselines, rules, plan), verdict=verdict,
        baselines=baselines, findings=findings, next_steps=steps, fits=calibrate(run), plan=plan,
        points=decision_points(run, rules, plan) if plan is not None else [], branch=branch,
        missing=missing, rules=rules, **_team(store))
    path = run_dir / "report.md"
    tmp = path.with_name(f".report.md.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    if store.run_row(cfg.run.name) is not None and finished(run):
        store.update_run(cfg.run.name, verdict=verdict.verdict, best_epoch=verdict.best_epoch)
    return path
