"""`epochwatch evaluate CHECKPOINT --config FILE`: one checkpoint, one shot.

What `auto_test_epoch.py` did by hand (generate, score, decide, commit, log to Supabase),
through the same stages as the daemon, so the result is recorded exactly once: evaluating a
checkpoint the daemon already evaluated prints the recorded result instead.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from watcher import logs
from watcher.cli import CommandError
from watcher.commands._common import load


def run(args: Namespace) -> int:
    from watcher.daemon import Daemon
    from watcher.publish.publisher import decisions_from_dicts, one_line_verdict
    from watcher.settle import CheckpointInfo, NotReady, Rejected, inspect_checkpoint

    cfg = load(args.config)
    logs.configure()
    path = Path(args.checkpoint)
    if not path.is_file():
        raise CommandError(f"no such checkpoint file: {path}")
    # The checkpoint may live outside the watched folder: check it against its own folder.
    try:
        info = inspect_checkpoint(path, path.parent, cfg.run.output_name, cfg.run.max_train_epochs)
    except (NotReady, Rejected) as exc:
        raise CommandError(f"{path}: {exc}") from exc
    assert isinstance(info, CheckpointInfo)

    daemon = Daemon(cfg)
    daemon.open()
    try:
        daemon._record(info)
        ck = next(c for c in daemon.store.checkpoints(cfg.run.name) if c.sha256 == info.sha256)
        if ck.status != "evaluated":
            daemon._process(daemon.store.checkpoint(ck.id))
            ck = daemon.store.checkpoint(ck.id)
        if ck.status == "failed":
            raise CommandError(f"evaluation failed: {ck.error}")
        ev = next(e for e in daemon.store.evaluations(cfg.run.name) if e["checkpoint_id"] == ck.id)
        decisions = decisions_from_dicts(ev["metrics"].get("decisions", []))
        print(f"epoch {ev['epoch']}: {one_line_verdict(ev['metrics']['aggregate'], decisions)}")
        print(f"results: {ev['result_dir']}")
        print(f"commit:  {ev['git_commit']}")
    finally:
        daemon.publisher.worker.drain_once()
        daemon.close()
    return 0
