"""Where a published epoch goes after its results commit: a list of destinations with one
small interface (the Lightning-callback style).

Each destination receives the typed `PublishedEpoch` and queues its work in the durable
outbox (watcher/publish/outbox.py), which delivers and retries it. A destination that raises
is logged and recorded as an event; the others still run, and the epoch goes on.

To add a destination: a class with `name` and `on_epoch(epoch)`, added to the list that
`Publisher.__init__` builds (`destinations_for`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from watcher import logs
from watcher.publish import supabase as supabase_mod
from watcher.rules import Decision, decision_word

if TYPE_CHECKING:
    from watcher.config import WatchConfig
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


class Destination(Protocol):
    name: str

    def on_epoch(self, epoch: PublishedEpoch) -> None: ...


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


def send(destinations: Sequence[Destination], epoch: PublishedEpoch, store: Store,
         log: logs.Logger) -> list[str]:
    """Each destination in turn; one that fails does not stop the others. Returns the names
    of those that failed."""
    failed = []
    for destination in destinations:
        try:
            destination.on_epoch(epoch)
        except Exception as exc:  # noqa: BLE001 - isolated: the epoch is recorded and committed
            message = logs.redact(f"{destination.name}: {type(exc).__name__}: {exc}")
            log.error("destination failed", epoch=epoch.epoch, error=message)
            store.add_event(epoch.run, "error", "destination_failed", message, epoch.epoch)
            failed.append(destination.name)
    return failed
