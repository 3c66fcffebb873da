"""Pushes to `[results] remote` from the durable outbox: a remote that is down never blocks an
epoch, and every commit reaches it once it is back, across a daemon restart too. The remote is
a real bare repository on disk, made unreachable by renaming it away."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.testing import FakePipeline, write_watch_config


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    bare = tmp_path / "remote.git"
    _git("init", "-q", "--bare", "-b", "main", str(bare))
    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="PUSH_RUN")
    text = config.read_text().replace('dir = "runs"\n', 'dir = "runs"\nremote = "origin"\n')
    config.write_text(text + "\n[supabase]\nenabled = false\nretry_max_s = 1.0\n")
    results = tmp_path / "results"
    _git("init", "-q", "-b", "main", str(results))
    _git("-C", str(results), "remote", "add", "origin", str(bare))
    return config, bare


def _epochs(path: EpochPath, tmp_path: Path, epochs: range) -> list[float]:
    pipeline, seconds = FakePipeline(), []
    for epoch in epochs:
        ck = path.add_source(tmp_path / f"lora-{epoch:06d}.safetensors", epoch, f"{epoch:064x}", 10)
        start = time.monotonic()
        path.run_checkpoint(pipeline, ck)
        seconds.append(time.monotonic() - start)
    return seconds


def _git_outbox(path: EpochPath) -> dict[str, int]:
    rows = path.store.conn.execute(
        "SELECT status, COUNT(*) FROM outbox WHERE channel='git' GROUP BY status").fetchall()
    return {r[0]: r[1] for r in rows}


def _wait_pushed(path: EpochPath, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _git_outbox(path).get("pending") and time.monotonic() < deadline:
        time.sleep(0.2)


def test_a_down_remote_blocks_nothing_and_loses_no_commit(tmp_path: Path) -> None:
    config, bare = _setup(tmp_path)
    away = tmp_path / "remote-away.git"
    path = EpochPath.open(load_config(config))
    results = str(path.cfg.results_repo)
    try:
        _epochs(path, tmp_path, range(1, 3))
        _wait_pushed(path)
        assert _git("-C", str(bare), "rev-parse", "main") == _git("-C", results, "rev-parse", "HEAD")

        bare.rename(away)  # the remote goes down
        down = _epochs(path, tmp_path, range(3, 6))
        time.sleep(1.5)  # the worker tries and fails meanwhile
        failed = path.store.conn.execute(
            "SELECT MAX(attempts), MAX(last_error) FROM outbox WHERE channel='git' "
            "AND status='pending'").fetchone()
        assert failed[0] >= 1 and "push to origin failed" in failed[1]
        assert len(_git("-C", results, "log", "--format=%H").split()) == 5  # all committed locally
    finally:
        path.close()  # stopped while the remote is still down: the pushes stay queued

    assert max(down) < 30  # an epoch never waited on the remote (each tries no push itself)
    away.rename(bare)  # the remote is back; a new daemon takes over the queue
    path = EpochPath.open(load_config(config))
    try:
        _wait_pushed(path)
        assert _git_outbox(path) == {"delivered": 5}  # one per epoch commit
        grid = path.cfg.run_results_dir / "grid.png"
        assert grid.exists()  # redrawn in the working tree after every epoch ...
        assert _git("-C", results, "log", "--format=%H", "--", str(grid)) == ""  # ... not committed
        path.end_run(last_epoch_done=True)
        _wait_pushed(path)
    finally:
        path.close()
    assert _git("-C", str(bare), "rev-parse", "main") == _git("-C", results, "rev-parse", "HEAD")
    local = _git("-C", results, "log", "--format=%H").split()
    assert _git("-C", str(bare), "log", "--format=%H", "main").split() == local and len(local) == 6
    # grid.png and curves.png: committed once, with the final report.
    files = _git("-C", results, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(Path(f).name for f in files) == ["curves.png", "grid.png", "report.md"]
    assert len(_git("-C", results, "log", "--format=%H", "--", "runs/PUSH_RUN/grid.png").split()) == 1
