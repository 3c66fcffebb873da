"""`epochwatch report --config FILE`: report.md, grid.png and curves.png for the run."""

from __future__ import annotations

from argparse import Namespace

from watcher.cli import CommandError
from watcher.commands._common import load
from watcher.criteria import Rule
from watcher.report.history import load_run
from watcher.report.plan import finished, verdict_of
from watcher.report.report import write_report
from watcher.store import Store


def run(args: Namespace) -> int:
    cfg = load(args.config)
    if not cfg.state_db.exists():
        raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")

    with Store(cfg.state_db) as store:
        if store.run_row(cfg.run.name) is None:
            raise CommandError(f"run {cfg.run.name} is not in {cfg.state_db}")
        path = write_report(cfg, store)

        run_history = load_run(store, cfg.run.name)
    verdict = verdict_of(run_history, [Rule.from_config(c) for c in cfg.criteria])
    so_far = "" if finished(run_history) or verdict["verdict"] == "pending" else (
        f" so far ({len(run_history.epochs)} of {run_history.max_epochs or '?'} epochs)")
    best = verdict["best_epoch"]
    print(f"verdict: {verdict['verdict']}{so_far}; best epoch: {'-' if best is None else best}")
    for name in ("grid.png", "curves.png", "report.md"):
        print(path.parent / name)
    return 0
