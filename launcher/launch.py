"""The launcher: start the trainer and the daemon, relay the stop decision, wait, and report
how the trainer ended (what `epochwatch launch` runs).

The trainer runs in its own session and process group (`launcher.process.spawn`), so a stop
reaches accelerate's children too, and the launcher's own exit never takes it down. The
daemon's act stage records stop requests in the state database; this process carries them
out with identity checks (`launcher.process.stop_from_record`), so only the process started
here is ever signalled.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from launcher.identity import identity_matches, process_alive
from launcher.process import (
    SpawnError,
    TrainerProcess,
    describe_exit,
    spawn,
    stop_from_record,
    trainer_state,
)
from watcher import logs
from watcher.commands._common import run_lock
from watcher.config import WatchConfig
from watcher.ending import after_stop_note, first_stop_epoch, last_epoch_reached, late_stop
from watcher.epoch.act import FINAL_RUN_STATES
from watcher.errors import CommandError, Interrupted
from watcher.progress import Waiting
from watcher.publish import alerts as alert_mod
from watcher.store import Store
from watcher.summary import one_line_verdict

POLL_S = 0.2
DAEMON_RESTARTS = 3
DAEMON_DRAIN_TIMEOUT_S = 900.0
DAEMON_READY_TIMEOUT_S = 600.0


def _daemon_alive(store: Store, run: str) -> bool:
    d = store.daemon(run)
    return d is not None and d.state not in (None, "stopped") and process_alive(d.pid, d.start_time)


def _last_line(path: Path) -> str:
    """The daemon's last words (its one-line refusal), for the launcher's own message."""
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "nothing logged"


class Launch:
    """Start, relay, stop: one run's trainer and daemon, from start to the trainer's end."""

    def __init__(self, cfg: WatchConfig, out: TextIO = sys.stdout) -> None:
        self.cfg = cfg
        self.run_name = cfg.run.name
        self.store = Store(cfg.state_db)
        self.out = out
        self.log = logs.get_logger(run=self.run_name)
        self.daemon: subprocess.Popen[bytes] | None = None
        self.daemon_restarts = 0
        self.stopped_by_us = False
        self._announced: set[int] = set()
        self._terminate = False
        self.signal_received: str | None = None
        self.waiting: Waiting | None = None

    def _on_term(self, signum: int, _frame: FrameType | None) -> None:
        # `systemctl stop` or Ctrl-C: stop the trainer gracefully (same identity checks as a
        # decided stop), then let the daemon finish what it has.
        self._terminate = True
        self.signal_received = signal.Signals(signum).name

    @property
    def interrupted(self) -> bool:
        """Ctrl-C (SIGINT): the command then exits 130, naming the last epoch reached."""
        return self.signal_received == "SIGINT"

    def say(self, text: str) -> None:
        if self.waiting is not None:
            self.waiting.print(text, self.out)
        else:
            print(text, file=self.out, flush=True)

    def _wait_note(self, what: str) -> None:
        """The spinner's line (a terminal only): what the launcher is waiting for."""
        if self.waiting is not None:
            done = [e.epoch for e in self.store.evaluations(self.run_name)]
            nxt = max(done, default=0) + self.cfg.save_every_n_epochs
            self.waiting.update(what.format(epoch=min(nxt, self.cfg.max_train_epochs)))

    # ---- daemon ---------------------------------------------------------------------------------
    def start_daemon(self) -> None:
        if os.environ.get("EPOCHWATCH_DAEMON") == "external" or _daemon_alive(self.store, self.run_name):
            self.say("daemon: using the one already running for this run")
            return
        log_path = Path(self.cfg.state_db).parent / "daemon.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as fh:
            self.daemon = subprocess.Popen(
                [sys.executable, "-m", "watcher", "watch", "--config", str(self.cfg.path),
                 "--until-trainer-exits"],
                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self.say(f"daemon: pid {self.daemon.pid}, log {log_path}")

    def wait_daemon_ready(self) -> None:
        """Start the trainer only once the daemon has its pipeline loaded and watches the
        folder: no epoch can be missed, and on a GPU the daemon's memory is taken first."""
        deadline = time.time() + DAEMON_READY_TIMEOUT_S
        while time.time() < deadline:
            d = self.store.daemon(self.run_name)
            if d and d.state in ("idle", "evaluating") and _daemon_alive(self.store, self.run_name):
                return
            if self._terminate:  # Ctrl-C or SIGTERM before the trainer started
                raise KeyboardInterrupt
            if self.daemon is not None and self.daemon.poll() is not None:
                log = Path(self.cfg.state_db).parent / "daemon.log"
                raise CommandError(f"the daemon exited with {self.daemon.returncode} before it was "
                                   f"ready: {_last_line(log)} (see {log})")
            self._wait_note("the daemon is loading the model")
            time.sleep(POLL_S)
        raise CommandError(f"the daemon was not ready after {DAEMON_READY_TIMEOUT_S:.0f} s")

    def interruption(self) -> Interrupted:
        """What a command raises after Ctrl-C (exit 130): the last epoch the run reached."""
        return Interrupted(last_epoch_reached(self.store, self.run_name), self.cfg.max_train_epochs,
                           "epochs")

    def stop_own_daemon(self) -> None:
        """The daemon this launcher started, ended (SIGTERM, then SIGKILL): a launch that
        fails before its trainer runs leaves nothing behind."""
        if self.daemon is None or self.daemon.poll() is not None:
            return
        self.daemon.terminate()
        try:
            self.daemon.wait(30)
        except subprocess.TimeoutExpired:
            self.daemon.kill()
            self.daemon.wait(10)
        self.say(f"daemon: pid {self.daemon.pid} stopped")

    def check_daemon(self) -> None:
        if self.daemon is None or self.daemon.poll() is None or self.interrupted:
            return  # after Ctrl-C (which reached the daemon too) it stays stopped
        rc = self.daemon.returncode
        if self.daemon_restarts >= DAEMON_RESTARTS:
            return
        self.daemon_restarts += 1
        self.store.add_event(self.run_name, "error", "daemon_exited", f"daemon exited with {rc}; restarting")
        self.say(f"daemon exited with {rc}; restarting ({self.daemon_restarts}/{DAEMON_RESTARTS})")
        self.start_daemon()

    # ---- trainer -------------------------------------------------------------------------------
    def start_trainer(self) -> TrainerProcess:
        t = self.store.trainer(self.run_name)
        if t and t.state in ("starting", "running") and identity_matches(t.pid, t.start_time):
            raise CommandError(f"a trainer for {self.run_name} is already running (pid {t.pid})")
        tc = self.cfg.trainer
        log_path = Path(tc.log_file)
        trainer = spawn(list(tc.command), cwd=str(tc.cwd), log_path=log_path)
        self.store.set_trainer(
            self.run_name, pid=trainer.pid, pgid=trainer.pgid, start_time=trainer.start_time,
            command_json=json.dumps(list(tc.command)), cwd=str(tc.cwd), log_path=str(log_path),
            state="running", exit_code=None, cause=None, started_at=time.time(), ended_at=None,
        )
        self.store.update_run(self.run_name, status="running")
        self.say(f"trainer: pid {trainer.pid}, log {log_path} (tail -f it)")
        return trainer

    def handle_stop_request(self, trainer: TrainerProcess) -> None:
        req = self.store.open_stop_request(self.run_name)
        if req is None:
            return
        self.say(f"stop requested at epoch {req.epoch}: {req.reason}" if req.epoch is not None
                 else f"stop requested: {req.reason}")
        # The record in the state database, checked against the live process (pid + start
        # time through a pidfd): only the trainer this launcher started is ever signalled.
        result = stop_from_record(self.store.trainer(self.run_name), self.cfg.trainer.stop_grace_s,
                                  log=self.log)
        self.store.close_stop_request(req.id, f"{result.outcome}: {result.detail}")
        if result.outcome == "refused":
            self.store.add_event(self.run_name, "error", "stop_refused", result.detail, req.epoch)
            self.log.error("stop refused", detail=result.detail)
            self._alert("stop_refused", f"stop_refused:{req.id}", epoch=req.epoch,
                        error=f"stop refused: {result.detail}")
        else:
            self.stopped_by_us = True
        self.say(f"trainer stop: {result.outcome} ({result.detail})")

    def announce_evaluations(self) -> None:
        stop_epoch = first_stop_epoch(self.store, self.run_name)
        for e in self.store.evaluations(self.run_name):
            if e.checkpoint_id in self._announced:
                continue
            self._announced.add(e.checkpoint_id)
            self.say(f"epoch {e.epoch:>2}: {one_line_verdict(e.metrics['aggregate'], e.decisions)}"
                     f"{after_stop_note(e.epoch, stop_epoch)}")

    # ---- main ----------------------------------------------------------------------------------
    def run(self) -> int:
        # one launcher per run, for its whole life (the daemon it starts takes its own lock)
        with run_lock(self.cfg, "launch"):
            return self._run()

    def _run(self) -> int:
        self.store.ensure_run(self.run_name, config_path=str(self.cfg.path), params=self.cfg.params())
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        self.waiting = waiting = Waiting()  # a spinner on a terminal, nothing elsewhere
        try:
            try:
                self.start_daemon()
                self.wait_daemon_ready()
                trainer = self.start_trainer()
            except SpawnError as exc:
                self.stop_own_daemon()
                raise CommandError(f"{self.cfg.path}: trainer.command: {exc}") from None
            except BaseException:
                self.stop_own_daemon()  # nothing to watch: never leave it running
                raise
            return self._supervise(trainer)
        finally:
            waiting.stop()
            self.waiting = None

    def _supervise(self, trainer: TrainerProcess) -> int:
        rc = None
        while rc is None:
            rc = trainer.poll()
            if self._terminate and rc is None:
                self.store.request_stop(self.run_name, None, f"launcher received {self.signal_received}")
                self._terminate = False
            self.handle_stop_request(trainer)
            self.announce_evaluations()
            self.check_daemon()
            if rc is None:
                self._wait_note("trainer running; waiting for epoch {epoch}")
                time.sleep(POLL_S)
        cause = describe_exit(rc)
        state = trainer_state(rc, self.stopped_by_us)
        # Queued before the state is recorded: the daemon sees the trainer end, delivers what
        # is queued and exits, so an alert queued after that would wait for a next run.
        self._alert_trainer_end(state, cause)
        self.store.set_trainer(self.run_name, state=state, exit_code=rc, cause=cause, ended_at=time.time())
        self.store.add_event(self.run_name, "info" if state != "crashed" else "error",
                             f"trainer_{state}", f"trainer {cause}")
        self.say(f"trainer ended: {state} ({cause})")
        self.wait_for_daemon()
        self.announce_evaluations()
        if (late := late_stop(self.store, self.run_name, self.cfg.max_train_epochs)) is not None:
            self.say(f"the stop came too late: {late}")
        self.store.update_run(self.run_name, status={"stopped": "stopped", "killed": "stopped",
                                                     "exited": "finished"}.get(state, "failed"))
        return 0 if state in ("stopped", "killed", "exited") else (rc if rc and rc > 0 else 1)

    def _alert(self, kind: str, dedupe_key: str, **facts: Any) -> None:
        title, body = alert_mod.format_alert(kind, run=self.run_name, **facts)
        alert_mod.enqueue_alert(self.store, self.run_name, kind, f"{kind}:{dedupe_key}", title,
                                body, self.cfg.alerts.dedupe_window_s)

    def _alert_trainer_end(self, state: str, cause: str) -> None:
        kind = "trainer_crashed" if state == "crashed" else "trainer_exited"
        self._alert(kind, f"{time.time():.0f}", cause=cause, state=state)

    def epochs_left(self) -> list[int]:
        """Epochs whose checkpoint is in the output folder and that the daemon has not
        finished (evaluated, failed or refused)."""
        done = {c.epoch for c in self.store.checkpoints(self.run_name) if c.status in ("evaluated", "failed")}
        refused = {Path(r.path).name for r in self.store.rejected(self.run_name)}
        numbered = re.compile(re.escape(self.cfg.output_name) + r"-(\d+)\.safetensors")
        left: set[int] = set()
        folder = Path(self.cfg.output_dir)
        for path in folder.glob("*.safetensors") if folder.is_dir() else ():
            match = numbered.fullmatch(path.name)
            epoch = int(match.group(1)) if match else (
                self.cfg.max_train_epochs if path.name == f"{self.cfg.output_name}.safetensors" else None)
            if epoch is not None and epoch not in done and path.name not in refused:
                left.add(epoch)
        return sorted(left)

    def _run_over(self) -> bool:
        status = self.store.run_status(self.run_name)
        busy = any(c.status in ("pending", "evaluating") for c in self.store.checkpoints(self.run_name))
        return status in FINAL_RUN_STATES and not busy

    def wait_for_external_daemon(self, timeout_s: float = DAEMON_DRAIN_TIMEOUT_S) -> None:
        """EPOCHWATCH_DAEMON=external: wait (bounded) until the daemon service has finished
        the epochs already written, as with a daemon of our own, so their verdicts are told."""
        if self.interrupted:
            return  # Ctrl-C: the person is not waiting for the service's backlog
        deadline = time.time() + timeout_s
        while (left := self.epochs_left()) and time.time() < deadline:
            if self._run_over():  # a stop was decided: later epochs are not judged
                return
            if not _daemon_alive(self.store, self.run_name):
                self.say(f"daemon: the external daemon is not running; epoch(s) "
                         f"{', '.join(map(str, left))} not evaluated yet")
                return
            self.announce_evaluations()
            self._wait_note(f"waiting for the daemon to finish epoch(s) {', '.join(map(str, left))}")
            time.sleep(POLL_S)
        if left:
            self.say(f"daemon: epoch(s) {', '.join(map(str, left))} still not evaluated after "
                     f"{timeout_s:.0f} s; see epochwatch status")

    def wait_for_daemon(self) -> None:
        if self.daemon is None:
            self.wait_for_external_daemon()
            return
        deadline = time.time() + DAEMON_DRAIN_TIMEOUT_S
        while self.daemon.poll() is None and time.time() < deadline:
            self.announce_evaluations()
            self.check_daemon()
            self._wait_note("trainer ended; the daemon is finishing")
            time.sleep(POLL_S)
        if self.daemon.poll() is None:
            self.say("daemon did not finish in time; stopping it")
            self.daemon.terminate()
            self.daemon.wait(30)
