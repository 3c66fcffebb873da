"""`epochwatch watch --config FILE`: the daemon in the foreground (what systemd runs)."""

from __future__ import annotations

from argparse import Namespace

from watcher import logs
from watcher.commands._common import load
from watcher.daemon import Daemon


def run(args: Namespace) -> int:
    cfg = load(args.config)
    logs.configure()

    return Daemon(cfg, until_trainer_exits=args.until_trainer_exits, once=args.once).run()
