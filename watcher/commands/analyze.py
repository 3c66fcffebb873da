"""`epochwatch analyze correlations|root-cause|hypotheses`: cross-run analysis over the state
stores and the baselines in configs/baselines/."""

from __future__ import annotations

import os
from argparse import Namespace
from pathlib import Path
from typing import Any

from watcher.cli import CommandError
from watcher.commands._common import load
from watcher.config import WatchConfig
from watcher.report.baselines import BaselineError, load_baselines
from watcher.report.history import RunHistory, load_run, load_store
from watcher.store import Store


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

    paths = [Path(p) for p in args.store]
    if args.config:
        paths.insert(0, load(args.config).state_db)
    if not paths:
        raise CommandError("give --config FILE or at least one --store state.db")
    runs: dict[str, RunHistory] = {}
    for path in dict.fromkeys(p.resolve() for p in paths):
        try:
            stored = load_store(path)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        for run in stored:
            if run.name in runs:
                raise CommandError(f"run {run.name} is in two stores ({runs[run.name].source}, {path})")
            runs[run.name] = run
    for base in _baselines():
        runs.setdefault(base.name, base)
    every = list(runs.values())
    print(render_correlations(every, correlate(every)))
    return 0


def root_cause(args: Namespace) -> int:
    from watcher.report.rootcause import render_findings, root_cause

    run = _this_run(load(args.config))
    print(render_findings(run, root_cause(run)))
    return 0


def _write_config(cfg: WatchConfig, run: RunHistory, items: list[Any], out: Path) -> None:
    from watcher.report.kohyaedit import KohyaEditError, edit_kohya_config

    source = cfg.run.kohya_config
    if source is None:
        raise CommandError("this run's config has no run.kohya_config: nothing to base the next one on")
    chosen = next((h for h in items if h.changes), None)
    if chosen is None:
        raise CommandError("no hypothesis changes the kohya config (the ones listed need data work)")
    if out.resolve() == Path(source).resolve():
        raise CommandError(f"--write-config would overwrite this run's own kohya config {source}")
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
    from watcher.report.hypotheses import branch, hypotheses, render_hypotheses
    from watcher.report.rootcause import root_cause

    cfg = load(args.config)
    run = _this_run(cfg)
    findings = root_cause(run)
    items = hypotheses(run, findings, dict(cfg.kohya), _baselines())
    print(render_hypotheses(run, branch(run, findings), items))
    if args.write_config:
        _write_config(cfg, run, items, Path(args.write_config))
    return 0


def run(args: Namespace) -> int:
    return {"correlations": correlations, "root-cause": root_cause,
            "hypotheses": hypotheses}[args.analysis](args)
