"""One epoch, top to bottom: the path every checkpoint (and every sample source) takes.

    1. detect    watcher.epoch.detect.CheckpointDetector    folder events + rescan -> Path
    2. settle    watcher.epoch.settle.Settler               Path -> CheckpointInfo | Rejection
                 EpochPath.record                           CheckpointInfo -> Checkpoint (state DB)
    3. evaluate  watcher.epoch.evaluate.evaluate_checkpoint Checkpoint -> EpochEvaluation
              or watcher.epoch.evaluate.evaluate_images     images already made -> EpochEvaluation
                 (images and numbers in memory: this stage writes nothing)
    4. decide    watcher.epoch.decide.decide_epoch          rules + history -> list[Decision]
    5. record    watcher.publish.Publisher.record_epoch     the epoch's folder + state database
       publish   watcher.publish.Publisher.publish_epoch    git commit, then each destination
                 (watcher.publish.destinations: Supabase, alerts, the report)
    6. act       watcher.epoch.act.act                      Decision.stops -> stop request id

`EpochPath` holds what the stages share (config, state, publisher) and runs 3-6 in order:
`run_checkpoint` for the daemon and `epochwatch evaluate`, `judge_images` for sample sources
(replay, the trainer's samples); `end_run` closes the run (verdict, report, announcement).
The daemon (`watcher.daemon`) adds only the loop around it: detect and settle, signals,
retries and backoff, health, and when the run is over.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from watcher import logs
from watcher.config import WatchConfig
from watcher.ending import late_stop
from watcher.epoch.act import FINAL_RUN_STATES, act, redo_lost_stops
from watcher.epoch.decide import EpochRecord, decide_epoch
from watcher.epoch.evaluate import EpochEvaluation, Renderer, evaluate_checkpoint, evaluate_images
from watcher.epoch.settle import CheckpointInfo, Rejection, describe_name
from watcher.metrics import EpochAggregate
from watcher.plan import partial_at_least
from watcher.prompts import SamplePrompt
from watcher.publish.gitrepo import ResultsRepo
from watcher.publish.publisher import Publisher
from watcher.records import RunStatus
from watcher.rules import Decision, Rule
from watcher.store import Checkpoint, Store
from watcher.summary import SUMMARY_METRICS
from watcher.training.storage import snapshot as training_snapshot


@dataclass(frozen=True)
class EpochOutcome:
    """What one epoch came to: its evaluation, the decisions and the stop request (if any)."""

    epoch: int
    checkpoint: Checkpoint
    evaluation: EpochEvaluation
    decisions: list[Decision]
    stop_request: int | None

    @property
    def stops(self) -> bool:
        return self.stop_request is not None


class EpochPath:
    """The stages from evaluate to act, over one run's state, results repository and outbox.

    Use `EpochPath.open(cfg)` (and `close()`) outside the daemon; the daemon builds it on the
    store it already opened and calls `start()`.
    """

    def __init__(self, cfg: WatchConfig, store: Store, log: logs.Logger | None = None) -> None:
        self.cfg = cfg
        self.store = store
        self.run = cfg.run.name
        self.log = log or logs.get_logger(run=self.run)
        self.rules: list[Rule] = cfg.rules()
        store.set_judged_by(self.run, self.rules, partial_at_least(cfg.plan))
        self.repo = ResultsRepo(cfg.results_repo, cfg.results.remote)
        self.publisher = Publisher(cfg, store, self.repo, self.log)

    @classmethod
    def open(cls, cfg: WatchConfig, log: logs.Logger | None = None) -> EpochPath:
        """State database, results repository and outbox worker, ready for epochs."""
        store = Store(cfg.state_db)
        store.ensure_run(cfg.run.name, config_path=str(cfg.path), params=cfg.params())
        path = cls(cfg, store, log)
        path.start()
        return path

    def start(self) -> None:
        """Results repository ready, outbox worker running, work a crash left undone redone."""
        self.repo.ensure()
        self.publisher.start()
        self.publisher.publish_backlog()
        self.redo_lost_actions()

    def close(self, *, deliver: bool = True) -> None:
        """Stop the outbox worker (after one last delivery pass) and close the state."""
        if deliver:
            self.publisher.flush()
        self.publisher.stop()
        self.store.close()

    def set_rules(self, rules: Sequence[Rule]) -> None:
        self.rules = list(rules)

    # ---- 2. settle: results into the state database ------------------------------------------
    def record(self, result: CheckpointInfo | Rejection) -> tuple[Checkpoint | None, bool]:
        """A settled checkpoint -> (its state row, whether it is new). A refused file gives
        (None, False): it is recorded, logged and alerted once."""
        if isinstance(result, CheckpointInfo):
            ck, created = self.store.add_checkpoint(
                self.run, str(result.path), result.epoch, result.sha256, result.size,
                result.session_id, result.header.metadata,
            )
            if created:
                self.log.info("checkpoint settled", epoch=ck.epoch, path=ck.path,
                              sha256=ck.sha256[:12])
            return ck, created
        self._refused(result)
        return None, False

    def _refused(self, result: Rejection) -> None:
        raw, reason = str(result.path), result.reason
        size = mtime = None
        try:
            st = os.lstat(raw)
            size, mtime = st.st_size, st.st_mtime
        except OSError:
            pass
        # A name that is not UTF-8 (surrogate escapes) cannot go into SQLite as it is: it
        # would crash the daemon on every restart. Its bytes are stored escaped (\xNN).
        path = os.fsencode(raw).decode("utf-8", "backslashreplace")
        if self.store.add_rejected(self.run, path, size, mtime, reason):
            self.log.warning("checkpoint refused", path=path, reason=reason)
            self.store.add_event(self.run, "error", "checkpoint_refused", f"{path}: {reason}")
            self.publisher.alert("evaluation_error", f"refused:{path}:{size}:{mtime}",
                                 error=f"checkpoint refused: {describe_name(raw)}: {reason}")

    def add_source(self, path: Path | str, epoch: int, sha256: str, size: int,
                   metadata: dict[str, str] | None = None) -> Checkpoint:
        """A sample source's epoch as a state row (what a checkpoint file is to the daemon):
        `sha256` identifies the content, so the same images are recorded, and committed, once."""
        ck, _ = self.store.add_checkpoint(self.run, str(path), epoch, sha256, size, None,
                                          metadata or {})
        return ck

    # ---- 3. evaluate ----------------------------------------------------------------------------
    def evaluate(self, pipeline: Renderer, checkpoint: Checkpoint,
                 heartbeat: Callable[[], object] = lambda: None) -> EpochEvaluation:
        """Render and score one checkpoint; its state says "evaluating" meanwhile."""
        self.store.mark_checkpoint(checkpoint.id, "evaluating")
        self.log.info("evaluation started", epoch=_epoch(checkpoint), path=checkpoint.path)
        return evaluate_checkpoint(pipeline, self.cfg, checkpoint, _epoch(checkpoint),
                                   heartbeat=heartbeat)

    # ---- 4-6. decide, publish, act --------------------------------------------------------------
    def history(self, exclude_checkpoint: int | None = None) -> list[EpochRecord]:
        """The evaluated epochs' aggregates (the latest evaluation of an epoch wins)."""
        latest: dict[int, EpochAggregate] = {}
        for e in self.store.evaluations(self.run):
            if e.checkpoint_id != exclude_checkpoint:
                latest[e.epoch] = e.aggregate
        return [EpochRecord(epoch=ep, metrics=m) for ep, m in sorted(latest.items())]

    def conclude(self, evaluation: EpochEvaluation) -> EpochOutcome:
        """decide -> record -> publish -> act for an evaluated epoch. An OSError from record
        (results folder unwritable) propagates with nothing recorded and no folder left."""
        decisions = self.decide(evaluation)
        folder = self.publisher.record_epoch(evaluation, decisions)
        ck = evaluation.checkpoint
        self.publisher.publish_epoch(ck.id, ck.sha256, evaluation.epoch, folder, evaluation.metrics,
                                     decisions)
        request = act(self.store, self.run, evaluation.epoch, decisions, self.log)
        return EpochOutcome(evaluation.epoch, ck, evaluation, decisions, request)

    def decide(self, evaluation: EpochEvaluation) -> list[Decision]:
        """The rules over this epoch and the ones before; the decisions and the trainer's
        figures (loss, lr, speed) join the epoch's metrics.json."""
        epoch = evaluation.epoch
        decisions = decide_epoch(self.rules, self.history(exclude_checkpoint=evaluation.checkpoint.id),
                                 epoch, evaluation.aggregate)
        evaluation.metrics["decisions"] = [d.to_dict() for d in decisions]
        training = training_snapshot(self.store, self.run)
        if training is not None:
            evaluation.metrics["training"] = training
        agg = evaluation.aggregate
        self.log.info("evaluation finished", epoch=epoch,
                      **{name: agg.get(name) for name in SUMMARY_METRICS},
                      decisions={d.criterion: d.outcome for d in decisions})
        return decisions

    def run_checkpoint(self, pipeline: Renderer, checkpoint: Checkpoint,
                       heartbeat: Callable[[], object] = lambda: None) -> EpochOutcome:
        """evaluate -> decide -> publish -> act for one recorded checkpoint."""
        return self.conclude(self.evaluate(pipeline, checkpoint, heartbeat))

    def score_images(self, checkpoint: Checkpoint,
                     samples: Sequence[tuple[SamplePrompt, Image.Image]]) -> EpochEvaluation:
        """A sample source's epoch: images already made -> scored; its state says "evaluating"
        meanwhile (and "pending" again if scoring is cut short)."""
        self.store.mark_checkpoint(checkpoint.id, "evaluating")
        try:
            return evaluate_images(self.cfg, checkpoint, _epoch(checkpoint), samples)
        except BaseException:
            self.store.mark_checkpoint(checkpoint.id, "pending")
            raise

    def judge_images(self, checkpoint: Checkpoint,
                     samples: Sequence[tuple[SamplePrompt, Image.Image]]) -> EpochOutcome:
        """A sample source's epoch: images already made -> score -> decide -> publish -> act.
        `checkpoint` comes from `add_source` (or `record`); its epoch must be set."""
        return self.conclude(self.score_images(checkpoint, samples))

    def fail(self, checkpoint: Checkpoint, exc: BaseException) -> str:
        """The checkpoint itself is unusable: marked failed, recorded, alerted. Returns the
        one-line (redacted) reason."""
        epoch = _epoch(checkpoint)
        message = logs.redact(f"{type(exc).__name__}: {exc}")
        self.store.mark_checkpoint(checkpoint.id, "failed", error=message)
        self.store.add_event(self.run, "error", "evaluation_failed", message, epoch)
        self.log.error("evaluation failed", epoch=epoch, error=message)
        self.publisher.alert("evaluation_error", f"eval:{checkpoint.sha256}", epoch=epoch,
                             error=message)
        return message

    # ---- the end of the run ---------------------------------------------------------------------
    def last_epoch_done(self) -> bool:
        return any(e.epoch >= self.cfg.max_train_epochs for e in self.store.evaluations(self.run))

    def end_run(self, last_epoch_done: bool) -> RunStatus | None:
        """Every epoch is settled and evaluated: the verdict, the report and the announcement,
        once across restarts. Returns the run's final status, or None when an earlier start
        announced it already (then only a report a kill cut short is committed)."""
        if self.store.run_status(self.run) in FINAL_RUN_STATES:
            self.publisher.run_end_again(self.rules, self.history())
            return None
        # a stop decided after the trainer wrote its last epoch stopped nothing: it finished
        late = late_stop(self.store, self.run, self.cfg.max_train_epochs)
        stopped = bool(self.store.stop_requests(self.run)) and late is None
        status: RunStatus = "stopped" if stopped else ("finished" if last_epoch_done else "failed")
        self.publisher.finish_run(status, self.rules, self.history())
        return status

    # ---- after a restart ------------------------------------------------------------------------
    def redo_lost_actions(self) -> None:
        """An epoch's decisions are acted on after its commit, which takes a while: a kill in
        between must not lose a stop or an alert. Both are idempotent: redo what is missing."""
        for e in self.store.evaluations(self.run):
            if self.publisher.alert_decisions(e.epoch, e.checkpoint_id, e.decisions,
                                              only_missing=True):
                self.log.warning("alerts lost to an interruption queued again", epoch=e.epoch)
        redo_lost_stops(self.store, self.run, self.log)


def _epoch(checkpoint: Checkpoint) -> int:
    return checkpoint.epoch if checkpoint.epoch is not None else 0
