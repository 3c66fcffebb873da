"""`epochwatch plan show -c FILE`: the run's effective plan, as the report judges it: each
criterion with the rule (and its numbers) or check that judges it, the decision points,
branches, next steps with their kohya changes, and the baselines; without a plan, the rules."""

from __future__ import annotations

from argparse import Namespace

from watcher.commands._common import load
from watcher.plan import Plan
from watcher.report.plan import criterion_target
from watcher.rules import Rule


def render(plan: Plan | None, rules: list[Rule], run: str) -> str:
    by_name = {r.name: r for r in rules}
    if plan is None:
        lines = [f"run {run}: no plan ([run] plan); judged by its rules, no baseline"]
        lines += [f"  criterion {r.name}: {r.describe()} -> {r.action}" for r in rules]
        return "\n".join(lines)
    p = plan.plan
    lines = [f"plan of {p.run} ({plan.path})", f"goal: {p.goal}"]
    lines += [f"expected: {p.expected}"] if p.expected else []
    lines += [f"confidence: {p.confidence:.0%}"] if p.confidence is not None else []
    lines += ["tries: " + ", ".join(f"{k} = {v!r}" for k, v in p.tries.items())] if p.tries else []
    lines.append("criteria:")
    for c in plan.criteria:
        rule = by_name.get(c.rule or "")
        how = f"rule {c.rule}: " if rule else f"check {c.check}: "
        how += criterion_target(c, rule)
        lines.append(f"  [{c.group}] {c.name}: {how}")
    for e in plan.expectations:
        lines.append(f"expect at epochs {', '.join(map(str, e.epochs))} ({e.title}): {'; '.join(e.expect)}")
    for d in plan.decision_points:
        how = f"rule {d.rule}" if d.rule else f"best {d.metric} >= {d.at_least:g}"
        lines += [f"after epoch {d.after_epoch}: {d.question} ({how})",
                  f"  yes: {'; '.join(d.if_yes)}", f"  no: {'; '.join(d.if_no)}"]
    for b in plan.branches:
        when = (f"fails {', '.join(b.when_fails)}" if b.when_fails else
                f"before epoch {b.before_epoch}" if b.before_epoch else
                f"best {b.metric} >= {b.best_at_least:g}" if b.best_at_least is not None else "otherwise")
        lines.append(f"branch {b.name} ({b.title}) when {when}")
        lines += [f"  - {s}" for s in b.steps]
    for s in plan.next_steps:
        lines.append(f"next step {s.name} [{s.confidence:.0%}; branches {', '.join(s.branches) or '-'}]: {s.title}")
        lines += [f"  kohya: {k} = {v!r}" for k, v in s.changes.items()]
        lines += [f"  todo: {a}" for a in s.actions]
    for base in plan.baselines:
        where = {"file": str(base.file or f"configs/baselines/{base.name}.toml"),
                 "store": str(base.store or "the run's state store"),
                 "supabase": "Supabase", "summary": "the plan's summary"}[base.source]
        lines.append(f"baseline {base.name} ({base.role or '-'}): from {where}")
    return "\n".join(lines)


def run(args: Namespace) -> int:
    cfg = load(args.config)
    print(render(cfg.plan, cfg.rules(), cfg.run.name))
    return 0
