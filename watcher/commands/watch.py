"""`epochwatch watch --config FILE`: the daemon in the foreground (what systemd runs)."""

from __future__ import annotations

from argparse import Namespace

from launcher.preflight import check_prompts, check_trainer, check_writable
from watcher import logs
from watcher.commands._common import check_model, load, run_lock
from watcher.daemon import Daemon
from watcher.ending import last_epoch_reached
from watcher.errors import CommandError, Interrupted
from watcher.gpumemory import GpuMemoryShort
from watcher.pipeline import PipelineError
from watcher.store import Store


def run(args: Namespace) -> int:
    cfg = load(args.config)
    check_model(cfg)
    check_prompts(cfg)
    check_writable(cfg, "run.state_dir", "results.repo")
    if args.once and cfg.trainer.command:  # the dry run before a launch checks what it needs
        check_trainer(cfg)
    logs.configure()
    for warning in cfg.warnings:  # e.g. the trainer does not sample every epoch
        logs.get_logger(run=cfg.run.name).warning("config warning", detail=warning)

    with run_lock(cfg):  # one daemon per run, held until this process ends
        daemon = Daemon(cfg, until_trainer_exits=args.until_trainer_exits, once=args.once)
        try:
            rc = daemon.run()
        except PipelineError as exc:  # the model named by model.base does not load
            raise CommandError(f"{cfg.path}: model.base: {exc}") from None
        except GpuMemoryShort as exc:  # model.on_gpu_memory_short = "refuse"
            raise CommandError(f"{cfg.path}: {exc}") from None
    if daemon.interrupted:  # Ctrl-C: 130, naming the last epoch reached
        with Store(cfg.state_db) as store:
            raise Interrupted(last_epoch_reached(store, cfg.run.name), cfg.max_train_epochs, "epochs")
    return rc
