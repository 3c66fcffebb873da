"""`epochwatch watch` speaks sd_notify the way its systemd unit expects (Type=notify + WatchdogSec).

The test owns the notify socket, as systemd would: READY=1 arrives once the pipeline is
loaded and the output folder is watched (a checkpoint written after READY=1 is evaluated),
WATCHDOG=1 keeps arriving while the daemon runs, stops while its process is frozen
(SIGSTOP: what a hung daemon looks like from outside), resumes after SIGCONT, and SIGTERM
ends with STOPPING=1 and exit status 0. That the pings come from the main loop and not from
a thread is shown in tests/test_sdnotify.py, with a loop blocked in a system call.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

WATCHDOG_S = 1.0  # WATCHDOG_USEC for the daemon: a ping at most every 0.5 s


class NotifyReceiver:
    """A bound unix datagram socket drained by a thread (a full queue would block the sender)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._done.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode())

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, wanted: str, after: int = 0, timeout: float = 60.0,
                 sender: subprocess.Popen[bytes] | None = None) -> int:
        """Index of the first message starting with `wanted` at or after index `after`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for i, message in enumerate(self.snapshot()[after:], start=after):
                if message.startswith(wanted):
                    return i
            if sender is not None and sender.poll() is not None:
                break  # it exited: nothing more will come
            time.sleep(0.05)
        raise AssertionError(f"no {wanted!r}; got {self.snapshot()[after:]!r}")

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[NotifyReceiver]:
    r = NotifyReceiver(tmp_path / "notify.sock")
    yield r
    r.close()


def _write_config(workdir: Path, model_dir: Path) -> Path:
    (workdir / "output").mkdir()
    config = workdir / "config.toml"
    config.write_text(
        f"""\
[run]
name = "NOTIFY_TEST"
output_dir = "output"
output_name = "notify_lora"
max_train_epochs = 2
save_every_n_epochs = 1
state_dir = "state"

[model]
base = "{model_dir}"
device = "cpu"
dtype = "float32"
steps = 2
width = 128
height = 128
batch_size = 1

[sampling]
seeds = [1]
prompts = [ {{ text = "pixel art portrait, solid green background (#00ff00)" }} ]

[results]
repo = "results"
dir = "runs"

[trainer]
command = ["true"]

[daemon]
rescan_interval_s = 0.5
settle_interval_s = 0.1

[supabase]
enabled = false
"""
    )
    return config


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SUPABASE_URL", "SUPABASE_KEY", "EPOCHWATCH_ALERT_URLS",
                        "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", **extra)
    return env


def _epochwatch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _epoch_status(config: Path, epoch: int) -> str | None:
    proc = _epochwatch("status", "--config", str(config), "--json", timeout=60)
    assert proc.returncode == 0, proc.stderr
    for entry in json.loads(proc.stdout)["epochs"]:
        if entry["epoch"] == epoch:
            return str(entry["status"])
    return None


def test_watch_notifies_ready_then_pings_and_pings_stop_when_frozen(
    tmp_path: Path, tiny_model_dir: Path, receiver: NotifyReceiver
) -> None:
    config = _write_config(tmp_path, tiny_model_dir)
    log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "watcher", "watch", "--config", str(config)],
        env=_env(NOTIFY_SOCKET=str(receiver.path), WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6))),
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )
    try:
        ready = receiver.wait_for("READY=1", timeout=300, sender=daemon)

        # The folder is watched once READY=1 is out: a checkpoint written now gets evaluated.
        trained = _epochwatch("simtrain", "--config", str(config), "--epochs", "1", "--interval", "0")
        assert trained.returncode == 0, trained.stderr
        end = time.monotonic() + 300
        while (status := _epoch_status(config, 1)) != "evaluated" and time.monotonic() < end:
            assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
            time.sleep(1)
        assert status == "evaluated", (tmp_path / "daemon.log").read_text()[-3000:]

        # Periodic pings while it runs.
        start = len(receiver.snapshot())
        time.sleep(4 * WATCHDOG_S)
        assert receiver.snapshot()[start:].count("WATCHDOG=1") >= 3
        assert receiver.snapshot()[ready + 1:].count("WATCHDOG=1") >= 3

        # Frozen: no pings for five watchdog intervals (systemd would restart it) ...
        daemon.send_signal(signal.SIGSTOP)
        time.sleep(0.5)  # let datagrams already sent land
        frozen_at = len(receiver.snapshot())
        time.sleep(5 * WATCHDOG_S)
        assert receiver.snapshot()[frozen_at:] == []
        # ... and they resume once it runs again.
        daemon.send_signal(signal.SIGCONT)
        receiver.wait_for("WATCHDOG=1", after=frozen_at, timeout=30)

        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=120)
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGCONT)
            daemon.kill()
            daemon.wait()
        log.close()
        tail = (tmp_path / "daemon.log").read_text()[-3000:]
        print(tail)  # shown by pytest when the test fails
    assert rc == 0, (tmp_path / "daemon.log").read_text()[-3000:]
    receiver.wait_for("STOPPING=1", after=frozen_at, timeout=10)
