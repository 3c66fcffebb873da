"""One writer per run: a lock file in the state folder, held for the writer's whole life.

`fcntl.flock` on an open file: the kernel drops the lock when the holder's last descriptor
closes, on any exit (SIGKILL and power loss included), so a dead daemon never blocks its
successor and no stale-pid cleanup is needed. The holder writes its pid into the file so a
refused second writer can say whom to stop. Two roles: `daemon` (watch, evaluate, replay:
whatever evaluates and publishes the run's epochs) and `launch` (the launcher that starts
the trainer). `status`, `report`, `serve` only read and never take a lock.

Standard library only: `watch --once`'s refusals must come before any slow import.
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from types import TracebackType


class RunLocked(Exception):
    """Another live process holds this run's lock; the message is one line naming it."""


def _service_of(pid: int) -> str | None:
    """The systemd unit the process runs in (from its cgroup), e.g. epochwatch-watch@x.service."""
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    units = re.findall(r"/([^/\s]+\.service)$", text, re.MULTILINE)
    return units[-1] if units and not units[-1].startswith("user@") else None


def stop_hint(pid: int) -> str:
    unit = _service_of(pid)
    return f"systemctl stop {unit}" if unit else f"kill {pid}"


class RunLock:
    """`with RunLock(state_dir, run, "daemon"):` ... refuses (RunLocked) when held elsewhere."""

    def __init__(self, state_dir: Path, run: str, role: str = "daemon") -> None:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", run)
        self.path = Path(state_dir) / f"{safe}.{role}.lock"
        self.run, self.role = run, role
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise RunLocked(self._refusal(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _refusal(self, holder: str) -> str:
        what = "a daemon" if self.role == "daemon" else "a launcher"
        if not holder.isdigit():
            return f"run {self.run} already has {what} running (lock {self.path})"
        pid = int(holder)
        return (f"run {self.run} already has {what} running (pid {pid}); stop it first "
                f"({stop_hint(pid)}) or wait for it to end")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays (its pid is stale)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
