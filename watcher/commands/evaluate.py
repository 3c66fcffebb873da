"""`epochwatch evaluate CHECKPOINT --config FILE`: one checkpoint, one shot.

What `auto_test_epoch.py` did by hand (generate, score, decide, commit, log to Supabase),
through the daemon's own epoch path (`watcher.epoch.path.EpochPath`), so the result is recorded
exactly once: evaluating a checkpoint the daemon already evaluated prints the recorded
result instead.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from watcher import logs
from watcher.commands._common import check_model, load, run_lock
from watcher.config import WatchConfig
from watcher.errors import CommandError

if TYPE_CHECKING:
    from watcher.epoch.settle import CheckpointInfo


def run(args: Namespace) -> int:
    # The epoch path brings torch and diffusers: imported when this command runs, not when
    # the CLI starts (status, score, downscale must never load them).
    from watcher.epoch.settle import NotReady, Rejected, inspect_checkpoint

    cfg = load(args.config)
    check_model(cfg)
    logs.configure()
    path = Path(args.checkpoint)
    if not path.is_file():
        raise CommandError(f"no such checkpoint file: {path}")
    # The checkpoint may live outside the watched folder: check it against its own folder.
    try:
        info = inspect_checkpoint(path, path.parent, cfg.output_name, cfg.max_train_epochs)
    except (NotReady, Rejected) as exc:
        raise CommandError(f"{path}: {exc}") from exc

    with run_lock(cfg):  # the daemon's writes: never beside a live daemon of the run
        return _evaluate(cfg, info)


def _evaluate(cfg: WatchConfig, info: CheckpointInfo) -> int:
    from watcher.epoch.path import EpochPath
    from watcher.gpumemory import shortfall
    from watcher.pipeline import SamplePipeline
    from watcher.summary import one_line_verdict

    epochs = EpochPath.open(cfg)
    try:
        ck, _ = epochs.record(info)
        assert ck is not None
        if ck.status != "evaluated":
            pipeline = SamplePipeline(cfg.base_model, device=cfg.model.device,
                                      dtype=cfg.model.dtype, scheduler=cfg.model.scheduler,
                                      family=cfg.model.family)
            if (short := shortfall(cfg.base_model, pipeline.device, pipeline.dtype,
                                   cfg.evaluation.clip_model)) is not None:
                raise CommandError(f"{short}; not loaded beside the trainer")
            pipeline.load()
            try:
                epochs.run_checkpoint(pipeline, ck)
            except Exception as exc:  # noqa: BLE001 - recorded as failed, then reported
                epochs.fail(ck, exc)
            ck = epochs.store.checkpoint(ck.id)
        if ck.status == "failed":
            raise CommandError(f"evaluation failed: {ck.error}")
        ev = next(e for e in epochs.store.evaluations(cfg.run.name) if e.checkpoint_id == ck.id)
        print(f"epoch {ev.epoch}: {one_line_verdict(ev.aggregate, ev.decisions)}")
        print(f"results: {ev.result_dir}")
        print(f"commit:  {ev.git_commit}")
    finally:
        epochs.close()
    return 0
