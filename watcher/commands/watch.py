"""`epochwatch watch --config FILE`: the daemon in the foreground (what systemd runs)."""

from __future__ import annotations

from argparse import Namespace

from watcher import logs
from watcher.commands._common import check_model, load, run_lock
from watcher.daemon import Daemon


def run(args: Namespace) -> int:
    cfg = load(args.config)
    check_model(cfg)
    logs.configure()
    for warning in cfg.warnings:  # e.g. the trainer does not sample every epoch
        logs.get_logger(run=cfg.run.name).warning("config warning", detail=warning)

    with run_lock(cfg):  # one daemon per run, held until this process ends
        return Daemon(cfg, until_trainer_exits=args.until_trainer_exits, once=args.once).run()
