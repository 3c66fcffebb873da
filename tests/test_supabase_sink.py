"""SupabaseSink against a real HTTP server standing in for Supabase, backed by real PostgreSQL:
request path, headers and on_conflict; the bodies it sends land in the tables."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.httpstub import HttpStub, Response
from tests.pg import (
    KEEP_TOKENS_3_DEMO_PARAMS,
    PostgrestStandIn,
    postgrest_served,
    sample_metrics,
)
from watcher.publish.supabase import (
    DeliveryError,
    SinkConfigError,
    SupabaseSink,
    epoch_row,
    run_row,
)

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
KEY = "service-role-key-0123456789abcdef"


@pytest.fixture()
def rest(pg_database: str) -> Iterator[tuple[HttpStub, PostgrestStandIn]]:
    with postgrest_served(pg_database, KEY) as served:
        yield served


def _sink_with_run(stub: HttpStub) -> SupabaseSink:
    """A sink on the stand-in, the run's row already sent (epoch rows refer to it)."""
    sink = SupabaseSink(stub.url, KEY, timeout_s=5)
    sink.upsert("training_runs", [run_row(RUN, "running", KEEP_TOKENS_3_DEMO_PARAMS)], "run_name")
    return sink


def test_upsert_request_shape_and_rows_land_in_postgres(
    rest: tuple[HttpStub, PostgrestStandIn], pg_database: str
) -> None:
    stub, api = rest
    sink = _sink_with_run(stub)
    rows = [epoch_row(RUN, e, sample_metrics(RUN, e), None, "continue") for e in (1, 2)]
    sink.upsert("epoch_evaluations", rows, "run_name,epoch")
    sink.close()

    runs_req, epochs_req = stub.recorded("/rest/v1/")
    assert (runs_req.method, runs_req.path) == ("POST", "/rest/v1/training_runs")
    assert runs_req.query["on_conflict"] == ["run_name"]
    assert (epochs_req.method, epochs_req.path) == ("POST", "/rest/v1/epoch_evaluations")
    assert epochs_req.query["on_conflict"] == ["run_name,epoch"]
    for req in (runs_req, epochs_req):
        assert req.headers["apikey"] == KEY
        assert req.headers["authorization"] == f"Bearer {KEY}"
        assert "resolution=merge-duplicates" in req.headers["prefer"].split(",")
        assert req.headers["content-type"] == "application/json"
    assert epochs_req.json() == json.loads(json.dumps(rows))  # the exact rows, as JSON

    assert api.applied_keys("epoch_evaluations", "run_name,epoch") == [(RUN, 1), (RUN, 2)]
    with psycopg.connect(pg_database) as conn:
        got = conn.execute(
            "SELECT epoch, visual_score, metrics->'checkpoint'->>'sha256' FROM epoch_evaluations "
            "ORDER BY epoch").fetchall()
    assert got == [(1, 6.5, f"{1:064x}"), (2, 6.5, f"{2:064x}")]


def test_replaying_the_same_body_updates_in_place(
    rest: tuple[HttpStub, PostgrestStandIn], pg_database: str
) -> None:
    stub, _api = rest
    sink = _sink_with_run(stub)
    row = epoch_row(RUN, 3, sample_metrics(RUN, 3), None, "continue")
    sink.upsert("epoch_evaluations", [row], "run_name,epoch")
    sink.upsert("epoch_evaluations", [row], "run_name,epoch")  # a retry after a lost answer
    sink.upsert("epoch_evaluations", [{**row, "decision": "stop"}], "run_name,epoch")
    with psycopg.connect(pg_database) as conn:
        assert conn.execute("SELECT epoch, decision FROM epoch_evaluations").fetchall() == [(3, "stop")]


def test_server_errors_are_delivery_errors_without_secrets(
    rest: tuple[HttpStub, PostgrestStandIn], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub, _api = rest
    monkeypatch.setenv("SUPABASE_KEY", KEY)
    # A server that echoes the key it was given in its error message.
    stub.respond = lambda req: Response(401, {"code": "PGRST301", "message": f"bad key {KEY}"})
    sink = SupabaseSink(stub.url, KEY, timeout_s=5)
    with pytest.raises(DeliveryError) as err:
        sink.upsert("training_runs", [run_row(RUN, "running", {})], "run_name")
    assert "PGRST301" in str(err.value)
    assert KEY not in str(err.value) and stub.url not in str(err.value)

    # A row the database refuses (no such run yet: foreign key) is an error too.
    stub.respond = _api
    with pytest.raises(DeliveryError, match="23503"):
        sink.upsert("epoch_evaluations", [epoch_row("NO_SUCH_RUN", 1, sample_metrics(RUN, 1), None, "x")],
                    "run_name,epoch")


def test_every_call_has_a_timeout(rest: tuple[HttpStub, PostgrestStandIn]) -> None:
    stub, api = rest
    stub.mode, stub.hang_s = "hang", 3.0
    sink = SupabaseSink(stub.url, KEY, timeout_s=0.3)
    with pytest.raises(DeliveryError, match="Timeout"):
        sink.upsert("training_runs", [run_row(RUN, "running", {})], "run_name")
    assert api.applied == []
    port = stub.port
    stub.stop()
    with pytest.raises(DeliveryError, match="ConnectError") as err:
        sink.upsert("training_runs", [run_row(RUN, "running", {})], "run_name")
    assert str(port) not in str(err.value)  # no URL in the message


def test_from_env() -> None:
    assert SupabaseSink.from_env(env={}) is None
    with pytest.raises(SinkConfigError, match="SUPABASE_KEY is set but SUPABASE_URL is not"):
        SupabaseSink.from_env(env={"SUPABASE_KEY": KEY})
    with pytest.raises(SinkConfigError, match="SUPABASE_URL is set but SUPABASE_KEY is not"):
        SupabaseSink.from_env(env={"SUPABASE_URL": "http://127.0.0.1:9"})
    with pytest.raises(SinkConfigError, match="must start with http") as err:
        SupabaseSink.from_env(env={"SUPABASE_URL": "ftp://x", "SUPABASE_KEY": KEY})
    assert KEY not in str(err.value)
    sink = SupabaseSink.from_env(timeout_s=2.5, env={"SUPABASE_URL": "http://127.0.0.1:9",
                                                     "SUPABASE_KEY": KEY})
    assert sink is not None and sink.timeout_s == 2.5
    sink.close()


def test_contact_sheet_upload(tmp_path: Path) -> None:
    sheet = tmp_path / "contact_sheet.png"
    sheet.write_bytes(b"\x89PNG\r\n\x1a\n-fake-image-bytes-")
    with HttpStub(lambda req: Response(200, {"Key": "epochwatch/x"})) as stub:
        sink = SupabaseSink(stub.url, KEY, timeout_s=5)
        sink.upload("epochwatch", f"{RUN}/epoch-004/contact_sheet.png", sheet)
        (req,) = stub.recorded()
        with pytest.raises(DeliveryError) as err:
            sink.upload("epochwatch", "x/missing.png", tmp_path / "missing.png")
        sink.close()
    assert (req.method, req.path) == ("POST", f"/storage/v1/object/epochwatch/{RUN}/epoch-004/contact_sheet.png")
    assert req.headers["x-upsert"] == "true" and req.headers["apikey"] == KEY
    assert b"-fake-image-bytes-" in req.body and b"image/png" in req.body
    assert err.value.permanent and "missing.png" in str(err.value)
