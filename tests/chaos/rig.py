"""The chaos rig: real daemon processes, a real Supabase stand-in (HTTP + PostgreSQL), a real
webhook receiver, switchable outages, and the scale of each test.

Scale: the short form runs in `make test` (and CI); `EPOCHWATCH_CHAOS=full` (set by
`make chaos`) selects the full form. Figures go to stdout as one `CHAOS <test>: ...` line per
test (`make chaos` runs pytest with `-s`, so they are shown).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.ledger import alerting_decisions, decision_alert_states
from tests.httpstub import HttpStub, Request, Response
from tests.pg import PostgrestStandIn, apply_migrations
from watcher.publish.supabase import EPOCHS_TABLE
from watcher.store import Store

FULL = os.environ.get("EPOCHWATCH_CHAOS", "").strip().lower() == "full"
# Secrets the rig hands to the daemon: each test checks none of them leaks anywhere.
SUPABASE_KEY = "sb_secret_CHAOS_service_key_51c0ffee9d2e"
HOOK_TOKEN = "hooktoken-CHAOS-8e2f4a6b0c1d"
_SECRET_VARS = ("SUPABASE_URL", "SUPABASE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "EPOCHWATCH_ALERT_URLS",
                "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "EPOCHWATCH_DAEMON")


def scale(short: Any, full: Any) -> Any:
    return full if FULL else short


def figures(test: str, **values: Any) -> str:
    """Print the test's figures on one line (shown with `pytest -s`) and return it."""
    line = f"CHAOS {test}: " + ", ".join(f"{k}={v}" for k, v in values.items())
    print("\n" + line, flush=True)
    return line


