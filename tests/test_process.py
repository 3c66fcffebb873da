"""Trainer supervision with real child processes and real signals: the group stop, the
grace period then SIGKILL, the identity checks against pid reuse, and exit causes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import structlog.testing

from launcher.identity import identity_matches
from launcher.process import (
    SpawnError,
    TrainerProcess,
    describe_exit,
    spawn,
    stop_from_record,
    stop_group,
    trainer_state,
)

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable


def wait_for(log: Path, pattern: str, timeout_s: float = 20.0) -> re.Match[str]:
    """Wait until the log holds a line matching pattern (the trainer says it is ready)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log.read_text() if log.exists() else ""
        found = re.search(pattern, text, re.MULTILINE)
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{pattern!r} not in {log}:\n{log.read_text() if log.exists() else ''}")


def gone(pid: int) -> bool:
    """No such process, or a zombie (dead, not reaped yet)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return path


def ready_trainer(tmp_path: Path, started: list[TrainerProcess], name: str,
                  body: str) -> tuple[TrainerProcess, int]:
    """The script spawned as a trainer, its child ready: (the trainer, the child's pid)."""
    log = tmp_path / "trainer.log"
    trainer = spawn([str(script(tmp_path, name, body))], tmp_path, log)
    started.append(trainer)
    child = int(wait_for(log, r"^child (\d+)$").group(1))
    wait_for(log, "^child ready$")
    return trainer, child


@pytest.fixture
def started() -> Iterator[list[TrainerProcess]]:
    """Trainers a test starts; any left alive are killed (by their own group) at the end."""
    procs: list[TrainerProcess] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pgid, signal.SIGKILL)
            p.wait(10)


# Like `accelerate launch`: the leader starts the real trainer as a child and waits on it.
ACCELERATE_LIKE = f"""\
{PY} -c "import time; print('child ready', flush=True); time.sleep(300)" &
echo "child $!"
wait
"""

# A trainer that traps SIGTERM and whose child ignores it: only SIGKILL ends them.
STUBBORN = f"""\
trap 'echo "leader got TERM, carrying on"' TERM
{PY} -c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('child ready', flush=True); time.sleep(300)" &
echo "child $!"
while :; do sleep 0.1; done
"""


def test_spawn_own_session_log_and_exit_cause(tmp_path: Path, started: list[TrainerProcess]) -> None:
    log = tmp_path / "logs" / "trainer.log"
    trainer = spawn(["sh", "-c", "echo to stdout; echo to stderr >&2; exec sleep 300"],
                    cwd=tmp_path, log_path=log, env={"PATH": os.environ["PATH"], "SECRET": "x"})
    started.append(trainer)
    wait_for(log, "^to stderr$")
    assert trainer.pgid == trainer.pid == os.getpgid(trainer.pid) == os.getsid(trainer.pid)
    assert os.getpgid(trainer.pid) != os.getpgid(0)
    assert trainer.start_time == psutil.Process(trainer.pid).create_time()
    assert identity_matches(trainer.pid, trainer.start_time)
    env = psutil.Process(trainer.pid).environ()
    assert env.get("PYTHONUNBUFFERED") == "1" and env.get("SECRET") == "x"
    record = trainer.record()
    assert record["pid"] == trainer.pid and json.loads(record["command_json"])[0] == "sh"
    os.killpg(trainer.pgid, signal.SIGTERM)
    status = trainer.wait(10)
    assert (status.returncode, status.cause) == (-signal.SIGTERM, "killed by SIGTERM")
    assert not identity_matches(trainer.pid, trainer.start_time)
    lines = log.read_text().splitlines()
    assert lines[0].startswith("--- epochwatch: starting sh -c ")
    assert lines[1:3] == ["to stdout", "to stderr"]
    assert lines[-1].startswith("--- epochwatch: trainer killed by SIGTERM at ")


def test_exit_code_is_recorded(tmp_path: Path) -> None:
    trainer = spawn(["sh", "-c", "exit 3"], cwd=tmp_path, log_path=tmp_path / "t.log")
    status = trainer.wait(10)
    assert (status.returncode, status.cause) == (3, "exited 3")
    assert trainer_state(status.returncode) == "crashed"
    assert "trainer exited 3" in (tmp_path / "t.log").read_text()


