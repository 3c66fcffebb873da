"""Where a published epoch goes after its results commit, and a finished run after its
verdict: a list of destinations with one small interface (the Lightning-callback style).

Each destination receives the typed `PublishedEpoch` (`on_epoch`) and, if it has the hook,
the typed `FinishedRun` (`on_run_end`). Supabase and the alerts queue their work in the
durable outbox (watcher/publish/outbox.py), which delivers and retries it; the report
(`RunReport`) refreshes the run's pictures every epoch and commits report.md with them at
the run's end. A destination that raises is logged and recorded as an event; the others still
run, and the epoch (or the run's end) goes on.

To add a destination: a class with `name` and `on_epoch(epoch)` (and `on_run_end(run)` if it
has something to do then), added to the list `Publisher.__init__` builds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from watcher import logs
from watcher.publish import supabase as supabase_mod
from watcher.publish.gitrepo import ResultsRepo
from watcher.report import write_report, write_run_pictures
from watcher.rules import Decision, decision_word

if TYPE_CHECKING:
    from watcher.config import WatchConfig
    from watcher.epoch.decide import Verdict
    from watcher.records import RunStatus
    from watcher.store import Store


@dataclass(frozen=True)
class PublishedEpoch:
    """One epoch as recorded: its results folder, numbers, decisions and results commit."""

    run: str
    epoch: int
    checkpoint_id: int
    folder: Path
    metrics: Mapping[str, Any]
    decisions: Sequence[Decision]
    commit: str | None  # None: the results commit failed; it is retried (publish_backlog)
    backlog: bool = False  # published again after a restart or a git outage


@dataclass(frozen=True)
class FinishedRun:
    """The run is over: its final status and verdict (recorded and announced already)."""

    run: str
    status: RunStatus
    verdict: Verdict
    again: bool = False  # an earlier start ended it: redo only what a kill cut short


class Destination(Protocol):
    name: str

    def on_epoch(self, epoch: PublishedEpoch) -> None: ...


@runtime_checkable
class RunEndDestination(Protocol):
    """A destination with something to do when the run ends (the report)."""

    name: str

    def on_run_end(self, run: FinishedRun) -> None: ...


class SupabaseEpochs:
    """The epoch's row (and contact sheet) for Supabase, once it has a results commit."""

    name = "supabase"

    def __init__(self, cfg: WatchConfig, store: Store, host: Any) -> None:
        self.cfg, self.store, self._host = cfg, store, host

    def on_epoch(self, epoch: PublishedEpoch) -> None:
        if epoch.commit is None:
            return  # sent with the commit, when publish_backlog makes it
        supabase_mod.enqueue_epoch(self.store, epoch.run, epoch.epoch, dict(epoch.metrics),
                                   epoch.commit, decision_word(epoch.decisions), host=self._host())
        sheet = epoch.folder / "contact_sheet.png"
        if self.cfg.supabase.upload_contact_sheet and sheet.exists():
            supabase_mod.enqueue_contact_sheet(self.store, epoch.run, epoch.epoch, sheet,
                                               self.cfg.supabase.bucket)


class DecisionAlerts:
    """The alerts the epoch's decisions call for (stop, failed criterion, cannot judge)."""

    name = "alerts"

    def __init__(self, alert_decisions: Any) -> None:
        self._alert_decisions = alert_decisions

    def on_epoch(self, epoch: PublishedEpoch) -> None:
        # A backlog epoch alerted when it was first recorded; only what a kill lost is queued.
        self._alert_decisions(epoch.epoch, epoch.checkpoint_id, epoch.decisions,
                              only_missing=epoch.backlog, commit=epoch.commit)


class RunReport:
    """report.md and the run's pictures. Each epoch refreshes grid.png and curves.png in the
    results working tree (committed only with the report: recommitted every epoch, they made
    most of the repository's size; docs/multi-host.md, bench/results_size.py). The run's end
    writes report.md and commits it with grid.png, curves.png and loss.png, once."""

    name = "report"

    def __init__(self, cfg: WatchConfig, store: Store, repo: ResultsRepo,
                 queue_push: Callable[[str], None]) -> None:
        self.cfg, self.store, self.repo, self._queue_push = cfg, store, repo, queue_push

    def on_epoch(self, epoch: PublishedEpoch) -> None:
        write_run_pictures(self.cfg, self.store)

    def on_run_end(self, run: FinishedRun) -> None:
        report = self.cfg.run_results_dir / "report.md"
        if run.again and self.repo.commits_touching(str(report.relative_to(self.cfg.results_repo))):
            return  # committed before the restart
        report = write_report(self.cfg, self.store)
        paths = [report, *(report.parent / n for n in ("grid.png", "curves.png", "loss.png"))]
        subject = f"{run.run} report: {run.verdict.verdict}, best epoch {run.verdict.best_epoch}"
        commit = self.repo.commit_paths([p for p in paths if p.exists()], subject,
                                        "Final report and pictures.", f"report:{run.run}")
        self._queue_push(commit)


def send(destinations: Sequence[Destination], epoch: PublishedEpoch, store: Store,
         log: logs.Logger) -> list[str]:
    """Each destination in turn; one that fails does not stop the others. Returns the names
    of those that failed."""
    return _each(destinations, lambda d: d.on_epoch(epoch), store, log, epoch.run, epoch.epoch)


def send_run_end(destinations: Sequence[Destination], run: FinishedRun, store: Store,
                 log: logs.Logger) -> list[str]:
    """`on_run_end` of each destination that has it, isolated as `send` isolates epochs."""
    ending = [d for d in destinations if isinstance(d, RunEndDestination)]
    return _each(ending, lambda d: d.on_run_end(run), store, log, run.run, None)


def _each(destinations: Sequence[Any], hook: Callable[[Any], None], store: Store,
          log: logs.Logger, run: str, epoch: int | None) -> list[str]:
    failed = []
    for destination in destinations:
        try:
            hook(destination)
        except Exception as exc:  # noqa: BLE001 - isolated: the epoch is recorded and committed
            message = logs.redact(f"{destination.name}: {type(exc).__name__}: {exc}")
            log.error("destination failed", epoch=epoch, error=message)
            store.add_event(run, "error", "destination_failed", message, epoch)
            failed.append(destination.name)
    return failed
