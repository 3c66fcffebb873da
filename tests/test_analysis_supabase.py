"""Many runs on many hosts: three daemons' worth of state (three state folders, three hosts)
publish through the real epoch path and outbox into the real PostgreSQL schema behind a
PostgREST stand-in; then `runs` and `analyze correlations` with `--source supabase`, from a
fourth folder with only a read-only key, answer as the local analysis over the three stores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.httpstub import HttpStub, Response
from tests.pg import PostgrestStandIn, apply_migrations, postgrest_upsert
from watcher.cli import main
from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.testing import FakePipeline, write_watch_config

SERVICE_KEY = "service-role-key-0123456789abcdef"
READ_KEY = "reader-key-fedcba9876543210"
ROLES = {SERVICE_KEY: "service_role", READ_KEY: "epochwatch_reader"}
MAX_ROWS = 3  # the stand-in's max-rows: pages come back shorter than asked, as on Supabase
# name, host, per-epoch background (green = right), keep_tokens, learning rate
HOSTS = [
    ("RUN_A", "pod-a", ["#ff0000", "#00ff00", "#00ff00", "#00ff00"], 1, 1e-4),
    ("RUN_B", "pod-b", ["#ff0000", "#ff0000", "#00ff00", "#00ff00"], 2, 2e-4),
    ("RUN_C", "pod-c", ["#ff0000", "#ff0000", "#ff0000", "#ff0000"], 3, 3e-4),
]


class PostgrestReadWrite(PostgrestStandIn):
    """The upsert stand-in plus PostgREST's GET /rest/v1/<table>?select=*&order=..&offset=..
    &limit=.., each request run as the role its key maps to (row level security applies)."""

    def __call__(self, req: Any) -> Any:
        role = ROLES.get(req.headers.get("apikey", ""))
        if role is None or req.headers.get("authorization") != f"Bearer {req.headers['apikey']}":
            return Response(401, {"code": "PGRST301", "message": "JWT invalid"})
        table = req.path.removeprefix("/rest/v1/")
        if req.method == "GET":
            return self._select(table, req.query, role)
        if role != "service_role":  # a write with the read key: let PostgreSQL refuse it
            try:
                with psycopg.connect(self.dsn) as conn:
                    postgrest_upsert(conn, table, req.body, req.query.get("on_conflict", [""])[0],
                                     role=role)
            except psycopg.Error as exc:
                return Response(403, {"code": exc.sqlstate, "message": str(exc).splitlines()[0]})
            return Response(201, b"")
        self.key = req.headers["apikey"]
        return super().__call__(req)

    def _select(self, table: str, query: dict[str, list[str]], role: str) -> Any:
        order = [part.split(".") for part in query.get("order", [""])[0].split(",") if part]
        offset = int(query.get("offset", ["0"])[0])
        limit = min(int(query.get("limit", [str(MAX_ROWS)])[0]), MAX_ROWS)
        self.reads.append((table, offset, limit))
        stmt = sql.SQL("SELECT coalesce(json_agg(t), '[]'::json) FROM (SELECT * FROM {tbl} "
                       "ORDER BY {order} OFFSET %s LIMIT %s) t").format(
            tbl=sql.Identifier("public", table),
            order=sql.SQL(", ").join(
                sql.SQL("{} DESC" if d == "desc" else "{} ASC").format(sql.Identifier(c))
                for c, d in order) if order else sql.SQL("1"))
        with psycopg.connect(self.dsn) as conn, conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            (rows,) = conn.execute(stmt, (offset, limit)).fetchone()
        return Response(200, rows)

    reads: list[tuple[str, int, int]]


@pytest.fixture()
def rest(pg_database: str) -> Iterator[tuple[HttpStub, PostgrestReadWrite]]:
    apply_migrations(pg_database)
    api = PostgrestReadWrite(pg_database, SERVICE_KEY)
    api.reads = []
    with HttpStub(api) as stub:
        yield stub, api


def _daemon(root: Path, name: str, host: str, backgrounds: list[str], keep: int, lr: float,
            monkeypatch: pytest.MonkeyPatch) -> Path:
    """One host's daemon, in-process: four epochs through the real epoch path, then the end
    of the run; its outbox delivers to the stand-in with the service key."""
    root.mkdir()
    config = write_watch_config(root, root / "no-model-needed", name=name)
    with config.open("a") as f:
        f.write(f"\n[run.params.data]\nkeep_tokens = {keep}\n"
                f"[run.params.hyperparameters]\nlearning_rate = {lr}\n")
    monkeypatch.setenv("EPOCHWATCH_HOST", host)
    path = EpochPath.open(load_config(config))
    pipeline = FakePipeline()
    try:
        for epoch, background in enumerate(backgrounds, start=1):
            pipeline.background = background
            ck = path.add_source(root / f"lora-{epoch:06d}.safetensors", epoch,
                                 f"{hash((name, epoch)) & (2**64 - 1):064x}", 1000)
            outcome = path.run_checkpoint(pipeline, ck)
            if outcome.stops:
                break
        status = "stopped" if path.store.stop_requests(name) else "finished"
        path.publisher.finish_run(status, path.rules, path.history())
    finally:
        path.close()
    return config


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_three_hosts_meet_in_supabase(
    rest: tuple[HttpStub, PostgrestReadWrite], pg_database: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    stub, api = rest
    monkeypatch.setenv("SUPABASE_URL", stub.url)
    monkeypatch.setenv("SUPABASE_KEY", SERVICE_KEY)
    monkeypatch.delenv("SUPABASE_READ_KEY", raising=False)
    configs = [_daemon(tmp_path / host, name, host, bgs, keep, lr, monkeypatch)
               for name, host, bgs, keep, lr in HOSTS]
    assert "pushed baseline SD15_PERFECT" in _cli(capsys, "baselines", "push")

    # Every host's rows carry its host and GPU (these daemons evaluate on the CPU).
    with psycopg.connect(pg_database) as conn:
        hosts = conn.execute("SELECT run_name, host, gpu_name, gpu_memory_mb FROM training_runs "
                             "WHERE kind='run' ORDER BY run_name").fetchall()
        epoch_hosts = conn.execute("SELECT DISTINCT run_name, host FROM epoch_evaluations "
                                   "WHERE host IS NOT NULL ORDER BY run_name").fetchall()
    assert hosts == [(n, h, "CPU only", None) for n, h, *_ in HOSTS]
    assert epoch_hosts == [(n, h) for n, h, *_ in HOSTS]

    local_runs = json.loads(_cli(capsys, "runs", "--json", *(a for c in configs for a in ("--config", str(c))),
                                 "--source", "local"))["runs"]
    local_corr = _cli(capsys, "analyze", "correlations", "--source", "local",
                      *(a for c in configs for a in ("--store", str(c.parent / "state" / "state.db"))))
    local_cause = _cli(capsys, "analyze", "root-cause", "--config", str(configs[2]))
    local_next = _cli(capsys, "analyze", "hypotheses", "--config", str(configs[1]))

    # The laptop: a fourth folder, only the read-only key.
    laptop = tmp_path / "laptop"
    laptop.mkdir()
    monkeypatch.chdir(laptop)
    monkeypatch.setenv("SUPABASE_KEY", "")
    monkeypatch.setenv("SUPABASE_READ_KEY", READ_KEY)
    api.reads.clear()
    remote_runs = json.loads(_cli(capsys, "runs", "--json"))["runs"]  # default source: supabase
    assert remote_runs == local_runs
    # Paginated: more than one page of epochs, each page within the server's max-rows.
    epoch_reads = [r for r in api.reads if r[0] == "epoch_evaluations"]
    assert len(epoch_reads) > 2 and all(limit <= MAX_ROWS for _, _, limit in epoch_reads)
    remote_corr = _cli(capsys, "analyze", "correlations", "--source", "supabase")
    assert remote_corr == local_corr
    assert _cli(capsys, "analyze", "root-cause", "--run", "RUN_C", "--config", str(configs[2])) == local_cause
    assert _cli(capsys, "analyze", "hypotheses", "--run", "RUN_B") == local_next
    assert list(laptop.iterdir()) == []  # nothing written on the laptop

    by_name = {r["run"]: r for r in remote_runs}
    assert [r["run"] for r in remote_runs] == ["RUN_A", "RUN_B", "RUN_C"]
    assert by_name["RUN_A"]["first_green_epoch"] == 2 and by_name["RUN_B"]["first_green_epoch"] == 3
    assert by_name["RUN_C"]["first_green_epoch"] is None
    assert by_name["RUN_C"]["state"] == "stopped" and by_name["RUN_C"]["epochs_evaluated"] == 4
    assert by_name["RUN_A"]["state"] == "finished"
    assert {r["host"] for r in remote_runs} == {"pod-a", "pod-b", "pod-c"}
    assert by_name["RUN_B"]["results"].startswith("pod-b:") and by_name["RUN_B"]["gpu"] == "CPU only"
    assert "keep_tokens" in remote_corr and "SD15_PERFECT" in remote_corr

    monkeypatch.setenv("SUPABASE_READ_KEY", "not-a-key-" + READ_KEY)
    capsys.readouterr()
    assert main(["runs"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("epochwatch runs: cannot read training_runs from Supabase: ") and "PGRST301" in err
    assert READ_KEY not in err and stub.url not in err and err.count("\n") == 1
    monkeypatch.setenv("SUPABASE_READ_KEY", READ_KEY)

    # The read key reads, and cannot write.
    from watcher.publish.supabase import DeliveryError, SupabaseSink, run_row

    sink = SupabaseSink(stub.url, READ_KEY, timeout_s=5)
    with pytest.raises(DeliveryError, match="42501"):
        sink.upsert("training_runs", [run_row("INTRUDER", "running", {})], "run_name")
    sink.close()
    lines = _cli(capsys, "runs").splitlines()
    assert lines[0].split()[:4] == ["run", "state", "epochs", "green"]
    run_c = by_name["RUN_C"]
    best = f"{run_c['best_score']:.2f}"  # the table shows the JSON's figure, whatever the scorer says
    assert lines[3].split()[:7] == ["RUN_C", "stopped", "4", "-", str(run_c["best_epoch"]), best, "failure"]


def test_rows_from_before_migration_0004_stay_readable(pg_database: str) -> None:
    from tests.pg import sample_metrics
    from watcher.publish.supabase import epoch_row, migration_files, run_row
    from watcher.report.remote import records_from_rows
    from watcher.report.runs import summary

    for path in migration_files()[:3]:  # a database from before this migration
        with psycopg.connect(pg_database) as conn:
            conn.execute(path.read_text())
    with psycopg.connect(pg_database) as conn:  # an older daemon: no host columns
        postgrest_upsert(conn, "training_runs", json.dumps([run_row("OLD", "finished", {})]), "run_name")
        postgrest_upsert(conn, "epoch_evaluations", json.dumps(
            [epoch_row("OLD", 1, sample_metrics("OLD", 1, bg_rate=1.0), None, "continue")]), "run_name,epoch")
    apply_migrations(pg_database)  # 0004 onto a populated database
    host = {"host": "pod-n", "gpu_name": "NVIDIA H200", "gpu_memory_mb": 143771,
            "results_location": "pod-n:/r", "results_remote": None}
    with psycopg.connect(pg_database) as conn:  # a daemon with this migration
        postgrest_upsert(conn, "training_runs", json.dumps([run_row("NEW", "running", {}, host=host)]),
                         "run_name")
        postgrest_upsert(conn, "epoch_evaluations", json.dumps(
            [epoch_row("NEW", 1, sample_metrics("NEW", 1), None, "alert", host=host)]), "run_name,epoch")

    def read(role: str, table: str, order: str) -> list[dict[str, Any]]:
        with psycopg.connect(pg_database) as conn, conn.transaction():
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
            q = sql.SQL("SELECT coalesce(json_agg(t ORDER BY {}), '[]'::json) FROM public.{} t").format(
                sql.SQL(order), sql.Identifier(table))
            return conn.execute(q).fetchone()[0]

    for role in ("epochwatch_reader", "anon"):
        runs = read(role, "training_runs", "run_name")
        epochs = read(role, "epoch_evaluations", "run_name, epoch")
        rows = {r.history.name: summary(r) for r in records_from_rows(runs, epochs)}
        assert rows["OLD"]["host"] is None and rows["OLD"]["gpu"] is None
        assert rows["OLD"]["first_green_epoch"] == 1 and rows["OLD"]["epochs_evaluated"] == 1
        assert (rows["NEW"]["host"], rows["NEW"]["gpu_memory_mb"]) == ("pod-n", 143771)
        assert rows["NEW"]["decision"] == "alert (epoch 1)" and rows["NEW"]["kind"] == "run"
    with psycopg.connect(pg_database) as conn:
        kinds = conn.execute("SELECT run_name, kind, stated_outcomes FROM training_runs ORDER BY 1").fetchall()
        assert kinds == [("NEW", "run", {}), ("OLD", "run", {})]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SET LOCAL ROLE epochwatch_reader")
            conn.execute("DELETE FROM training_runs")
