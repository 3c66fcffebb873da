"""The act stage: an epoch's decisions -> a stop request in the state database.

The daemon never signals the trainer itself: the launcher (`launcher.launch`), which started
the trainer and knows its identity, polls the open stop request and stops the process group.
Alerts are queued by publish; here only the stop, which must survive a restart: a kill
between an epoch's commit and its stop request is repaired by `redo_lost_stops`.
"""

from __future__ import annotations

from collections.abc import Sequence

from watcher.logs import Logger
from watcher.records import RunStatus
from watcher.rules import Decision
from watcher.store import Store

FINAL_RUN_STATES: frozenset[RunStatus] = frozenset({"stopped", "finished", "failed"})  # announced once


def act(store: Store, run: str, epoch: int, decisions: Sequence[Decision],
        log: Logger) -> int | None:
    """Request a stop when a decision says so; returns the stop request's id, or None."""
    stops = [d for d in decisions if d.stops]
    if not stops:
        return None
    reason = "; ".join(d.message for d in stops)
    request = store.request_stop(run, epoch, reason)
    store.update_run(run, status="stopping")
    log.warning("stop requested", epoch=epoch, reason=reason, request=request)
    return request


def redo_lost_stops(store: Store, run: str, log: Logger) -> list[int]:
    """After a restart: the epochs whose stop decision never became a stop request (a kill
    between the commit and act). Requests them now; returns those epochs."""
    if store.run_status(run) in FINAL_RUN_STATES:
        return []
    asked = [r.epoch for r in store.stop_requests(run)]
    redone = []
    for e in store.evaluations(run):
        epoch, decisions = e.epoch, e.decisions
        if any(d.stops for d in decisions) and not any(a is not None and a <= epoch for a in asked):
            log.warning("stop decision lost to an interruption; requesting it now", epoch=epoch)
            act(store, run, epoch, decisions, log)
            asked.append(epoch)
            redone.append(epoch)
    return redone
