"""The outbox worker against a real HTTP stand-in for Supabase backed by real PostgreSQL:
outages (503, timeouts, refused connections) end with every row delivered once, in order,
across worker restarts, without the daemon ever waiting."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.httpstub import HttpStub, Response, wait_until
from tests.pg import (
    KEEP_TOKENS_3_DEMO_PARAMS,
    PostgrestStandIn,
    postgrest_served,
    sample_metrics,
)
from watcher import logs
from watcher.publish.outbox import OutboxWorker
from watcher.publish.supabase import (
    EPOCHS_CONFLICT,
    SupabaseSink,
    enqueue_contact_sheet,
    enqueue_epoch,
    enqueue_review,
    enqueue_run,
)
from watcher.store import Store

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
KEY = "sk_test_SECRET_service_key_7f3a9c1e5b"
FAST = {"backoff_initial_s": 0.02, "backoff_max_s": 0.1}



@pytest.fixture()
def rest(pg_database: str) -> Iterator[tuple[HttpStub, PostgrestStandIn]]:
    with postgrest_served(pg_database, KEY) as served:
        yield served


def _enqueue_epochs(store: Store, epochs: range) -> None:
    for e in epochs:
        assert enqueue_epoch(store, RUN, e, sample_metrics(RUN, e), None, "continue")


def _counts(store: Store) -> dict[str, int]:
    return store.outbox_counts(RUN).get("supabase", {})


def _worker_with_run(db: Path, stub: HttpStub, **kw: int) -> tuple[Store, OutboxWorker]:
    """The state database with the run row queued, and an outbox worker on it (not started)."""
    store = Store(db)
    worker = OutboxWorker(db, RUN, SupabaseSink(stub.url, KEY, timeout_s=5), None, **kw, **FAST)
    assert enqueue_run(store, RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)
    return store, worker


def test_outage_phases_end_with_every_row_delivered_once_in_order(
    rest: tuple[HttpStub, PostgrestStandIn], pg_database: str, tmp_path: Path
) -> None:
    stub, api = rest
    store = Store(tmp_path / "state.db")
    sink = SupabaseSink(stub.url, KEY, timeout_s=0.3)
    worker = OutboxWorker(tmp_path / "state.db", RUN, sink, None, **FAST)
    assert enqueue_run(store, RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)
    _enqueue_epochs(store, range(1, 3))

    stub.mode = "503"
    assert worker.drain_once() == 0
    errors = [r["last_error"] for r in store.conn.execute("SELECT last_error FROM outbox ORDER BY id")]
    assert "APIError" in errors[0] and errors[1:] == [None, None]  # the others wait their turn

    _enqueue_epochs(store, range(3, 5))
    stub.mode, stub.hang_s = "hang", 1.5  # the server never answers: the client times out
    wait_until(lambda: any("Timeout" in (r[0] or "") for r in
                           store.conn.execute("SELECT last_error FROM outbox")),
               "a timeout", step=worker.drain_once)

    stub.stop()  # connection refused
    _enqueue_epochs(store, range(5, 7))
    wait_until(lambda: any("ConnectError" in (r[0] or "") for r in
                           store.conn.execute("SELECT last_error FROM outbox")),
               "a refused connection", step=worker.drain_once)
    assert _counts(store) == {"pending": 7}
    assert api.applied == []

    stub.mode = "ok"
    stub.start()  # same port: the sink's URL works again
    wait_until(lambda: _counts(store) == {"delivered": 7}, "recovery", step=worker.drain_once)

    assert api.applied_keys("training_runs", "run_name") == [(RUN,)]
    assert api.applied_keys("epoch_evaluations", EPOCHS_CONFLICT) == [(RUN, e) for e in range(1, 7)]
    with psycopg.connect(pg_database) as conn:
        epochs = [r[0] for r in conn.execute("SELECT epoch FROM epoch_evaluations ORDER BY id")]
    assert epochs == list(range(1, 7))
    attempts = [r[0] for r in store.conn.execute("SELECT attempts FROM outbox ORDER BY id")]
    assert attempts[0] >= 3  # the run row lived through all three outages
    sink.close()


def test_a_failing_item_blocks_the_ones_behind_it(
    rest: tuple[HttpStub, PostgrestStandIn], tmp_path: Path
) -> None:
    stub, api = rest
    store, worker = _worker_with_run(tmp_path / "state.db", stub, batch_size=1)
    _enqueue_epochs(store, range(1, 4))
    api.refuse = lambda row: row.get("epoch") == 2
    for _ in range(5):
        worker.drain_once()
        time.sleep(0.03)
    sent_epochs = [r.json()[0].get("epoch") for r in stub.recorded("/rest/v1/epoch_evaluations")]
    assert set(sent_epochs) == {1, 2}  # epoch 3 never went out while epoch 2 failed
    assert len(sent_epochs) >= 3  # epoch 2 was retried
    api.refuse = None
    wait_until(lambda: _counts(store) == {"delivered": 4}, "delivery", step=worker.drain_once)
    assert api.applied_keys("epoch_evaluations", EPOCHS_CONFLICT) == [(RUN, 1), (RUN, 2), (RUN, 3)]


def test_queue_survives_a_daemon_restart_and_waits_for_a_sink(
    rest: tuple[HttpStub, PostgrestStandIn], tmp_path: Path
) -> None:
    stub, api = rest
    db = tmp_path / "state.db"
    store = Store(db)
    enqueue_run(store, RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)
    _enqueue_epochs(store, range(1, 3))
    # No Supabase configured: items stay pending, untouched.
    unconfigured = OutboxWorker(db, RUN, None, None, **FAST)
    assert unconfigured.drain_once() == 0
    unconfigured.close()
    stub.stop()
    first = OutboxWorker(db, RUN, SupabaseSink(stub.url, KEY, timeout_s=0.3), None, **FAST)
    assert first.drain_once() == 0
    first.close()
    store.close()
    assert Store(db).outbox_counts(RUN)["supabase"] == {"pending": 3}

    stub.start()  # "after the restart": a new process, a new worker on the same state file
    second = OutboxWorker(db, RUN, SupabaseSink(stub.url, KEY, timeout_s=5), None, **FAST)
    second.start()
    second.wake()
    wait_until(lambda: Store(db).outbox_counts(RUN)["supabase"] == {"delivered": 3}, "delivery")
    assert second.stop(5)
    assert api.applied_keys("epoch_evaluations", EPOCHS_CONFLICT) == [(RUN, 1), (RUN, 2)]


def test_daemon_never_waits_on_supabase(
    rest: tuple[HttpStub, PostgrestStandIn], tmp_path: Path
) -> None:
    stub, api = rest
    worker = OutboxWorker(tmp_path / "state.db", RUN, SupabaseSink(stub.url, KEY, timeout_s=30), None, **FAST)
    daemon_store = Store(tmp_path / "state.db")  # the daemon's connection, beside the worker's
    worker.start()
    stub.mode = "gate"  # the server takes the request and holds it
    enqueue_run(daemon_store, RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)
    worker.wake()
    wait_until(lambda: len(stub.recorded("/rest/v1/")) == 1, "the request in flight")
    # While the worker is stuck in that request, the daemon goes on queueing epochs.
    _enqueue_epochs(daemon_store, range(1, 6))
    worker.wake()
    assert _counts(daemon_store) == {"pending": 6}
    assert api.applied == []
    stub.gate.set()
    wait_until(lambda: _counts(daemon_store) == {"delivered": 6}, "delivery")
    assert worker.stop(5)
    # one request for the run row, then the five epochs together in one batch
    assert [len(r.json()) for r in stub.recorded("/rest/v1/")] == [1, 5]


def test_same_epoch_twice_and_repeated_content(
    rest: tuple[HttpStub, PostgrestStandIn], pg_database: str, tmp_path: Path
) -> None:
    stub, api = rest
    store, worker = _worker_with_run(tmp_path / "state.db", stub)
    metrics = sample_metrics(RUN, 1)
    assert enqueue_epoch(store, RUN, 1, metrics, None, "continue")
    worker.drain_once()
    # The same content again (a restarted daemon re-queueing): nothing new to send.
    assert not enqueue_epoch(store, RUN, 1, metrics, None, "continue")
    # The commit is now known, and epoch 2 follows: epoch 1 is sent again, updated in place.
    assert enqueue_epoch(store, RUN, 1, metrics, "abcdef1234567", "continue")
    assert enqueue_epoch(store, RUN, 1, metrics, "abcdef1234567", "stop")
    _enqueue_epochs(store, range(2, 3))
    wait_until(lambda: _counts(store) == {"delivered": 5}, "delivery", step=worker.drain_once)
    # epoch 1 twice in a row would break one INSERT ... ON CONFLICT: they went separately
    assert all(len({r["epoch"] for r in req.json()}) == len(req.json())
               for req in stub.recorded("/rest/v1/epoch_evaluations"))
    with psycopg.connect(pg_database) as conn:
        rows = conn.execute("SELECT epoch, git_commit, decision FROM epoch_evaluations ORDER BY epoch").fetchall()
    assert rows == [(1, "abcdef1234567", "stop"), (2, None, "continue")]


def test_reviews_are_delivered_and_a_correction_replaces_them(
    rest: tuple[HttpStub, PostgrestStandIn], pg_database: str, tmp_path: Path
) -> None:
    from watcher.commands.review import review_row

    stub, api = rest
    store, worker = _worker_with_run(tmp_path / "state.db", stub)
    assert enqueue_review(store, RUN, 2, review_row(RUN, 2, 6.0, 7.0, 5.0, "background pink"))
    worker.drain_once()
    # the same review again: nothing to send; a correction: sent, replacing it
    assert not enqueue_review(store, RUN, 2, review_row(RUN, 2, 6.0, 7.0, 5.0, "background pink"))
    assert enqueue_review(store, RUN, 2, review_row(RUN, 2, 6.0, 7.0, 5.0, "background magenta"))
    wait_until(lambda: _counts(store) == {"delivered": 3}, "delivery", step=worker.drain_once)
    assert [r.path for r in stub.recorded("/rest/v1/epoch_reviews")] == ["/rest/v1/epoch_reviews"] * 2
    assert stub.recorded("/rest/v1/epoch_reviews")[0].query["on_conflict"] == ["run_name,epoch"]
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT epoch, notes FROM epoch_reviews").fetchall() == [(2, "background magenta")]


def test_contact_sheets_go_to_storage_and_a_missing_file_does_not_block(tmp_path: Path) -> None:
    ok = tmp_path / "contact_sheet.png"
    ok.write_bytes(b"\x89PNG-sheet")
    store = Store(tmp_path / "state.db")
    assert enqueue_contact_sheet(store, RUN, 3, tmp_path / "gone.png", "epochwatch")
    assert enqueue_contact_sheet(store, RUN, 4, ok, "epochwatch")
    with HttpStub(lambda req: Response(200, {"Key": req.path})) as stub:
        worker = OutboxWorker(tmp_path / "state.db", RUN, SupabaseSink(stub.url, KEY, timeout_s=5), None, **FAST)
        assert worker.drain_once() == 1
        paths = [r.path for r in stub.recorded()]
    assert paths == [f"/storage/v1/object/epochwatch/{RUN}/epoch-004/contact_sheet.png"]
    assert store.outbox_counts(RUN)["storage"] == {"dead": 1, "delivered": 1}


def test_backoff_grows_and_is_capped(tmp_path: Path) -> None:
    worker = OutboxWorker(tmp_path / "state.db", RUN, None, None,
                          backoff_initial_s=1.0, backoff_max_s=300.0)
    first = worker.backoff_s(1)
    assert 1.0 <= first <= 2.0
    assert 8.0 <= worker.backoff_s(4) <= 9.0
    assert worker.backoff_s(20) == 300.0


def test_no_secret_in_logs_or_stored_errors(
    rest: tuple[HttpStub, PostgrestStandIn], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    stub, api = rest
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_KEY", KEY)
    out = io.StringIO()
    logs.configure(level="debug", json_lines=True, stream=out)
    caplog.set_level(logging.DEBUG)
    store = Store(tmp_path / "state.db")
    sink = SupabaseSink.from_env(timeout_s=0.3)
    assert sink is not None
    worker = OutboxWorker(tmp_path / "state.db", RUN, sink, None, **FAST)
    enqueue_run(store, RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)
    stub.respond = lambda req: Response(401, {"code": "PGRST301", "message": f"JWT {KEY} rejected"})
    worker.drain_once()
    stored = [r[0] for r in store.conn.execute("SELECT last_error FROM outbox")]
    stub.stop()
    wait_until(lambda: "ConnectError" in (store.conn.execute(
        "SELECT last_error FROM outbox").fetchone()[0] or ""), "refused", step=worker.drain_once)
    stored += [r[0] for r in store.conn.execute("SELECT last_error FROM outbox")]
    stub.respond = api
    stub.start()
    wait_until(lambda: _counts(store) == {"delivered": 1}, "delivery", step=worker.drain_once)

    text = out.getvalue() + caplog.text + json.dumps(stored)
    assert "PGRST301" in text and "outbox.delivery_failed" in text  # the failures were logged
    assert KEY not in text
    assert f"127.0.0.1:{stub.port}/rest" not in json.dumps(stored)