def child_env(**extra: str) -> dict[str, str]:
    """The environment for daemon / trainer processes: offline, one CPU thread (the test
    machine is shared: OpenMP threads spinning against each other only slow things down),
    and no secrets but the ones a test passes in."""
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_VARS}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def epochwatch(*args: str) -> list[str]:
    return [sys.executable, "-m", "watcher", *args]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.1,
             alive: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> Any:
    """Poll until predicate() is truthy; fail naming `what` (and the log's tail when the
    process that should be doing the work has died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if alive is not None and alive.poll() is not None:
            tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
            raise AssertionError(f"process exited ({alive.returncode}) while waiting for {what}\n{tail}")
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")


# ---------------------------------------------------------------------------------- processes
@dataclass
class Proc:
    """A real `epochwatch` child process with its output in a log file."""

    argv: list[str]
    log: Path
    env: dict[str, str]
    cwd: Path | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> Proc:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(self.argv, stdout=fh, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env, cwd=self.cwd)
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed or closed."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(60)

    def stop(self, timeout: float = 120) -> int:
        """SIGTERM and wait; the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"{self.argv[3:5]} ignored SIGTERM for {timeout}s") from None

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def tail(self, n: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""

    def wait_until(self, predicate: Callable[[], Any], timeout: float, what: str,
                   interval: float = 0.1) -> Any:
        """wait_for, failing at once (with this process's log) should the process die."""
        return wait_for(predicate, timeout, what, interval, alive=self.proc, log=self.log)


def kill_running(*procs: Proc) -> None:
    """SIGKILL what is still running (a test's `finally`: nothing outlives it)."""
    for p in procs:
        if p.running():
            p.kill()


def daemon(config: Path, root: Path, env: dict[str, str], *extra: str) -> Proc:
    return Proc(epochwatch("watch", "--config", str(config), *extra), root / "daemon.log", env)


def state_of(db: Path, run: str) -> dict[str, Any]:
    """A snapshot of the state database (read-only use; WAL lets us read while it writes)."""
    if not db.exists():
        return {"daemon": {}, "checkpoints": {}}
    with Store(db) as s:
        d = s.daemon(run)
        return {"daemon": d.to_dict() if d else {},
                "checkpoints": {c.id: (c.epoch, c.status) for c in s.checkpoints(run)}}


def daemon_ready(db: Path, run: str, pid: int) -> bool:
    d = state_of(db, run)["daemon"]
    return d.get("pid") == pid and d.get("state") in ("idle", "evaluating")


def wait_ready(watcher: Proc, db: Path, run: str, what: str = "the daemon ready") -> None:
    """Until this daemon process has started up (its pid recorded, idle or evaluating)."""
    watcher.wait_until(lambda: daemon_ready(db, run, watcher.pid), 300, what)


def evaluated_epochs(db: Path, run: str) -> list[int]:
    if not db.exists():
        return []
    with Store(db) as s:
        return sorted(c.epoch for c in s.checkpoints(run) if c.status == "evaluated" and c.epoch)


def outbox_settled(db: Path, run: str, channels: tuple[str, ...]) -> bool:
    """Nothing pending on these channels (everything delivered, or given up as dead), and
    every evaluated epoch's deliveries queued. The daemon records an epoch as evaluated,
    commits it, and only then queues its Supabase row and its alerts: an empty outbox seen
    in between would end a wait too early (it did, once, in a CI run)."""
    with Store(db) as s:
        counts = s.outbox_counts(run)
        if any(counts.get(ch, {}).get("pending", 0) for ch in channels):
            return False
        supabase_keys = [k for (k,) in s.conn.execute(
            "SELECT dedupe_key FROM outbox WHERE run=? AND channel='supabase'", (run,))]
        alerts = decision_alert_states(s, run)
        evaluations = s.evaluations(run)
    if "supabase" in channels and any(
            not any(k.startswith(f"{EPOCHS_TABLE}:{run}:{e.epoch}:") for k in supabase_keys)
            for e in evaluations):
        return False
    return "alert" not in channels or all(
        f"{d.criterion}:{epoch}" in alerts for epoch, d in alerting_decisions(evaluations))


def wait_delivered(watcher: Proc, db: Path, run: str, what: str, timeout: float = 300) -> None:
    """Until every Supabase row and alert of the run's evaluated epochs is delivered (or
    given up), the daemon alive throughout."""
    watcher.wait_until(lambda: outbox_settled(db, run, ("supabase", "alert")), timeout, what,
                       interval=0.5)


def wait_evaluated(watcher: Proc, db: Path, run: str, epochs: int, timeout: float = 600) -> None:
    """Until epochs 1..`epochs` are all evaluated, the daemon alive throughout."""
    watcher.wait_until(lambda: evaluated_epochs(db, run) == list(range(1, epochs + 1)), timeout,
                       "every epoch evaluated", interval=0.5)


def status_json(config: Path, env: dict[str, str], timeout: float = 120) -> tuple[dict[str, Any], float]:
    """`epochwatch status --json` in a real process: (the object, seconds it took)."""
    t0 = time.monotonic()
    out = subprocess.run(epochwatch("status", "--config", str(config), "--json"), env=env,
                         capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - t0
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), took


# ---------------------------------------------------------------------------------- outages
OUTAGES = ("503", "hang", "refused")


class Switchable:
    """An HttpStub whose outage mode can be switched: none | 503 | hang | refused."""

    def __init__(self, respond: Callable[[Request], Response], hang_s: float) -> None:
        self.stub = HttpStub(respond)
        self.stub.hang_s = hang_s
        self.outage = "none"
        self.seconds: dict[str, float] = {}
        self._since = 0.0

    def start(self) -> Switchable:
        self.stub.start()
        return self

    def close(self) -> None:
        self.set("none")
        self.stub.stop()

    @property
    def url(self) -> str:
        return self.stub.url

    def set(self, outage: str) -> None:
        """Switch outage mode; time spent in each outage is added to `seconds`."""
        if outage == self.outage:
            return
        now = time.monotonic()
        if self.outage != "none":
            self.seconds[self.outage] = self.seconds.get(self.outage, 0.0) + now - self._since
        if self.outage == "refused":
            self.stub.start()  # same port: clients configured with the URL reach it again
        if outage == "refused":
            self.stub.stop()
        self.stub.mode = outage if outage in ("503", "hang") else "ok"
        self.outage, self._since = outage, now

    def failed_requests(self) -> int:
        return sum(1 for r in self.stub.recorded() if not r.served)


class TimedStandIn(PostgrestStandIn):
    """The PostgREST stand-in, also noting when each row was applied (commit order)."""

    def __init__(self, dsn: str, key: str) -> None:
        super().__init__(dsn, key)
        self.applied_at: list[float] = []

    def __call__(self, req: Any) -> Any:
        resp = super().__call__(req)
        with self._lock:
            self.applied_at.extend([time.time()] * (len(self.applied) - len(self.applied_at)))
        return resp


@dataclass
class Services:
    """Supabase (stand-in on real PostgreSQL) and a webhook alert target, both switchable."""

    dsn: str
    supabase: Switchable
    api: TimedStandIn
    hook: Switchable
    alerts: list[dict[str, Any]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"SUPABASE_URL": self.supabase.url, "SUPABASE_KEY": SUPABASE_KEY,
                "EPOCHWATCH_ALERT_URLS": f"json://127.0.0.1:{self.hook.stub.port}/hooks/{HOOK_TOKEN}"}

    def child_env(self) -> dict[str, str]:
        """The environment for the daemon and trainer processes, pointed at these services."""
        return child_env(**self.env())

    def set_outage(self, outage: str) -> None:
        self.supabase.set(outage)
        self.hook.set(outage)

    def delivered_alerts(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.hook.stub.recorded("/hooks/") if r.served]

    def epoch_rows(self, run: str) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute(
                "SELECT epoch, git_commit, checkpoint_sha256, metrics::text FROM epoch_evaluations "
                "WHERE run_name=%s ORDER BY epoch", (run,)).fetchall()

    def run_row(self, run: str) -> tuple[Any, ...] | None:
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return conn.execute("SELECT status, verdict, best_epoch FROM training_runs "
                                "WHERE run_name=%s", (run,)).fetchone()


@contextmanager
def services(dsn: str, hang_s: float = 3.0) -> Iterator[Services]:
    """Start the Supabase stand-in (migrations applied to `dsn`) and the webhook receiver."""
    apply_migrations(dsn)
    api = TimedStandIn(dsn, SUPABASE_KEY)
    supa = Switchable(api, hang_s).start()
    hook = Switchable(lambda _req: Response(200, {}), hang_s).start()
    try:
        yield Services(dsn=dsn, supabase=supa, api=api, hook=hook)
    finally:
        supa.close()
        hook.close()


# ---------------------------------------------------------------------------------- config
def chaos_config(root: Path, model: Path, *, name: str, epochs: int, size: int = 64,
                 steps: int = 1, interval: float = 0.5, extra: str = "",
                 one_prompt: bool = False) -> Path:
    """The e2e config (tests/conftest.py), smaller images, plus extra TOML tables."""
    from tests.conftest import write_watch_config

    root.mkdir(parents=True, exist_ok=True)
    config = write_watch_config(root, model, name=name, epochs=epochs, size=size, steps=steps,
                                interval=interval, criteria=extra)
    if one_prompt:
        text = config.read_text()
        start = text.index("prompts = [")
        end = text.index("]\n", start)
        lines = text[start:end].splitlines()
        config.write_text(text[:start] + lines[0] + "\n" + lines[1].rstrip(",") + "\n" + text[end:])
    return config


# ---------------------------------------------------------------------------------- files
def make_checkpoints(model: Path, out: Path, output_name: str, epochs: int,
                     dim: int = 8) -> list[Path]:
    """Real kohya-format LoRA files for epochs 1..N (the last one unnumbered, as kohya
    names it), written by the stand-in trainer's code into a staging folder."""
    import io

    from launcher.simtrain import simulate_training

    return simulate_training(model, out, output_name, epochs, 0.0, dim, dim / 2, session_id=7,
                             write_s=0.0, log=io.StringIO())


def drop(staged: Path, watched: Path, write_s: float = 0.2) -> Path:
    """Write a staged checkpoint into the watched folder in place, in chunks, as kohya does."""
    from launcher.simtrain import write_in_place

    target = watched / staged.name
    write_in_place(target, staged.read_bytes(), write_s)
    return target


# ---------------------------------------------------------------------------------- disks
def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60)