def test_spawn_errors_are_one_line(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    with pytest.raises(SpawnError, match="cannot start trainer 'no-such-trainer-cmd'"):
        spawn(["no-such-trainer-cmd"], cwd=tmp_path, log_path=log)
    assert "failed to start" in log.read_text()
    with pytest.raises(SpawnError, match="is not a folder"):
        spawn(["true"], cwd=tmp_path / "missing", log_path=log)
    with pytest.raises(SpawnError, match="empty"):
        spawn([], cwd=tmp_path, log_path=log)


def test_sigterm_reaches_the_whole_group(tmp_path: Path, started: list[TrainerProcess]) -> None:
    trainer, child = ready_trainer(tmp_path, started, "accel.sh", ACCELERATE_LIKE)
    assert os.getpgid(child) == trainer.pgid
    result = stop_group(trainer.pid, trainer.pgid, trainer.start_time, grace_s=20)
    assert result.outcome == "terminated", result.detail
    assert set(result.signalled) == {trainer.pid, child}
    assert gone(child) and gone(trainer.pid)
    assert trainer.wait(10).cause == "killed by SIGTERM"
    assert trainer_state(-signal.SIGTERM, stop_requested=True) == "stopped"


def test_sigkill_after_grace_when_sigterm_is_ignored(
        tmp_path: Path, started: list[TrainerProcess]) -> None:
    trainer, child = ready_trainer(tmp_path, started, "stubborn.sh", STUBBORN)
    result = stop_group(trainer.pid, trainer.pgid, trainer.start_time, grace_s=1.0)
    assert result.outcome == "killed", result.detail
    assert result.remaining == ()
    assert gone(child) and gone(trainer.pid)  # no orphan left behind
    assert "leader got TERM, carrying on" in (tmp_path / "trainer.log").read_text()  # SIGTERM came first
    status = trainer.wait(10)
    assert status.cause == "killed by SIGKILL"
    assert trainer_state(status.returncode, stop_requested=True) == "killed"


def test_stale_record_with_a_reused_pid_is_refused(
        tmp_path: Path, started: list[TrainerProcess]) -> None:
    other = spawn(["sleep", "300"], tmp_path, tmp_path / "other.log")
    started.append(other)
    # The record says this pid started an hour earlier: the pid now belongs to someone else.
    stale_start = other.start_time - 3600
    with structlog.testing.capture_logs() as captured:
        result = stop_group(other.pid, other.pgid, stale_start, grace_s=0.5)
    assert result.outcome == "refused"
    assert f"pid {other.pid} is now another process" in result.detail
    assert "stale trainer record" in result.detail
    assert [(c["event"], c["log_level"], c["detail"]) for c in captured] == \
        [("trainer stop refused", "error", result.detail)]
    assert other.poll() is None and identity_matches(other.pid, other.start_time)
    assert not identity_matches(other.pid, stale_start)
    assert stop_group(other.pid, other.pgid, other.start_time, 5).outcome == "terminated"


def test_process_outside_the_recorded_group_is_refused(tmp_path: Path) -> None:
    # A pid reused by a process that is not a group leader: pgid does not match the record.
    proc = subprocess.Popen(["sleep", "300"])
    try:
        start = psutil.Process(proc.pid).create_time()
        result = stop_group(proc.pid, proc.pid, start, grace_s=0.5)
        assert result.outcome == "refused" and "process group" in result.detail
        assert proc.poll() is None
        own = stop_group(proc.pid, os.getpgid(0), start, grace_s=0.5)
        assert own.outcome == "refused" and "own" in own.detail
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait(10)


def test_exited_trainer_is_already_gone(tmp_path: Path) -> None:
    reaped = spawn(["true"], tmp_path, tmp_path / "a.log")
    reaped.wait(10)
    assert stop_group(reaped.pid, reaped.pgid, reaped.start_time, 1).outcome == "already_gone"
    zombie = spawn(["true"], tmp_path, tmp_path / "b.log")
    deadline = time.monotonic() + 10
    while psutil.Process(zombie.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Dead but not reaped by its parent (us): counts as gone, nothing is signalled.
    assert stop_group(zombie.pid, zombie.pgid, zombie.start_time, 1).outcome == "already_gone"
    assert zombie.wait(10).cause == "exited 0"


def test_orphans_of_an_exited_leader_are_stopped(tmp_path: Path) -> None:
    log = tmp_path / "t.log"
    trainer = spawn(["sh", "-c", "sleep 300 & echo \"child $!\"; exit 5"], tmp_path, log)
    assert trainer.wait(10).cause == "exited 5"
    child = int(wait_for(log, r"^child (\d+)$").group(1))
    assert not gone(child) and os.getpgid(child) == trainer.pgid
    result = stop_group(trainer.pid, trainer.pgid, trainer.start_time, grace_s=10)
    assert result.outcome == "terminated" and result.signalled == (child,)
    assert gone(child)


def test_stop_from_a_process_that_is_not_the_parent(
        tmp_path: Path, started: list[TrainerProcess]) -> None:
    """The daemon under systemd: it cannot waitpid the trainer; the zombie counts as gone."""
    trainer, _child = ready_trainer(tmp_path, started, "accel.sh", ACCELERATE_LIKE)
    code = ("import json, sys; from launcher.process import stop_group; "
            "r = stop_group(*map(int, sys.argv[1:3]), float(sys.argv[3]), 20); "
            "print(json.dumps([r.outcome, r.detail]))")
    out = subprocess.run([PY, "-c", code, str(trainer.pid), str(trainer.pgid),
                          repr(trainer.start_time)], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=True)
    outcome, detail = json.loads(out.stdout.strip().splitlines()[-1])
    assert outcome == "terminated", detail
    assert trainer.wait(10).cause == "killed by SIGTERM"


def test_stop_through_the_state_database_record(
        tmp_path: Path, started: list[TrainerProcess]) -> None:
    from watcher.store import Store

    trainer, _child = ready_trainer(tmp_path, started, "accel.sh", ACCELERATE_LIKE)
    with Store(tmp_path / "state.db") as store:
        store.set_trainer("run", **trainer.record())
        row = store.trainer("run")
        assert row is not None and row.pid == trainer.pid and row.pgid == trainer.pgid
        assert stop_from_record(dataclasses.replace(row, start_time=None), 1).outcome == "refused"
        assert stop_from_record(None, 1).outcome == "refused"
        assert trainer.poll() is None
        result = stop_from_record(row, grace_s=20)
    assert result.outcome == "terminated", result.detail
    assert trainer.wait(10).cause == "killed by SIGTERM"


REUSE = """\
import json, os, subprocess, sys, time
from launcher.process import spawn, stop_group
workdir = sys.argv[1]
old = spawn(["sleep", "300"], workdir, workdir + "/old.log")
record = (old.pid, old.pgid, old.start_time)
os.killpg(old.pgid, 9)
old.wait(10)
time.sleep(0.3)  # the new process starts measurably later than the recorded one
with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
    fh.write(str(old.pid - 1))  # the kernel hands out old.pid next
new = subprocess.Popen(["sleep", "300"], start_new_session=True)
result = stop_group(*record, 0.5)
time.sleep(0.2)
alive = new.poll() is None
new.kill(); new.wait()
print(json.dumps({"old": old.pid, "new": new.pid, "outcome": result.outcome,
                  "detail": result.detail, "alive": alive}))
"""


def test_real_pid_reuse_in_a_pid_namespace_is_not_signalled(tmp_path: Path) -> None:
    """A real reused pid, same pid and pgid as the record, in a private pid namespace where
    the next pid can be chosen (ns_last_pid). Needs user namespaces (unprivileged or root)."""
    unshare = shutil.which("unshare")
    probe = subprocess.run([unshare or "unshare", "-Urpf", "--mount-proc", "true"],
                           capture_output=True, text=True) if unshare else None
    if probe is None or probe.returncode != 0:
        pytest.skip(f"user/pid namespaces unavailable here: {probe.stderr.strip() if probe else 'no unshare'}")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([unshare, "-Urpf", "--mount-proc", PY, "-c", REUSE, str(tmp_path)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["new"] == report["old"], "the kernel did not reuse the pid"
    assert report["outcome"] == "refused" and "stale trainer record" in report["detail"]
    assert report["alive"] is True


@pytest.mark.parametrize(("code", "text"), [
    (0, "exited 0"), (3, "exited 3"), (-15, "killed by SIGTERM"), (-9, "killed by SIGKILL"),
    (143, "exited 143 (128+SIGTERM)"), (-99, "killed by signal 99"), (None, "running"),
])
def test_describe_exit(code: int | None, text: str) -> None:
    assert describe_exit(code) == text


def test_a_wrapper_that_exits_0_after_our_stop_counts_as_stopped() -> None:
    # accelerate-like wrappers exit 0 once their child is gone: it was still our stop.
    assert trainer_state(0, stop_requested=True) == "stopped"
    assert trainer_state(0) == "exited"
