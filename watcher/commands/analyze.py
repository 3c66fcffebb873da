"""`epochwatch analyze correlations|root-cause|hypotheses`: cross-run analysis over the state
stores and the baselines in configs/baselines/ (`--source local`), or over every run and
baseline in Supabase (`--source supabase`: the runs of many hosts meet there)."""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from pathlib import Path
from typing import Any

from watcher.commands._common import load, runs_of_stores
from watcher.config import WatchConfig
from watcher.errors import CommandError
from watcher.report.baselines import BaselineError, load_baselines
from watcher.report.history import RunHistory, load_run, load_store
from watcher.store import Store


def _source(args: Namespace) -> str:
    from watcher.commands.runs import choose_source

    local = bool(getattr(args, "store", None)) or bool(args.config)
    return choose_source(args.source, local and not getattr(args, "run", None))  # --run: Supabase


def _remote_runs() -> list[RunHistory]:
    """Every run and baseline in Supabase, runs by name then baselines by name. Baselines not
    pushed yet (`epochwatch baselines push`) come from the local files, with a note."""
    import sys

    from watcher.commands.runs import supabase_records
    from watcher.report.runs import sort_records

    every = [r.history for r in sort_records(supabase_records())]
    if not any(h.kind == "baseline" for h in every):
        print("note: no baselines in Supabase (run `epochwatch baselines push` once); "
              "using configs/baselines/", file=sys.stderr)
        every += sorted(_baselines(), key=lambda r: r.name)
    return every


def _baselines() -> list[RunHistory]:
    try:
        return load_baselines()
    except BaselineError as exc:
        raise CommandError(str(exc)) from None


def _this_run(cfg: WatchConfig) -> RunHistory:
    if not cfg.state_db.exists():
        raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")
    with Store(cfg.state_db) as store:
        if store.run_row(cfg.run.name) is None:
            raise CommandError(f"run {cfg.run.name} is not in {cfg.state_db}")
        run = load_run(store, cfg.run.name)
    if not run.params:
        run.params = cfg.params()
    return run


def correlations(args: Namespace) -> int:
    from watcher.report.analysis import correlations as correlate
    from watcher.report.analysis import render_correlations

    every = _remote_runs() if _source(args) == "supabase" else _local_runs(args)
    print(render_correlations(every, correlate(every)))
    return 0


def _local_runs(args: Namespace) -> list[RunHistory]:
    """The runs of the stores given, by name, then the baselines (the order Supabase gives)."""
    paths = [Path(p) for p in args.store]
    if args.config:
        paths.insert(0, load(args.config).state_db)
    if not paths:
        raise CommandError("give --config FILE or at least one --store state.db")
    every = sorted(runs_of_stores(paths, load_store, lambda r: r.name), key=lambda r: r.name)
    names = {r.name for r in every}
    return every + sorted((b for b in _baselines() if b.name not in names), key=lambda r: r.name)


def _the_run(args: Namespace) -> tuple[WatchConfig | None, RunHistory]:
    """The run to analyse: from its state store, or by name (--run, else the config's) from
    Supabase."""
    cfg = load(args.config) if args.config else None
    if _source(args) == "local":
        if cfg is None:
            raise CommandError("give --config FILE (or --source supabase --run NAME)")
        return cfg, _this_run(cfg)
    name = args.run or (cfg.run.name if cfg else None)
    if not name:
        raise CommandError("give --run NAME or --config FILE")
    from watcher.commands.runs import supabase_records

    found = next((r.history for r in supabase_records() if r.history.name == name), None)
    if found is None:
        raise CommandError(f"run {name} is not in Supabase")
    return cfg, found


def _rules(cfg: WatchConfig | None) -> list[Any]:
    """The run's rules; a run read from Supabase without a config: the default criteria."""
    from watcher.rules import PLAN_RULES

    return cfg.rules() if cfg is not None else list(PLAN_RULES)


def root_cause(args: Namespace) -> int:
    from watcher.report.rootcause import on_time_epoch, render_findings, root_cause

    cfg, run = _the_run(args)
    print(render_findings(run, root_cause(run, on_time_epoch(_rules(cfg)))))
    return 0


