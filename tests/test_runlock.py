"""One daemon per run (watcher/runlock.py): a second writer of the same run is refused in one
line naming the holder's pid; a SIGKILLed holder never blocks its successor. Real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from watcher.runlock import RunLock, RunLocked
from watcher.samples import demo_set
from watcher.testing import write_trainer_source_config

REPO = Path(__file__).resolve().parents[1]
RUN = "LOCK_RUN"


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def wait_for(predicate, what: str, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def holder(state: Path, role: str) -> subprocess.Popen[str]:
    """A separate process that takes the lock and sleeps."""
    code = (f"import time; from watcher.runlock import RunLock; RunLock({str(state)!r}, {RUN!r}, "
            f"{role!r}).acquire(); print('held', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("role", ["daemon", "launch"])
def test_held_lock_names_holder_and_dies_with_it(tmp_path: Path, role: str) -> None:
    proc = holder(tmp_path / "state", role)
    try:
        with pytest.raises(RunLocked) as refused:
            RunLock(tmp_path / "state", RUN, role).acquire()
        message = str(refused.value)
        assert f"pid {proc.pid}" in message and f"kill {proc.pid}" in message and "\n" not in message
        # the other role is a different lock: a launcher beside its own daemon
        other = "launch" if role == "daemon" else "daemon"
        RunLock(tmp_path / "state", RUN, other).acquire().release()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with RunLock(tmp_path / "state", RUN, role) as lock:  # the kernel released it on SIGKILL
        assert lock.path.read_text().strip() == str(os.getpid())


def test_second_watch_is_refused_while_status_reads(tmp_path: Path) -> None:
    config = write_trainer_source_config(tmp_path, demo_set.write_prompts(tmp_path / "prompts.txt"),
                                         name=RUN)
    (tmp_path / "output" / "sample").mkdir(parents=True)
    first = subprocess.Popen([sys.executable, "-m", "watcher", "watch", "--config", str(config)],
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock_file = tmp_path / "state" / f"{RUN}.daemon.lock"
    try:
        wait_for(lambda: lock_file.exists() and lock_file.read_text().strip() == str(first.pid),
                 "the first daemon's lock")
        second = cli("watch", "--config", str(config), "--once")
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1
        assert f"pid {first.pid}" in second.stderr and f"kill {first.pid}" in second.stderr
        images = demo_set.build(tmp_path / "replay", story=demo_set.DEMO_STORY[:1])
        replay = cli("replay", "--config", str(config), "--images", str(images))
        assert replay.returncode == 2 and f"pid {first.pid}" in replay.stderr, replay.stderr
        assert cli("status", "--config", str(config)).returncode == 0  # readers are not locked
        assert first.poll() is None  # the first daemon is untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    # SIGKILL leaves no one to clean up: the successor starts all the same
    after = cli("watch", "--config", str(config), "--once")
    assert after.returncode == 0, after.stderr


def test_evaluate_beside_a_live_daemon_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    from watcher.testing import lora_bytes, write_watch_config

    config = write_watch_config(tmp_path, tiny_model_dir, name=RUN, epochs=3)
    lora = tmp_path / "output" / "e2e_lora-000001.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(lora_bytes(1, "e2e_lora"))
    proc = holder(tmp_path / "state", "daemon")
    try:
        refused = cli("evaluate", str(lora), "--config", str(config))
        assert refused.returncode == 2 and f"pid {proc.pid}" in refused.stderr, refused.stderr
        assert not (tmp_path / "results").exists()  # nothing was written
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
