"""The outbox worker: delivers what the daemon queued in the state database.

Channels: "alert" (apprise), "supabase" (row upserts), "storage" (contact sheet uploads),
"git" (pushes of the results repository to `[results] remote`: one push sends every commit
queued before it; the daemon runs a second worker for this channel alone, so a push that
hangs on a dead remote never holds up Supabase or alerts).
Per channel, items go out in the order they were queued; an item that fails blocks the ones
behind it until it is delivered, and is retried with exponential backoff (tenacity's wait
strategies, capped). The queue lives in SQLite, so nothing is lost across outages or daemon
restarts. The worker runs in its own thread with its own Store connection: the daemon only
enqueues (a local insert) and calls `wake()`; it never waits on Supabase or a webhook.
Items whose sink is not configured stay pending until a worker with that sink runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tenacity import RetryCallState, wait_exponential, wait_random

from watcher.logs import get_logger
from watcher.publish.alerts import AlertSink, notify_type_for
from watcher.publish.supabase import DeliveryError, SupabaseSink, safe_error
from watcher.records import OutboxItem
from watcher.store import Store


class OutboxWorker:
    def __init__(
        self,
        store_path: str | Path,
        run: str,
        supabase: SupabaseSink | None,
        alerts: AlertSink | None,
        min_alert_interval_s: float = 1.0,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        alert_max_attempts: int = 20,
        batch_size: int = 50,
        idle_poll_s: float = 30.0,
        git: Any | None = None,
    ) -> None:
        self.run = run
        self.git = git  # has push() -> PushResult (watcher.publish.gitrepo.ResultsRepo)
        self.supabase = supabase
        self.alerts = alerts
        self.min_alert_interval_s = float(min_alert_interval_s)
        self.backoff_initial_s = float(backoff_initial_s)
        self.backoff_max_s = float(backoff_max_s)
        self.alert_max_attempts = int(alert_max_attempts)
        self.batch_size = max(1, int(batch_size))
        # Fallback poll for items queued by another process (which cannot call wake()).
        self.idle_poll_s = float(idle_poll_s)
        self._wait = wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s) \
            + wait_random(0, self.backoff_initial_s)
        self._store = Store(store_path)
        self._lock = threading.Lock()  # one drain at a time (thread or caller)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_alert_at = float("-inf")  # monotonic time of the last alert sent
        self.log = get_logger(run=run, component="outbox")

    # ---- thread control -----------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"outbox-{self.run}", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Deliver now: call after enqueueing."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> bool:
        """Ask the thread to finish (an in-flight request ends within its own timeout).
        True when it has stopped. Pending items stay queued for the next run."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
            self._thread = None
        return True

    def close(self) -> None:
        if self.stop():
            self._store.close()

    def _loop(self) -> None:
        self.log.info("outbox.started", supabase=self.supabase is not None,
                      alerts=self.alerts is not None)
        while not self._stop.is_set():
            self._wake.clear()  # before draining: a wake() during the drain is not lost
            floor = 0.0
            try:
                if self.drain_once() == 0:
                    floor = min(self.backoff_initial_s, 1.0)  # never spin on a stuck item
            except Exception as exc:  # the worker must outlive any bug in one delivery
                self.log.error("outbox.drain_failed", error=safe_error(exc))
                floor = self.backoff_initial_s
            self._wake.wait(max(floor, self._next_delay()))
        self.log.info("outbox.stopped")

    def _channels(self) -> list[str]:
        chans = ["alert"] if self.alerts is not None else []
        chans += ["git"] if self.git is not None else []
        return chans + (["supabase", "storage"] if self.supabase is not None else [])

    def _next_delay(self) -> float:
        """Seconds until the earliest pending item of a configured channel is due."""
        chans = self._channels()
        if not chans:
            return self.idle_poll_s
        with self._lock:
            marks = ",".join("?" * len(chans))
            row = self._store.conn.execute(
                f"SELECT MIN(next_attempt_at) FROM outbox WHERE status='pending' "
                f"AND channel IN ({marks})", chans,
            ).fetchone()
        if row is None or row[0] is None:
            return self.idle_poll_s
        return max(0.0, min(self.idle_poll_s, float(row[0]) - time.time()))

    # ---- draining -------------------------------------------------------------------------------
    def drain_once(self) -> int:
        """Deliver every due item of each configured channel, in order, stopping a channel at
        its first failure. Returns the number of items delivered."""
        with self._lock:
            delivered = 0
            if self.alerts is not None:
                delivered += self._drain_alerts()
            if self.git is not None:
                delivered += self._drain_git(self.git)
            if self.supabase is not None:
                delivered += self._drain_supabase(self.supabase)
                delivered += self._drain_storage(self.supabase)
            return delivered

    def backoff_s(self, attempts: int) -> float:
        """Delay before retry number `attempts` (1 = after the first failure)."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(1, attempts)
        return min(self.backoff_max_s, float(self._wait(state)))

    def _failed(self, items: list[OutboxItem], exc: BaseException, channel: str) -> None:
        error = safe_error(exc)
        permanent = isinstance(exc, DeliveryError) and exc.permanent
        with self._store.tx():
            for item in items:
                attempts = int(item.attempts) + 1
                dead = permanent or (channel == "alert" and attempts >= self.alert_max_attempts)
                delay = self.backoff_s(attempts)
                self._store.mark_failed(item.id, error, time.time() + delay, dead=dead)
        self.log.warning(
            "outbox.delivery_failed", channel=channel, items=[i.id for i in items],
            attempts=int(items[0].attempts) + 1, retry_in_s=None if dead else round(delay, 2),
            dead=dead, error=error,
        )

    def _delivered(self, items: list[OutboxItem]) -> None:
        with self._store.tx():
            for item in items:
                self._store.mark_delivered(item.id)

    def _supabase_batch(self, items: list[OutboxItem]) -> list[OutboxItem]:
        """The leading items that can share one upsert request: same table, conflict target
        and columns, and no conflict key twice (PostgreSQL refuses to update a row twice in
        one INSERT ... ON CONFLICT)."""
        first = items[0].payload
        cols = [c.strip() for c in first["on_conflict"].split(",")]
        keys: set[tuple[Any, ...]] = set()
        batch: list[OutboxItem] = []
        for item in items[: self.batch_size]:
            p = item.payload
            if not self._valid_row_payload(p) or (p["table"], p["on_conflict"]) != (first["table"], first["on_conflict"]) \
                    or p["row"].keys() != first["row"].keys():
                break
            key = tuple(p["row"].get(c) for c in cols)
            if key in keys:
                break
            keys.add(key)
            batch.append(item)
        return batch

    @staticmethod
    def _valid_row_payload(payload: Any) -> bool:
        return (isinstance(payload, dict) and isinstance(payload.get("table"), str)
                and isinstance(payload.get("on_conflict"), str)
                and isinstance(payload.get("row"), dict) and bool(payload["row"]))

    def _drain_supabase(self, sink: SupabaseSink) -> int:
        delivered = 0
        while not self._stop.is_set():
            items = self._store.due("supabase", self.batch_size)
            if not items:
                break
            if not self._valid_row_payload(items[0].payload):
                self._failed(items[:1], DeliveryError("malformed payload", permanent=True), "supabase")
                continue
            batch = self._supabase_batch(items)
            p = batch[0].payload
            try:
                sink.upsert(p["table"], [i.payload["row"] for i in batch], p["on_conflict"])
            except Exception as exc:
                self._failed(batch, exc, "supabase")
                break
            self._delivered(batch)
            delivered += len(batch)
            self.log.info("outbox.delivered", channel="supabase", table=p["table"], rows=len(batch))
        return delivered

    def _drain_git(self, repo: Any) -> int:
        """One push for every commit queued so far (a push sends the branch with all of them).
        A failure keeps them queued with backoff; they are never dropped: git refuses
        nothing for good that a person cannot fix (a rejected push waits for them)."""
        items = self._store.due("git", 10_000)
        if not items or self._stop.is_set():
            return 0
        result = repo.push()
        if not result.ok:
            self._failed(items, DeliveryError(result.detail), "git")  # redacted there
            return 0
        self._delivered(items)
        self.log.info("outbox.delivered", channel="git", commits=len(items))
        return len(items)

    def _one_by_one(self, channel: str) -> Iterator[tuple[OutboxItem, Any]]:
        """The channel's due items, one at a time, until none is due or the worker stops (an
        item that failed is not due again at once: the caller's next turn gets the next)."""
        while not self._stop.is_set():
            items = self._store.due(channel, 1)
            if not items:
                return
            yield items[0], items[0].payload

    def _drain_storage(self, sink: SupabaseSink) -> int:
        delivered = 0
        for item, p in self._one_by_one("storage"):
            try:
                if not isinstance(p, dict) or not {"bucket", "object_path", "file"} <= p.keys():
                    raise DeliveryError("malformed payload", permanent=True)
                sink.upload(p["bucket"], p["object_path"], p["file"],
                            p.get("content_type", "image/png"))
            except Exception as exc:
                self._failed([item], exc, "storage")
                if isinstance(exc, DeliveryError) and exc.permanent:
                    continue  # a file that is gone will not come back: do not block the rest
                break
            self._delivered([item])
            delivered += 1
            self.log.info("outbox.delivered", channel="storage", object=p["object_path"])
        return delivered

    def _drain_alerts(self) -> int:
        assert self.alerts is not None
        delivered = 0
        for item, p in self._one_by_one("alert"):
            if not isinstance(p, dict) or not isinstance(p.get("title"), str):
                self._failed([item], DeliveryError("malformed payload", permanent=True), "alert")
                continue
            # At most one message per min_alert_interval_s, retries included.
            pause = self._last_alert_at + self.min_alert_interval_s - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                break
            already = list(p.get("sent_to") or [])
            done, errors = self.alerts.deliver(
                p["title"], str(p.get("body", "")), notify_type_for(str(p.get("kind"))), already
            )
            self._last_alert_at = time.monotonic()
            if errors:
                if done != set(already):
                    # Remember who has it, so the retry only goes to the targets that failed.
                    self._store.enqueue(item.run, "alert", item.dedupe_key,
                                        {**p, "sent_to": sorted(done)})
                self._failed([item], DeliveryError("; ".join(errors)), "alert")
                break
            self._delivered([item])
            delivered += 1
            self.log.info("outbox.delivered", channel="alert", kind=p.get("kind"))
        return delivered