def tmpfs_unavailable(probe_dir: Path) -> str | None:
    """Why a small tmpfs cannot be mounted here (None when it can): needs root and mount."""
    if os.geteuid() != 0:
        return "not root: cannot mount a small tmpfs to fill up or make read-only"
    probe_dir.mkdir(parents=True, exist_ok=True)
    done = _run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe_dir))
    if done.returncode != 0:
        return f"mount -t tmpfs refused: {done.stderr.strip()}"
    _run("umount", str(probe_dir))
    return None


class Tmpfs:
    """A small tmpfs mounted at `path`: fill it up, make it read-only, and back."""

    def __init__(self, path: Path, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.filler = path / ".chaos-filler"

    def __enter__(self) -> Tmpfs:
        self.path.mkdir(parents=True, exist_ok=True)
        done = _run("mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs",
                    str(self.path))
        assert done.returncode == 0, done.stderr
        return self

    def __exit__(self, *exc: object) -> None:
        _run("mount", "-o", "remount,rw", str(self.path))
        _run("umount", "-l", str(self.path))

    def fill(self) -> int:
        """Write until the file system is full; returns the bytes it took."""
        written = 0
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (1 << 20, 4096, 1):  # big chunks, then the last pages
                try:
                    while True:
                        written += os.write(fd, b"\0" * size)
                except OSError:
                    pass
        finally:
            os.close(fd)
        return written

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self, on: bool, busy_s: float = 30.0) -> None:
        """Remount read-only (or back): a file open for writing (the daemon drawing a picture
        in the repository) makes the kernel refuse with "busy", so that is tried again."""
        deadline = time.monotonic() + busy_s
        while True:
            done = _run("mount", "-o", "remount," + ("ro" if on else "rw"), str(self.path))
            if done.returncode == 0 or "busy" not in done.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert done.returncode == 0, done.stderr


class IndexLockHolder:
    """Another process holding the results repository's git index lock, as a long git
    command (or a git GUI) would: it creates `.git/index.lock` exclusively, keeps it open
    for `hold_s` seconds, then removes it."""

    SCRIPT = ("import os, sys, time\n"
              "fd = os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)\n"
              "print('locked', flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n"
              "os.unlink(sys.argv[1]); os.close(fd)\n")

    def __init__(self, repo: Path, hold_s: float) -> None:
        self.lock = repo / ".git" / "index.lock"
        self.hold_s = hold_s
        self.proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> IndexLockHolder:
        self.proc = subprocess.Popen([sys.executable, "-c", self.SCRIPT, str(self.lock),
                                      str(self.hold_s)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "locked"
        return self

    def wait(self) -> None:
        assert self.proc is not None
        assert self.proc.wait(self.hold_s + 60) == 0

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            self.lock.unlink(missing_ok=True)