def _write_config(cfg: WatchConfig, run: RunHistory, items: list[Any], out: Path, force: bool = False) -> None:
    from watcher.report.kohyaedit import KohyaEditError, edit_kohya_config

    source = cfg.run.kohya_config
    if source is None:
        raise CommandError("this run's config has no run.kohya_config: nothing to base the next one on")
    chosen = next((h for h in items if h.changes), None)
    if chosen is None:
        raise CommandError("no hypothesis changes the kohya config (the ones listed need data work)")
    if out.resolve() == Path(source).resolve():
        raise CommandError(f"--write-config would overwrite this run's own kohya config {source}")
    if out.exists() and not force:
        raise CommandError(f"{out} exists; add --force to overwrite it")
    skipped = [h.title for h in items[: items.index(chosen)]]
    old = {k: cfg.kohya.get(k) for k in chosen.changes}
    header = [f"Next experiment after {run.name}: {chosen.title} "
              f"(confidence {chosen.confidence:.0%}), written by epochwatch analyze hypotheses.",
              f"Based on {source}; changed: " + "; ".join(
                  f"{k} {old[k]!r} -> {v!r}" for k, v in chosen.changes.items()) + ".",
              "Give it a new output_name / output_dir before training, or this run's "
              "checkpoints are overwritten."]
    try:
        text = edit_kohya_config(Path(source).read_text(encoding="utf-8"), chosen.changes,
                                 f"epochwatch hypothesis {chosen.name}", header)
    except (OSError, KohyaEditError) as exc:
        raise CommandError(f"cannot write the next kohya config: {exc}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    if skipped:
        print(f"(skipped, no kohya change: {', '.join(skipped)})")
    print(f"wrote {out}: {chosen.title}")


def hypotheses(args: Namespace) -> int:
    from watcher.report.baselines import plan_baselines
    from watcher.report.hypotheses import next_experiments, render_hypotheses
    from watcher.report.rootcause import on_time_epoch, root_cause

    cfg, run = _the_run(args)
    rules = _rules(cfg)
    plan = cfg.plan if cfg is not None else None
    findings = root_cause(run, on_time_epoch(rules))
    bases: list[RunHistory] = []
    if plan is not None:
        bases, missing = plan_baselines(plan, cfg.state_db if cfg else None)
        for line in missing:
            print(f"note: {line}", file=sys.stderr)
    kohya = dict(cfg.kohya) if cfg is not None else {}
    branch, items = next_experiments(run, findings, kohya, rules, plan, bases)
    print(render_hypotheses(run, branch, items))
    force = bool(getattr(args, "force", False))
    if args.write_config:
        if cfg is None:
            raise CommandError("--write-config needs --config FILE (the run's kohya config)")
        _write_config(cfg, run, items, Path(args.write_config), force=force)
    if getattr(args, "plan_out", None):
        chosen = next((h for h in items if h.changes), None) if args.write_config else next(iter(items), None)
        if chosen is None:
            raise CommandError("no next experiment to write a plan for")
        _write_plan(run, chosen, rules, plan, Path(args.plan_out), force)
    return 0


def _write_plan(run: RunHistory, chosen: Any, rules: list[Any], plan: Any, out: Path, force: bool) -> None:
    from watcher.report.nextplan import next_plan, to_toml

    if out.exists() and not force:
        raise CommandError(f"{out} exists; add --force to overwrite it")
    data = next_plan(run, chosen, rules, plan)
    text = to_toml(data, [f"Plan of {data['plan']['run']}, the run after {run.name}: {chosen.title}.",
                          "Written by epochwatch analyze hypotheses; name it in the next run's "
                          "watcher.toml ([run] plan) and edit freely (docs/plan.md)."])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, out)
    print(f"wrote {out}: plan of {data['plan']['run']}")


def run(args: Namespace) -> int:
    return {"correlations": correlations, "root-cause": root_cause,
            "hypotheses": hypotheses}[args.analysis](args)
