"""Trainer process supervision (Linux): start the trainer in its own session and stop its
whole process group, but only if it is still the process that was started.

Why a process group: `accelerate launch` starts the real trainer as a child and does not
forward signals, so SIGTERM must go to the group (`os.killpg`), then SIGKILL after a grace
period. Why the identity check: the state database may hold a stale record (the trainer died,
the machine rebooted) whose pid now belongs to someone else. Before any signal the leader is
pinned with a pidfd and its start time and process group are compared with the record;
any mismatch refuses the stop and signals nothing.

Works when the caller is not the trainer's parent (the daemon under systemd): exit is seen
through the pidfd (or /proc), and a zombie whose parent has not reaped it yet counts as gone.
"""

from __future__ import annotations

import json
import os
import select
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from launcher.identity import START_TIME_TOLERANCE_S, identity_matches, process_alive  # noqa: F401 - kept here too
from watcher import logs

if TYPE_CHECKING:  # annotations only: the launcher needs no more of the watcher
    from watcher.records import TrainerRow

POLL_S = 0.05
KILL_WAIT_S = 5.0


class SpawnError(RuntimeError):
    """The trainer could not be started (one-line reason)."""


@dataclass(frozen=True)
class ExitStatus:
    returncode: int
    cause: str  # "exited 0", "exited 3", "killed by SIGTERM", ...


@dataclass(frozen=True)
class StopResult:
    outcome: str  # terminated | killed | already_gone | refused
    detail: str
    signalled: tuple[int, ...] = ()  # group members alive when the first signal went out
    remaining: tuple[int, ...] = ()  # still alive after SIGKILL and KILL_WAIT_S (D state)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")


def describe_exit(returncode: int | None) -> str:
    """`exited 0`, `exited 3`, `killed by SIGTERM`; 128+N from a shell names the signal too."""
    if returncode is None:
        return "running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if 128 < returncode <= 128 + 64:
        try:
            return f"exited {returncode} (128+{signal.Signals(returncode - 128).name})"
        except ValueError:
            pass
    return f"exited {returncode}"


def trainer_state(returncode: int, stop_requested: bool = False) -> str:
    """The store's trainer state for an ended trainer: exited | stopped | killed | crashed.

    After a stop we asked for, the trainer counts as stopped whatever its code: a wrapper
    such as accelerate may exit 0 once its child is gone."""
    if stop_requested:
        return "killed" if returncode == -signal.SIGKILL else "stopped"
    return "exited" if returncode == 0 else "crashed"


class TrainerProcess:
    """A trainer started by `spawn`: the leader of its own session and process group."""

    def __init__(self, popen: subprocess.Popen[bytes], argv: list[str], cwd: Path,
                 log_path: Path, start_time: float) -> None:
        self.popen = popen
        self.argv = argv
        self.cwd = cwd
        self.log_path = log_path
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session: pid == pgid == sid
        self.start_time = start_time
        self._noted = False

    def _note_exit(self, returncode: int) -> ExitStatus:
        status = ExitStatus(returncode, describe_exit(returncode))
        if not self._noted:
            self._noted = True
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(f"--- epochwatch: trainer {status.cause} at {_iso(time.time())} ---\n")
        return status

    def poll(self) -> int | None:
        rc = self.popen.poll()
        if rc is not None:
            self._note_exit(rc)
        return rc

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """Wait for the exit (subprocess.TimeoutExpired after timeout) and say why it ended."""
        return self._note_exit(self.popen.wait(timeout))

    def stop(self, grace_s: float, log: logs.Logger | None = None) -> StopResult:
        return stop_group(self.pid, self.pgid, self.start_time, grace_s, log=log)

    def record(self) -> dict[str, Any]:
        """Fields for `Store.set_trainer`."""
        return {"pid": self.pid, "pgid": self.pgid, "start_time": self.start_time,
                "command_json": json.dumps(self.argv), "cwd": str(self.cwd),
                "log_path": str(self.log_path), "state": "running", "started_at": self.start_time}


