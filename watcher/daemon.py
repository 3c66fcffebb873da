"""The watcher daemon: the loop around the epoch path (watcher.epoch.path).

Here: the loop over one `Source` (watcher/epoch/sources.py: checkpoint files, or the trainer's
samples) that detects and settles, signals, one error policy with retries and backoff, health,
and the end of the run. Each epoch the source hands on is evaluated and concluded through
`EpochPath` (evaluate -> decide -> record -> publish -> act), as `epochwatch evaluate` does.

One main thread runs the loop; watchdog's observer and the rescan thread only put paths on a
queue, and the outbox worker delivers to Supabase and alert targets in its own thread, so the
loop never waits on the network. The loop sleeps on that queue (no busy polling) until a path
arrives, a file is due to be re-checked, or the systemd watchdog needs a ping.

Crash safety: every step is recorded in the state database before the next begins. A
checkpoint caught mid-evaluation is evaluated again after a restart; an evaluation recorded
but not committed is committed on restart (the commit trailer makes that exactly-once).
"""

from __future__ import annotations

import queue
import signal
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from types import FrameType

import psutil

from watcher import logs
from watcher.config import WatchConfig, load_config
from watcher.epoch.detect import CheckpointDetector
from watcher.epoch.evaluate import EpochEvaluation, WarmPipeline
from watcher.epoch.path import EpochPath
from watcher.epoch.sources import CheckpointFiles, Job, Source
from watcher.errors import ConfigError
from watcher.gpumemory import GpuMemoryShort, shortfall
from watcher.health import EpochClock
from watcher.pipeline import LoraLoadError, SamplePipeline  # torch itself loads in load()
from watcher.publish.publisher import Publisher
from watcher.records import TRAINER_ENDED
from watcher.rules import Rule
from watcher.samples.watch import TrainerSource
from watcher.sdnotify import Notifier
from watcher.store import Checkpoint, Store
from watcher.training.monitor import TrainingMonitor

HEARTBEAT_EVERY_S = 1.0
HEALTH_EVERY_S = 5.0
BACKLOG_RETRY_S = 15.0
TRANSIENT_BACKOFF_MAX_S = 300.0
RUNTIME_ERROR_ATTEMPTS = 3  # e.g. CUDA out of memory: retried, then the checkpoint fails
GPU_MEMORY_RETRY_S = 30.0  # an evaluation that does not fit in the free GPU memory waits


class ShutdownRequested(BaseException):
    """Raised inside an evaluation when SIGTERM arrives: abandon it, it is redone later.

    A BaseException, like KeyboardInterrupt, so that no `except Exception` on the way (in
    diffusers, safetensors, or our own LoRA loading) can turn it into a failed checkpoint."""


