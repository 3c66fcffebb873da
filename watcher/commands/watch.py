"""`epochwatch watch --config FILE`: the daemon in the foreground (what systemd runs)."""

from __future__ import annotations

from argparse import Namespace

from launcher.preflight import check_trainer, check_writable
from watcher import logs
from watcher.cli import CommandError
from watcher.commands._common import check_model, load, run_lock
from watcher.daemon import Daemon
from watcher.pipeline import PipelineError


def run(args: Namespace) -> int:
    cfg = load(args.config)
    check_model(cfg)
    check_writable(cfg, "run.state_dir", "results.repo")
    if args.once and cfg.trainer.command:  # the dry run before a launch checks what it needs
        check_trainer(cfg)
    logs.configure()
    for warning in cfg.warnings:  # e.g. the trainer does not sample every epoch
        logs.get_logger(run=cfg.run.name).warning("config warning", detail=warning)

    with run_lock(cfg):  # one daemon per run, held until this process ends
        try:
            return Daemon(cfg, until_trainer_exits=args.until_trainer_exits, once=args.once).run()
        except PipelineError as exc:  # the model named by model.base does not load
            raise CommandError(f"{cfg.path}: model.base: {exc}") from None
