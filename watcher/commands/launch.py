"""`epochwatch launch --config FILE`: start trainer + daemon, relay the stop decision, wait.

The launcher itself lives in `launcher/launch.py`; this is its command-line wiring.
"""

from __future__ import annotations

import sys
from argparse import Namespace

from launcher.launch import Launch
from launcher.preflight import check_launch
from watcher import logs
from watcher.commands._common import check_model, load


def run(args: Namespace) -> int:
    cfg = load(args.config)
    check_model(cfg)
    check_launch(cfg)
    logs.configure()
    for warning in cfg.warnings:  # e.g. the trainer does not sample every epoch
        print(f"epochwatch launch: warning: {warning}", file=sys.stderr)
    launch = Launch(cfg)
    try:
        rc = launch.run()
        if launch.interrupted:
            raise launch.interruption()
        return rc
    finally:
        launch.store.close()
