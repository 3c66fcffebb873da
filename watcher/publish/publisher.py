"""The record and publish stages: the epoch's folder written and its state recorded; then one
git commit and the destinations (Supabase rows and alerts queued in the durable outbox,
delivered by a background worker; the report and its pictures)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from watcher import logs
from watcher.config import WatchConfig
from watcher.epoch.decide import EpochRecord, Verdict, verdict
from watcher.epoch.evaluate import EpochEvaluation
from watcher.metrics import EpochAggregate
from watcher.plan import partial_at_least
from watcher.publish import alerts as alert_mod
from watcher.publish import host as host_mod
from watcher.publish import supabase as supabase_mod
from watcher.publish.destinations import (
    DecisionAlerts,
    Destination,
    FinishedRun,
    PublishedEpoch,
    RunReport,
    SupabaseEpochs,
    send,
    send_run_end,
)
from watcher.publish.gitrepo import GitPublishError, ResultsRepo
from watcher.publish.outbox import OutboxWorker
from watcher.publish.results import write_epoch_folder
from watcher.records import RunStatus
from watcher.rules import Decision, Rule, decision_word, decisions_from_dicts
from watcher.store import Store
from watcher.summary import one_line_verdict

__all__ = ["Publisher", "decision_word", "decisions_from_dicts", "one_line_verdict"]


class Publisher:
    def __init__(self, cfg: WatchConfig, store: Store, repo: ResultsRepo, log: logs.Logger) -> None:
        self.cfg = cfg
        self.store = store
        self.repo = repo
        self.log = log
        self.run = cfg.run.name
        self.worker = OutboxWorker(
            cfg.state_db, self.run,
            supabase=supabase_mod.SupabaseSink.from_env(cfg.supabase.timeout_s)
            if cfg.supabase.enabled else None,
            alerts=alert_mod.AlertSink.from_env(),
            min_alert_interval_s=cfg.alerts.min_interval_s,
            backoff_max_s=cfg.supabase.retry_max_s,
        )
        # Pushes to [results] remote go through the durable outbox too, in a worker of their
        # own: a remote that is down (for minutes or days) never blocks evaluation, and every
        # commit is pushed once it is back, even across daemon restarts.
        self.pusher = OutboxWorker(
            cfg.state_db, self.run, supabase=None, alerts=None,
            git=repo if cfg.results.remote else None,
            backoff_max_s=cfg.supabase.retry_max_s,
        ) if cfg.results.remote else None
        store.set_sinks(self.run, {"supabase": self.worker.supabase is not None,
                                   "alerts": self.worker.alerts is not None,
                                   "git": self.pusher is not None})
        self._host: dict[str, Any] | None = None
        # after the results commit (and at the run's end), in this order; each is isolated
        # from the others
        self.destinations: list[Destination] = [SupabaseEpochs(cfg, store, lambda: self.host),
                                                DecisionAlerts(self.alert_decisions),
                                                RunReport(cfg, store, repo, self._queue_push)]

    @property
    def host(self) -> dict[str, Any]:
        """Host, GPU and results location, sent with every row (asked once per daemon)."""
        if self._host is None:
            self._host = host_mod.describe(self.cfg.model.device, self.cfg.run_results_dir,
                                           self.cfg.results_repo, self.cfg.results.remote)
            host_mod.record(self.store.conn, self._host)
        return self._host

    def start(self) -> None:
        # The run's recorded state, not "running": a daemon restarted after the run ended
        # must not turn the finished run back into a running one in Supabase.
        row = self.store.run_row(self.run)
        status = row.status if row and row.status in supabase_mod.RUN_STATUSES else "running"
        supabase_mod.enqueue_run(self.store, self.run, status, self.cfg.params(),
                                 verdict=row.verdict if row else None,
                                 best_epoch=row.best_epoch if row else None, host=self.host)
        self.worker.start()
        if self.pusher is not None:
            self.pusher.start()

    def stop(self) -> None:
        self.worker.stop(timeout=5.0)
        if self.pusher is not None:
            self.pusher.stop(timeout=5.0)

    def flush(self) -> int:
        """One delivery pass now, in this thread (the process is about to exit); what fails
        stays queued for the next run. Returns the number of items delivered."""
        try:
            pushed = self.pusher.drain_once() if self.pusher is not None else 0
            return pushed + self.worker.drain_once()
        except Exception as exc:  # noqa: BLE001 - exiting cleanly matters more
            self.log.warning("final delivery failed", error=logs.redact(repr(exc)))
            return 0

    # ---- alerts ---------------------------------------------------------------------------------
    def alert(self, kind: str, dedupe_key: str, **facts: Any) -> None:
        title, body = alert_mod.format_alert(kind, run=self.run, **facts)
        alert_mod.enqueue_alert(self.store, self.run, kind, f"{kind}:{dedupe_key}", title, body,
                                self.cfg.alerts.dedupe_window_s)
        self.worker.wake()

    # ---- epochs ---------------------------------------------------------------------------------
    def record_epoch(self, evaluation: EpochEvaluation, decisions: Sequence[Decision]) -> Path:
        """The epoch's folder written and in place, evaluation and decisions in the state
        database. An OSError (results folder unwritable) leaves nothing recorded: the caller
        retries."""
        ck, epoch = evaluation.checkpoint, evaluation.epoch
        final = write_epoch_folder(self.cfg.run_results_dir, epoch, evaluation.metrics,
                                   evaluation.samples, evaluation.review, evaluation.pictures)
        self.store.save_evaluation(ck, epoch, evaluation.metrics, str(final))
        for d in decisions:
            self.store.save_decision(self.run, epoch, ck.id, d)
        return final

    def publish_epoch(self, checkpoint_id: int, sha256: str, epoch: int, folder: Path,
                      metrics: Mapping[str, Any], decisions: Sequence[Decision],
                      backlog: bool = False) -> PublishedEpoch:
        """A recorded epoch: one results commit, then each destination (Supabase, alerts,
        the report's pictures)."""
        commit = self._commit(checkpoint_id, sha256, epoch, folder, metrics, decisions)
        published = PublishedEpoch(self.run, epoch, checkpoint_id, folder, metrics, decisions,
                                   commit, backlog)
        send(self.destinations, published, self.store, self.log)
        self.worker.wake()
        return published

    def alert_decisions(self, epoch: int, checkpoint_id: int, decisions: Sequence[Decision],
                        only_missing: bool = False, commit: str | None = None) -> int:
        """The alerts an epoch's decisions call for. only_missing skips those queued once
        already (after a restart: a kill may have come between the commit and them).
        Returns the number queued."""
        queued = 0
        for d in decisions:
            kind = d.alert_kind
            if kind is None:
                continue
            key = f"{d.criterion}:{epoch}"
            if only_missing and self.store.alert_queued(self.run, f"{kind}:{key}"):
                continue
            self.alert(kind, key, epoch=epoch, criterion=d.criterion, metric=d.metric,
                       value=d.value, threshold=d.threshold, message=d.message,
                       commit=commit or self.store.git_commit_of(checkpoint_id))
            queued += 1
        return queued

    def _commit(self, checkpoint_id: int, sha256: str, epoch: int, folder: Path,
                metrics: Mapping[str, Any], decisions: Sequence[Decision]) -> str | None:
        """Commit once: reuse a commit already made for this checkpoint (crash recovery).
        None when git failed: the epoch stays in the backlog and is committed later."""
        log = self.log.bind(epoch=epoch)
        existing = self.repo.find_commit(sha256)
        if existing:
            commit = existing
            log.info("commit already present", commit=commit[:12])
            self._queue_push(commit)  # a kill may have come before its push was queued
        else:
            subject = f"{self.run} epoch {epoch}: {one_line_verdict(metrics['aggregate'], decisions)}"
            body = "\n".join(f"- {d.criterion}: {d.outcome} ({d.message})" for d in decisions)
            try:
                commit = self.repo.commit_paths([folder], subject, body or "no criteria", sha256)
            except GitPublishError as exc:
                # git's own message spans lines (a held lock comes with advice): one line here
                message = " ".join(logs.redact(str(exc)).split())[:400]
                self.store.add_event(self.run, "error", "git_commit_failed", message, epoch)
                log.error("git commit failed; will retry", error=message)
                # A full disk or read-only repository can last for hours: say so, once.
                self.alert("evaluation_error", f"git:{sha256}", epoch=epoch,
                           error=f"{message}; the commit will be retried")
                return None
            log.info("committed", commit=commit[:12])
            self._queue_push(commit)
        self.store.set_git_commit(checkpoint_id, commit)
        return commit

    def _queue_push(self, commit: str) -> None:
        if self.pusher is not None:
            self.store.enqueue(self.run, "git", f"push:{commit}", {"commit": commit})
            self.pusher.wake()

    # ---- the run ---------------------------------------------------------------------------------
    def finish_run(self, status: RunStatus, rules: Sequence[Rule],
                   history: Sequence[EpochRecord]) -> Verdict:
        """The run is over: verdict and best epoch recorded, sent to Supabase, announced;
        then each destination's run end (the report)."""
        summary = verdict(rules, history, partial_at_least=partial_at_least(self.cfg.plan))
        best = summary.best_epoch
        # Queued before the run is marked final (the mark is what a restarted daemon checks):
        # a kill in between repeats the announcement, it never loses it.
        supabase_mod.enqueue_run(self.store, self.run, status, self.cfg.params(),
                                 verdict=summary.verdict, best_epoch=best, host=self.host)
        best_metrics = next((h.metrics for h in history if h.epoch == best), EpochAggregate())
        self.alert("run_finished", status, status=status, verdict=summary.verdict,
                   best_epoch=best, overall_score=best_metrics.get("overall_score"),
                   background_match_rate=best_metrics.get("background_match_rate"),
                   color_accuracy=best_metrics.get("color_accuracy"),
                   results=str(self.cfg.run_results_dir))
        self.store.update_run(self.run, status=status, verdict=summary.verdict, best_epoch=best)
        self.log.info("run finished", status=status, verdict=summary.verdict, best_epoch=best)
        send_run_end(self.destinations, FinishedRun(self.run, status, summary), self.store, self.log)
        return summary

    def run_end_again(self, rules: Sequence[Rule], history: Sequence[EpochRecord]) -> None:
        """After a restart of a run already over: each destination's run end once more, doing
        only what a kill cut short (the report commit, if finish_run did not get to it)."""
        row = self.store.run_row(self.run)
        summary = verdict(rules, history, partial_at_least=partial_at_least(self.cfg.plan))
        send_run_end(self.destinations,
                     FinishedRun(self.run, row.status if row else "finished", summary, again=True),
                     self.store, self.log)

    def publish_backlog(self) -> None:
        """Evaluations recorded but not committed (a crash or a git outage): commit them now."""
        for e in self.store.unpublished(self.run):
            folder = Path(e.result_dir)
            if not folder.exists():
                self.log.warning("results folder missing; re-evaluating", epoch=e.epoch)
                self.store.forget_evaluation(e.checkpoint_id)
                continue
            self.publish_epoch(e.checkpoint_id, e.sha256, e.epoch, folder, e.metrics, e.decisions,
                               backlog=True)