class Daemon:
    store: Store
    path: EpochPath
    publisher: Publisher
    source: Source
    clock: EpochClock

    def __init__(self, cfg: WatchConfig, *, until_trainer_exits: bool = False,
                 once: bool = False, pipeline: WarmPipeline | None = None) -> None:
        """`pipeline`: the renderer to use instead of a `SamplePipeline` built from the config
        (tests pass `watcher.testing.FakePipeline`)."""
        self.cfg = cfg
        self._given_pipeline = pipeline
        self.run_name: str = cfg.run.name
        self.until_trainer_exits = until_trainer_exits
        self.once = once
        self.paths: queue.Queue[Path] = queue.Queue()
        self.notifier = Notifier.from_env()
        self.log = logs.get_logger(run=self.run_name)
        self._stopping = False
        self._reload = False
        self._evaluating = False
        self._last_heartbeat = 0.0
        self._last_health = 0.0
        self._run_finished = False
        self._retry_at = 0.0  # after a transient error (disk full, read-only results...)
        self._last_backlog = 0.0
        self._rules: list[Rule] = cfg.rules()
        self.interrupted = False
        self._resident = False  # the pipeline is on its device (not offloaded, not unloaded)
        self._offload = cfg.model.offload_between_epochs  # off the device between epochs
        self._gpu_wait_noted: int | None = None  # the checkpoint whose wait was logged

    @property
    def rules(self) -> list[Rule]:
        return self._rules

    @rules.setter
    def rules(self, rules: list[Rule]) -> None:
        self._rules = rules
        if hasattr(self, "path"):
            self.path.set_rules(rules)
            self.training.set_rules(rules)

    # ---- signals --------------------------------------------------------------------------
    def _on_term(self, signum: int, _frame: FrameType | None) -> None:
        self._stopping = True
        self.interrupted = self.interrupted or signum == signal.SIGINT  # Ctrl-C: exit 130
        self.paths.put(Path())  # wake the loop
        if self._evaluating:
            raise ShutdownRequested(signal.Signals(signum).name)

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self._reload = True
        self.paths.put(Path())

    def _install_signals(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, self._on_hup)

    # ---- lifecycle --------------------------------------------------------------------------
    def open(self) -> None:
        """Everything but the detector: state, results repository, outbox, warm pipeline."""
        cfg = self.cfg
        self.store = Store(cfg.state_db)
        store = self.store
        store.ensure_run(self.run_name, config_path=str(cfg.path), params=cfg.params())
        me = psutil.Process()
        store.set_daemon(self.run_name, pid=me.pid, start_time=me.create_time(),
                         state="starting", heartbeat_at=time.time())
        requeued = store.requeue_interrupted(self.run_name)
        if requeued:
            self.log.info("requeued interrupted evaluations", count=requeued)

        self.path = EpochPath(cfg, store, self.log)
        self.path.set_rules(self.rules)
        self.publisher = self.path.publisher
        self.training = TrainingMonitor(cfg, store, self.publisher, self.log, self.rules)
        self.path.start()

        self.pipeline: WarmPipeline | None = None
        if cfg.sampling.source == "render":
            self.pipeline = self._given_pipeline or SamplePipeline(
                cfg.base_model, device=cfg.model.device, dtype=cfg.model.dtype,
                scheduler=cfg.model.scheduler, family=cfg.model.family)
            self._load_if_it_fits(self.pipeline)
        if self.pipeline is None:  # kohya renders the samples: no model here
            self.source = TrainerSource(cfg, self.path, self.log)
            self.log.info("judging the trainer's samples; no pipeline", folder=str(self.source.folder))
        else:
            self.source = CheckpointFiles(cfg, self.path)
        self.clock = EpochClock(expected_epoch_s=cfg.run.expected_epoch_minutes * 60,
                                factor=cfg.run.overdue_factor,
                                epochs_per_checkpoint=cfg.save_every_n_epochs,
                                total_epochs=cfg.run.max_train_epochs)

    def _shortfall(self, pipeline: WarmPipeline) -> str | None:
        dtype = str(getattr(pipeline, "dtype", self.cfg.model.dtype))
        return shortfall(self.cfg.base_model, str(pipeline.device), dtype, self.cfg.evaluation.clip_model)

    def _load_if_it_fits(self, pipeline: WarmPipeline) -> None:
        """Load the pipeline unless it would take GPU memory the trainer needs; then follow
        model.on_gpu_memory_short (watcher/gpumemory.py). Never loads what does not fit."""
        short = self._shortfall(pipeline)
        policy = self.cfg.model.on_gpu_memory_short
        if short is None:
            self.notifier.status("loading pipeline")
            pipeline.load()
            self._resident = True
            self.log.info("pipeline loaded", base=str(self.cfg.model.base), device=str(pipeline.device))
            return
        if policy == "refuse":
            raise GpuMemoryShort(f"{short}; not loaded (model.on_gpu_memory_short = \"refuse\")")
        self.store.add_event(self.run_name, "warning", "gpu_memory_short", f"{short}; {policy}")
        if policy == "trainer_samples":
            self.log.warning("GPU memory short: judging the trainer's own samples instead", detail=short)
            self.pipeline = None
        else:  # offload: off the GPU; each evaluation waits until it fits
            self._offload = True
            self.log.warning("GPU memory short: the pipeline stays off the GPU until an "
                             "evaluation fits", detail=short)

    def close(self) -> None:
        self.publisher.stop()
        self.store.set_daemon(self.run_name, state="stopped", heartbeat_at=time.time())
        self.store.close()

    def run(self) -> int:
        self._install_signals()
        self.open()
        cfg = self.cfg
        watched = self.source.folder
        detector = CheckpointDetector(watched, self.paths.put,
                                      rescan_interval_s=cfg.daemon.rescan_interval_s,
                                      polling=cfg.daemon.polling_observer,
                                      accept=self.source.accepts)
        detector.start()
        detector.rescan_now()
        self.notifier.ready()
        self.notifier.status(f"watching {watched}")
        self.log.info("watching", folder=str(watched))
        try:
            while not self._stopping:
                if self._tick(detector):
                    # The run is over and this process ends: read the trainer's last figures
                    # (a run shorter than a health period had none read yet), then deliver what
                    # is queued (the last refusals, the run's end) instead of leaving it.
                    self._poll_training()
                    self.publisher.flush()
                    break
        except ShutdownRequested:
            pass
        finally:
            self.notifier.stopping()
            detector.stop()
            self.close()
            self.log.info("daemon stopped")
        return 0

    def _tick(self, detector: CheckpointDetector) -> bool:
        """One loop iteration; True when the daemon should exit."""
        now = time.time()
        self.notifier.watchdog()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_S:
            self._heartbeat("idle")
        if self._reload:
            self._reload_config()
        self._drain_paths()
        self._seen(self.source.poll(time.time()))
        if time.time() >= self._retry_at and (job := self.source.take_next()) is not None:
            self._judge(job)
            return False
        if now - self._last_backlog >= BACKLOG_RETRY_S:
            self._last_backlog = now
            if self.store.unpublished(self.run_name):
                self.publisher.publish_backlog()  # commits that failed earlier (lock, disk)
        if now - self._last_health >= HEALTH_EVERY_S:
            self._check_health()
        if self._finished(detector):
            return True
        self._sleep()
        return False

    def _heartbeat(self, state: str) -> None:
        self._last_heartbeat = time.time()
        self.store.set_daemon(self.run_name, state=state, heartbeat_at=self._last_heartbeat,
                              gpu_memory_bytes=self.pipeline.memory_bytes() if self.pipeline else 0)

    def _sleep(self) -> None:
        timeout = HEALTH_EVERY_S
        deadline = self.source.next_deadline()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - time.time()))
        if self._retry_at > time.time():
            timeout = min(timeout, self._retry_at - time.time())
        timeout = self.notifier.cap_sleep(timeout)
        try:
            self.paths.put_nowait(self.paths.get(timeout=max(timeout, 0.01)))
        except queue.Empty:
            pass

    def _drain_paths(self) -> None:
        while True:
            try:
                path = self.paths.get_nowait()
            except queue.Empty:
                return
            if path != Path():
                self.source.offer(path)

    def _finished(self, detector: CheckpointDetector) -> bool:
        """True when the daemon should exit (`--once`, or `--until-trainer-exits` once the
        trainer has ended and every checkpoint it wrote is processed). Announces the end of
        the run once, whether or not the daemon then exits (under systemd it keeps running)."""
        if self.once:
            detector.rescan_now()
            self._drain_paths()
            return self.source.settled_once(time.time()) and self.paths.empty()
        trainer = self.store.trainer(self.run_name)
        trainer_ended = trainer is not None and trainer.state in TRAINER_ENDED
        last_epoch_done = self.path.last_epoch_done()
        if not trainer_ended and not last_epoch_done:
            return False
        if trainer_ended:
            # One last look at the folder, so nothing written just before the end is missed.
            detector.rescan_now()
            self._drain_paths()
            # Nobody will finish a file left half-written (a crash mid-save): refuse it now,
            # or the run would wait stale_after_s before it could end.
            quiet_s = max(2.0, 4 * self.cfg.daemon.settle_interval_s)
            self._seen(self.source.finish(time.time(), quiet_s))
        settled = self.source.settled()
        if settled and not self._run_finished:
            self._run_finished = True
            self.path.end_run(last_epoch_done)
        return settled and trainer_ended and self.until_trainer_exits

    def _reload_config(self) -> None:
        self._reload = False
        try:
            new = load_config(self.cfg.path)
        except ConfigError as exc:
            self.log.error("config reload refused", error=str(exc))
            return
        if new.model != self.cfg.model or new.output_dir != self.cfg.output_dir:
            self.log.warning("model or output folder changed: restart the daemon to apply")
        self.cfg.__dict__.update({k: getattr(new, k) for k in ("sampling", "criteria", "alerts")})
        self.rules = new.rules()
        self.log.info("config reloaded", criteria=len(self.rules))

    # ---- settle results -----------------------------------------------------------------------
    def _seen(self, epochs: Sequence[int | None]) -> None:
        for epoch in epochs:
            self.clock.checkpoint_seen(time.time(), epoch)

    # ---- evaluate, decide, publish, act: the epoch path, with the daemon's retry policy ------
    def _judge(self, job: Job) -> None:
        """One epoch from any source: rendered here (a checkpoint file) or the trainer's images."""
        if job.images is None:
            self._process(job.checkpoint)
        else:
            self._evaluate_then_conclude(job, partial(self.path.score_images, job.checkpoint, job.images))

    def _process(self, checkpoint: Checkpoint) -> None:
        """A checkpoint file: its samples rendered with the warm pipeline, then judged."""
        assert self.pipeline is not None  # render source: built in open()
        pipeline = self.pipeline
        epoch = checkpoint.epoch if checkpoint.epoch is not None else 0
        if not self._resident and (short := self._shortfall(pipeline)) is not None:
            self._wait_for_gpu_memory(checkpoint, epoch, short)
            return

        def render() -> EpochEvaluation:
            self._resident = True  # applying the LoRA brings the pipeline to its device
            return self.path.evaluate(pipeline, checkpoint, heartbeat=self.notifier.watchdog)

        def after() -> None:
            self._resident = not self._offload
            if self._offload:
                pipeline.release()

        self._evaluate_then_conclude(Job(checkpoint), render, after)

    def _evaluate_then_conclude(self, job: Job, evaluate: Callable[[], EpochEvaluation],
                                after: Callable[[], None] = lambda: None) -> None:
        """The one error policy for every source: SIGTERM puts the epoch back (judged again
        later); a bad input (unloadable LoRA, undecodable image) fails it; a failure of the
        surroundings (disk full, read-only results, GPU out of memory) retries it with
        backoff, and a RuntimeError that keeps coming fails it. decide/record/publish/act
        run outside the window a signal interrupts."""
        checkpoint, epoch = job.checkpoint, job.epoch
        log = self.log.bind(epoch=epoch)
        try:
            # The flag first: once the state says "evaluating" (the evaluation marks it),
            # SIGTERM abandons it.
            self._evaluating = True
            self._heartbeat("evaluating")
            evaluation = evaluate()
        except ShutdownRequested:
            self._abandon_for_shutdown(job, log)
            raise
        except Exception as exc:
            if self._stopping:
                # The signal's exception was raised inside native code (safetensors, torch)
                # that turned it into an ordinary error: still a shutdown, not a bad file.
                self._abandon_for_shutdown(job, log, cause=exc)
                raise ShutdownRequested("shutdown") from exc
            if isinstance(exc, (LoraLoadError, ValueError)):
                self.path.fail(checkpoint, exc)  # the checkpoint itself is unusable
                return
            if isinstance(exc, (OSError, RuntimeError)):
                if isinstance(exc, RuntimeError) and checkpoint.attempts + 1 >= RUNTIME_ERROR_ATTEMPTS:
                    self.path.fail(checkpoint, exc)
                else:
                    job.put_back()
                    self._transient(checkpoint, epoch, exc)
                return
            raise
        finally:
            self._evaluating = False
        after()
        try:
            self.path.conclude(evaluation)
        except OSError as exc:  # results folder unwritable: nothing recorded yet, redo later
            job.put_back()
            self._transient(checkpoint, epoch, exc)
            return
        self._retry_at = 0.0

    def _wait_for_gpu_memory(self, checkpoint: Checkpoint, epoch: int, short: str) -> None:
        """The pipeline would not fit now: the checkpoint stays pending (epochs keep their
        order) and is tried again later; said once per checkpoint, never an OOM."""
        self._retry_at = time.time() + GPU_MEMORY_RETRY_S
        if self._gpu_wait_noted != checkpoint.id:
            self._gpu_wait_noted = checkpoint.id
            self.store.add_event(self.run_name, "warning", "gpu_memory_short",
                                 f"{short}; epoch {epoch} waits", epoch)
            self.log.warning("GPU memory short; the evaluation waits", epoch=epoch, detail=short,
                             retry_in_s=GPU_MEMORY_RETRY_S)

    def _abandon_for_shutdown(self, job: Job, log: logs.Logger,
                              cause: BaseException | None = None) -> None:
        self._evaluating = False
        job.put_back()
        self.store.mark_checkpoint(job.checkpoint.id, "pending")
        if cause is None:
            log.info("evaluation abandoned for shutdown; it will be redone")
        else:
            log.info("evaluation abandoned for shutdown; it will be redone",
                     interrupted=logs.redact(f"{type(cause).__name__}: {cause}"))

    def _transient(self, checkpoint: Checkpoint, epoch: int, exc: BaseException) -> None:
        """A failure of the surroundings (disk full, read-only folder, GPU memory): keep the
        checkpoint pending and retry with backoff; epochs stay in order behind it."""
        message = logs.redact(f"{type(exc).__name__}: {exc}")
        attempts = self.store.checkpoint(checkpoint.id).attempts
        delay = min(TRANSIENT_BACKOFF_MAX_S, 2.0 ** min(attempts, 9))
        self._retry_at = time.time() + delay
        self.store.mark_checkpoint(checkpoint.id, "pending", error=message)
        self.store.add_event(self.run_name, "error", "evaluation_retry",
                             f"{message} (retrying in {delay:.0f} s)", epoch)
        self.log.error("evaluation hit a transient error; will retry", epoch=epoch,
                       error=message, retry_in_s=delay)
        self.publisher.alert("evaluation_error", f"transient:{checkpoint.sha256}:{type(exc).__name__}",
                             epoch=epoch, error=f"{message}; retrying in {delay:.0f} s")

    def _poll_training(self) -> None:
        try:
            self.training.poll()  # loss, lr, speed; NaN / rising loss / stall alerts
        except Exception as exc:  # noqa: BLE001 - the trainer's figures never stop the daemon
            self.log.error("training figures failed", error=logs.redact(repr(exc)))

    def _check_health(self) -> None:
        self._last_health = time.time()
        self._poll_training()
        trainer = self.store.trainer(self.run_name)
        if not trainer or trainer.state != "running":
            return
        message = self.clock.overdue_message(time.time(), trainer.started_at)
        if message:
            self.store.add_event(self.run_name, "warning", "epoch_overdue", message)
            self.log.warning("epoch overdue", detail=message)
            self.publisher.alert("epoch_overdue", f"overdue:{self.clock.expected_epoch()}",
                                 message=message)
