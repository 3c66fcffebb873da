"""`epochwatch report --config FILE`: report.md, grid.png and curves.png for the run."""

from __future__ import annotations

from argparse import Namespace

from watcher.cli import CommandError
from watcher.commands._common import load
from watcher.store import Store


def run(args: Namespace) -> int:
    cfg = load(args.config)
    if not cfg.state_db.exists():
        raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")
    from watcher.report.report import write_report

    with Store(cfg.state_db) as store:
        if store.run_row(cfg.run.name) is None:
            raise CommandError(f"run {cfg.run.name} is not in {cfg.state_db}")
        path = write_report(cfg, store)
        row = store.run_row(cfg.run.name) or {}
    print(f"verdict: {row.get('verdict') or 'pending'}; best epoch: {row.get('best_epoch') or '-'}")
    for name in ("grid.png", "curves.png", "report.md"):
        print(path.parent / name)
    return 0