def spawn(argv: Sequence[str], cwd: str | Path, log_path: str | Path,
          env: Mapping[str, str] | None = None) -> TrainerProcess:
    """Start `argv` in its own session; stdout and stderr are appended to `log_path`.

    `env` replaces the environment (default: inherit). PYTHONUNBUFFERED=1 is added unless
    set, so a Python trainer's lines reach the log as they are printed (`tail -f` it).
    """
    args = [str(a) for a in argv]
    if not args:
        raise SpawnError("trainer command is empty")
    folder = Path(cwd)
    if not folder.is_dir():
        raise SpawnError(f"trainer cwd {folder} is not a folder")
    log_file = Path(log_path)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_file, "ab", buffering=0) as log:
        command = logs.redact(shlex.join(args))
        log.write(f"--- epochwatch: starting {command} in {folder} at {_iso(time.time())} ---\n"
                  .encode())
        try:
            popen = subprocess.Popen(args, cwd=folder, env=full_env, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True, close_fds=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            log.write(f"--- epochwatch: failed to start: {reason} ---\n".encode())
            raise SpawnError(f"cannot start trainer {args[0]!r}: {reason}") from exc
    # Our unreaped child stays in /proc even if it has already exited.
    start_time = psutil.Process(popen.pid).create_time()
    return TrainerProcess(popen, args, folder, log_file, start_time)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`."""
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                members.append(pid)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError, psutil.AccessDenied):
            continue
    return members


def _open_pidfd(pid: int) -> int | None:
    """A pidfd pinning `pid`; None where the kernel lacks pidfds. ProcessLookupError if gone."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise
    except OSError:
        return None


def _leader_exited(pidfd: int | None, pid: int, timeout_s: float) -> bool:
    """Has the leader exited (zombie or reaped)? Waits up to timeout_s on the pidfd."""
    if pidfd is not None:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout_s * 1000))))
    time.sleep(timeout_s)
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def _check_identity(pid: int, pgid: int, start_time: float) -> str | None:
    """None when the live leader matches the record, "gone" when it has exited, or why not."""
    try:
        proc = psutil.Process(pid)
        started = proc.create_time()
        if abs(started - start_time) > START_TIME_TOLERANCE_S:
            return (f"pid {pid} is now another process (started {_iso(started)}, the record says "
                    f"{_iso(start_time)}): stale trainer record")
        if proc.status() == psutil.STATUS_ZOMBIE:
            return "gone"
        actual = os.getpgid(pid)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return "gone"
    except (psutil.AccessDenied, PermissionError) as exc:
        return f"cannot inspect pid {pid}: {exc}"
    if actual != pgid:
        return f"pid {pid} is in process group {actual}, not {pgid}: stale trainer record"
    return None


def _orphans_mismatch(pgid: int, start_time: float) -> str | None:
    """Survivors of a group whose leader is gone must have started after the leader."""
    for member in group_members(pgid):
        try:
            started = psutil.Process(member).create_time()
        except psutil.NoSuchProcess:
            continue
        if started < start_time - START_TIME_TOLERANCE_S:
            return (f"process group {pgid} holds pid {member}, started {_iso(started)} before "
                    f"the trainer ({_iso(start_time)}): stale trainer record")
    return None


def _wait_group_gone(pidfd: int | None, pid: int, pgid: int, timeout_s: float,
                     leader_gone: bool) -> tuple[bool, bool]:
    """Wait until the leader has exited and no live process is left in the group.
    Returns (everything gone, leader gone)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = deadline - time.monotonic()
        if not leader_gone:
            leader_gone = _leader_exited(pidfd, pid, min(POLL_S, max(left, 0.0)))
        elif left > 0:
            time.sleep(min(POLL_S, left))
        if leader_gone and not group_members(pgid):
            return True, True
        if time.monotonic() >= deadline:
            return False, leader_gone


def stop_group(pid: int, pgid: int, start_time: float, grace_s: float, log: logs.Logger | None = None,
               *, kill_wait_s: float = KILL_WAIT_S) -> StopResult:
    """SIGTERM the trainer's process group, wait up to grace_s, then SIGKILL what is left.

    Only after the leader (pinned by a pidfd) matches the record: same start time (within
    START_TIME_TOLERANCE_S) and process group. A mismatch gives "refused" and no signal; an
    exited leader with no live group members gives "already_gone"; an exited leader whose
    children live on (orphans still in the group) gets them stopped the same way.
    """
    log = log or logs.get_logger()
    bound = log.bind(pid=pid, pgid=pgid)

    def refuse(detail: str) -> StopResult:
        bound.error("trainer stop refused", detail=detail)
        return StopResult("refused", detail)

    if not isinstance(pid, int) or not isinstance(pgid, int) or pid <= 1 or pgid <= 1:
        return refuse(f"invalid trainer record (pid {pid!r}, pgid {pgid!r})")
    if start_time is None:
        return refuse(f"trainer record for pid {pid} has no start time")
    if pgid in (os.getpgid(0), os.getsid(0)) or pid == os.getpid():
        return refuse(f"process group {pgid} is this process's own: refusing to signal it")
    grace_s = max(0.0, float(grace_s))

    try:
        pidfd = _open_pidfd(pid)
    except ProcessLookupError:
        pidfd, leader_gone = None, True
    else:
        leader_gone = False
    try:
        if not leader_gone:
            problem = _check_identity(pid, pgid, start_time)
            if problem == "gone":
                leader_gone = True
            elif problem:
                return refuse(problem)
        if leader_gone:
            problem = _orphans_mismatch(pgid, start_time)
            if problem:
                return refuse(problem)
            if not group_members(pgid):
                bound.info("trainer already gone")
                return StopResult("already_gone", f"pid {pid} has already exited")
        signalled = tuple(group_members(pgid))
        try:
            os.killpg(pgid, signal.SIGTERM)
            os.killpg(pgid, signal.SIGCONT)  # a stopped member must run to handle SIGTERM
        except ProcessLookupError:
            return StopResult("terminated", f"process group {pgid} exited as SIGTERM was sent",
                              signalled)
        bound.info("SIGTERM sent to trainer group", members=list(signalled), grace_s=grace_s)
        gone, leader_gone = _wait_group_gone(pidfd, pid, pgid, grace_s, leader_gone)
        if gone:
            count = f"{len(signalled)} process" + ("es" if len(signalled) != 1 else "")
            detail = f"process group {pgid} ({count}) ended after SIGTERM"
            bound.info("trainer terminated", detail=detail)
            return StopResult("terminated", detail, signalled)
        left = group_members(pgid)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        bound.warning("SIGKILL sent to trainer group after grace", members=left, grace_s=grace_s)
        gone, _ = _wait_group_gone(pidfd, pid, pgid, kill_wait_s, leader_gone)
        remaining = () if gone else tuple(group_members(pgid))
        detail = (f"process group {pgid} still had {len(left)} processes {grace_s:g} s after "
                  f"SIGTERM; SIGKILL sent")
        if remaining:
            detail += f"; still present: {list(remaining)}"
        bound.warning("trainer killed", detail=detail)
        return StopResult("killed", detail, signalled, remaining)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def stop_from_record(record: TrainerRow | None, grace_s: float,
                     log: logs.Logger | None = None) -> StopResult:
    """`stop_group` on a trainer row of the state database (`Store.trainer(run)`), as the
    daemon or the launcher reads it: a missing row or field is refused, never guessed."""
    if not record:
        return StopResult("refused", "no trainer record for this run")
    pid, pgid, start_time = record.pid, record.pgid, record.start_time
    if pid is None or pgid is None or start_time is None:
        missing = [k for k, v in (("pid", pid), ("pgid", pgid), ("start_time", start_time)) if v is None]
        detail = f"trainer record lacks {', '.join(missing)}"
        (log or logs.get_logger()).error("trainer stop refused", detail=detail)
        return StopResult("refused", detail)
    return stop_group(pid, pgid, start_time, grace_s, log=log)
