"""Helpers for end-to-end tests that drive real `epochwatch` processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watcher.store import Store


def epochwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args]


def start(args: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log, "ab")  # noqa: SIM115 - handed to the child, closed when the test ends
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **kw.pop("env", {})}
    return subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=env, **kw)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def status_json(config: Path) -> dict[str, Any]:
    out = subprocess.run(epochwatch("status", "--config", str(config), "--json"),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def checkpoint_statuses(db: Path, run: str) -> dict[int | None, str]:
    if not db.exists():
        return {}
    with Store(db) as s:
        return {c.epoch: c.status for c in s.checkpoints(run)}


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(timeout)


def commit_subjects(repo: Path) -> list[str]:
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%s"], capture_output=True,
                         text=True, check=True)
    return out.stdout.splitlines()


def drain_pty(leader: int) -> bytes:
    """All a pseudo-terminal shows until its last writer has closed it (Linux then answers
    EIO), and close it."""
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    return shown


def passing_stop_rule(epoch: int) -> str:
    """A `[[criteria]]` stop rule every run passes (style_quality is never below 0), judged
    by `epoch`: the trainer runs to its last file."""
    return f"""
[[criteria]]
name = "style_known_by_epoch_{epoch}"
metric = "style_quality"
comparison = ">="
threshold = 0
epoch = {epoch}
mode = "by"
action = "stop"
"""
