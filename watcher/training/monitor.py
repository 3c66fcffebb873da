"""The daemon's side of the training figures: read, store, judge, alert, every few seconds.

Source: kohya's TensorBoard files under `logging_dir` ([training] logging_dir, else the kohya
config's, relative to the trainer's cwd), else the progress lines of the trainer's log. When
event files appear after log points were stored, the log points are dropped (their clock is
the progress bar's, not Unix time). Health findings alert once per occurrence and are kept
for `status` and the page; rules over training metrics (`metric = "loss"` ...) are judged
against the epoch in training and may alert or stop like any other.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import psutil

from watcher import logs
from watcher.config import WatchConfig
from watcher.epoch.act import FINAL_RUN_STATES, act
from watcher.epoch.decide import EpochRecord, decide
from watcher.publish.publisher import Publisher
from watcher.records import TRAINER_ENDED, RunStatus
from watcher.rules import Decision, Rule, is_training_rule
from watcher.store import Store
from watcher.training import gpu, storage
from watcher.training.figures import figures
from watcher.training.health import findings, training_metrics
from watcher.training.tensorboard import Batch, TensorBoardReader, logging_dir
from watcher.training.trainer_log import TrainerLogReader

STOPPING_OR_ENDED: frozenset[RunStatus] = FINAL_RUN_STATES | {"stopping"}


class TrainingMonitor:
    def __init__(self, cfg: WatchConfig, store: Store, publisher: Publisher,
                 log: logs.Logger, rules: list[Rule]) -> None:
        self.cfg, self.store, self.publisher, self.log = cfg, store, publisher, log
        self.run = cfg.run.name
        folder, prefix = logging_dir(cfg)
        self.tensorboard = TensorBoardReader(folder, prefix) if folder is not None else None
        trainer = store.trainer(self.run)
        log_path = Path(trainer.log_path) if trainer and trainer.log_path else cfg.trainer.log_file
        self.trainer_log = TrainerLogReader(log_path)
        self.source: str | None = None
        self.set_rules(rules)
        self._last_step: int | None = None
        self._step_seen_at: float | None = None
        self._history: dict[int, dict[str, Any]] = {}
        self._raised: set[str] = set()
        # decisions recorded before a restart are not recorded (or alerted) twice
        self._decided = {(d.epoch, d.decision.criterion, d.decision.outcome)
                         for d in store.decisions(self.run)}

    def set_rules(self, rules: list[Rule]) -> None:
        self.rules = [r for r in rules if is_training_rule(r)]

    def _read(self) -> Batch:
        if self.tensorboard is not None:
            batch = self.tensorboard.poll()
            if self.tensorboard.found_any:
                if self.source != "tensorboard":
                    storage.clear_points(self.store, self.run)
                    self.source = "tensorboard"
                return batch
            warnings = batch.warnings
        else:
            warnings = []
        trainer = self.store.trainer(self.run)  # the launcher may start it after this daemon
        if trainer and trainer.log_path and Path(trainer.log_path) != self.trainer_log.path:
            self.trainer_log = TrainerLogReader(Path(trainer.log_path))
        batch = self.trainer_log.poll()
        batch.warnings[:0] = warnings
        if self.trainer_log.found_any:
            self.source = "log"
        return batch

    def poll(self, now: float | None = None) -> dict[str, Any]:
        """One round; returns the figures stored for `status`."""
        now = time.time() if now is None else now
        batch = self._read()
        for warning in batch.warnings:
            self.log.warning("training figures", detail=warning)
            self.store.add_event(self.run, "warning", "training_input", warning)
        storage.save_points(self.store, self.run, batch)
        series = storage.load_series(self.store, self.run)
        figs = figures(series, self.cfg.max_train_epochs)
        if figs["step"] != self._last_step or self._step_seen_at is None:
            self._last_step, self._step_seen_at = figs["step"], now
        trainer = self.store.trainer(self.run)
        ended = trainer is not None and trainer.state in TRAINER_ENDED
        since = None if ended or figs["step"] is None else now - self._step_seen_at
        found = findings(series, figs, loss_rise_factor=self.cfg.training.loss_rise_factor,
                         stall_minutes=self.cfg.training.stall_minutes, seconds_since_step=since)
        for f in found:
            self._raise(f.kind, f.key, f.message, figs.get("epoch"))
        self._nothing_logged(trainer, ended, now)
        if self.rules and figs["epoch"] and (batch.points or not ended):
            self._judge(int(figs["epoch"]), training_metrics(series, figs, since))
        storage.save_state(self.store, self.run, self.source, figs,
                           [asdict(f) for f in found], gpu.sample(self._gpu_pids(trainer, ended)))
        return figs

    @staticmethod
    def _gpu_pids(trainer: Any, ended: bool) -> dict[str, list[int]]:
        """Whose GPU memory to show: the trainer's process tree (accelerate and its
        workers) and this daemon."""
        pids = {"daemon": [os.getpid()]}
        if trainer is not None and trainer.pid and not ended:
            try:
                root = psutil.Process(trainer.pid)
                pids["trainer"] = [root.pid, *(c.pid for c in root.children(recursive=True))]
            except psutil.Error:
                pass
        return pids

    def _nothing_logged(self, trainer: Any, ended: bool, now: float) -> None:
        """A trainer running for stall_minutes with no figures from either source: said once
        (a warning, not an alert: the run itself may be fine)."""
        if self.source is not None or trainer is None or ended or not trainer.started_at:
            return
        if now - trainer.started_at <= self.cfg.training.stall_minutes * 60 or "nothing_logged" in self._raised:
            return
        self._raised.add("nothing_logged")
        where = f"TensorBoard files under {self.tensorboard.root}" if self.tensorboard else \
            "TensorBoard files (no logging_dir in the kohya config or [training])"
        message = (f"the trainer has logged no figures for {(now - trainer.started_at) / 60:.0f} min: "
                   f"no {where}, no progress lines in {self.trainer_log.path}")
        self.log.warning("training figures", detail=message)
        self.store.add_event(self.run, "warning", "training_input", message)

    def _raise(self, kind: str, key: str, message: str, epoch: int | None) -> None:
        if key in self._raised:
            return
        self._raised.add(key)
        self.log.warning("training health", kind=kind, detail=message)
        self.store.add_event(self.run, "warning", f"training_{kind}", message, epoch)
        self.publisher.alert("training_health", key, epoch=epoch, message=message)

    def _judge(self, epoch: int, metrics: dict[str, Any]) -> None:
        self._history[epoch] = metrics
        records = [EpochRecord(e, m) for e, m in sorted(self._history.items())]
        for d in decide(self.rules, records, epoch, training=True):
            if d.outcome not in ("fail", "cannot_judge", "marked"):
                continue
            if (epoch, d.criterion, d.outcome) in self._decided:
                continue
            self._decided.add((epoch, d.criterion, d.outcome))
            self._record(epoch, d)

    def _record(self, epoch: int, d: Decision) -> None:
        self.store.save_decision(self.run, epoch, None, d)
        self.log.warning("training rule", epoch=epoch, criterion=d.criterion, outcome=d.outcome,
                         detail=d.message)
        if d.alert_kind:
            self.publisher.alert(d.alert_kind, f"{d.criterion}:{epoch}", epoch=epoch,
                                 criterion=d.criterion, metric=d.metric, value=d.value,
                                 threshold=d.threshold, message=d.message)
        if d.stops and self.store.run_status(self.run) in STOPPING_OR_ENDED:
            return  # a stop is already on its way (or the run is over): one request is enough
        act(self.store, self.run, epoch, [d], self.log)

