"""The publish stage: results folder into place, state recorded, one git commit, Supabase
rows and alerts queued in the durable outbox (delivered by a background worker)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from watcher import logs
from watcher.config import WatchConfig
from watcher.decide import EpochRecord, Verdict, verdict
from watcher.evaluate import EpochEvaluation
from watcher.metrics import EpochAggregate
from watcher.plan import partial_at_least
from watcher.publish import alerts as alert_mod
from watcher.publish import host as host_mod
from watcher.publish import supabase as supabase_mod
from watcher.publish.destinations import (
    DecisionAlerts,
    Destination,
    PublishedEpoch,
    SupabaseEpochs,
    send,
)
from watcher.publish.gitrepo import GitPublishError, ResultsRepo
from watcher.publish.outbox import OutboxWorker
from watcher.report import write_report, write_run_pictures
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
        # after the results commit, in this order; each is isolated from the others
        self.destinations: list[Destination] = [SupabaseEpochs(cfg, store, lambda: self.host),
                                                DecisionAlerts(self.alert_decisions)]

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
        """Folder into place, evaluation and decisions in the state database. An OSError
        (results folder unwritable) leaves nothing recorded: the caller retries."""
        ck, epoch = evaluation.checkpoint, evaluation.epoch
        evaluation.folder.write_metrics(evaluation.metrics)
        final = evaluation.folder.finish()
        self.store.save_evaluation(ck, epoch, evaluation.metrics, str(final))
        for d in decisions:
            self.store.save_decision(self.run, epoch, ck.id, d)
        return final

    def publish_epoch(self, checkpoint_id: int, sha256: str, epoch: int, folder: Path,
                      metrics: Mapping[str, Any], decisions: Sequence[Decision],
                      backlog: bool = False) -> PublishedEpoch:
        """A recorded epoch: one results commit, then each destination (Supabase, alerts)."""
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
                # grid.png and curves.png are refreshed in the working tree for people looking
                # at it, but committed only with the final report: recommitted every epoch,
                # they made most of the repository's size (docs/multi-host.md, bench/results_size.py).
                self._run_pictures()
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

    def _run_pictures(self) -> list[Path]:
        """grid.png and curves.png refreshed in the working tree; a plotting failure must
        never stop the daemon, so it is logged and the epoch goes on without them."""
        try:
            return write_run_pictures(self.cfg, self.store)
        except Exception as exc:  # noqa: BLE001 - pictures are a courtesy, results are not
            self.log.warning("run pictures failed", error=logs.redact(repr(exc)))
            return []

    # ---- the run ---------------------------------------------------------------------------------
    def finish_run(self, status: str, rules: Sequence[Rule],
                   history: Sequence[EpochRecord]) -> Verdict:
        """The run is over: verdict and best epoch recorded, sent to Supabase, announced."""
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
        self._commit_report(summary)
        return summary

    def commit_report_if_missing(self, rules: Sequence[Rule], history: Sequence[EpochRecord]) -> None:
        """After a restart of a run already over: the final report commit, if a kill cut
        finish_run short before it was made."""
        rel = (self.cfg.run_results_dir / "report.md").relative_to(self.cfg.results_repo)
        if not self.repo.commits_touching(str(rel)):
            self.log.info("final report missing; committing it now")
            self._commit_report(verdict(rules, history, partial_at_least=partial_at_least(self.cfg.plan)))

    def _commit_report(self, summary: Verdict) -> None:
        """report.md, grid.png, curves.png and loss.png, committed once more at the end of the run."""
        try:
            report = write_report(self.cfg, self.store)
            paths = [report, *(report.parent / n for n in ("grid.png", "curves.png", "loss.png"))]
            subject = f"{self.run} report: {summary.verdict}, best epoch {summary.best_epoch}"
            commit = self.repo.commit_paths([p for p in paths if p.exists()], subject,
                                            "Final report and pictures.", f"report:{self.run}")
            self._queue_push(commit)
        except Exception as exc:  # noqa: BLE001 - the run's results are already committed
            self.log.warning("final report failed", error=logs.redact(repr(exc)))

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
