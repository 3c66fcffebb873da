"""SIGHUP (`systemctl reload`) re-reads the rules from the config file; a broken file is
refused and the rules in force stay."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.conftest import write_watch_config
from watcher.config import load_config
from watcher.daemon import Daemon

RULE = """
[[criteria]]
name = "only_rule"
metric = "style_quality"
comparison = ">="
threshold = 10
epoch = 2
mode = "by"
action = "alert"
"""


def test_sighup_reloads_the_rules_and_a_broken_file_keeps_them(tmp_path: Path) -> None:
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed")
    daemon = Daemon(load_config(config))
    assert [r.name for r in daemon.rules][0] == "green_background_by_epoch_4"  # plan defaults
    old = signal.signal(signal.SIGHUP, daemon._on_hup)
    try:
        config.write_text(config.read_text() + RULE)
        os.kill(os.getpid(), signal.SIGHUP)
        assert daemon._reload  # the handler only flags; the loop reloads between stages
        daemon._reload_config()
        assert [r.name for r in daemon.rules] == ["only_rule"]
        config.write_text(config.read_text().replace('threshold = 10', 'threshold = "ten"'))
        daemon._reload_config()
        assert [r.name for r in daemon.rules] == ["only_rule"]
    finally:
        signal.signal(signal.SIGHUP, old)
