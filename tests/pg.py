"""A real, throw-away PostgreSQL server for tests.

`postgres` (session scope, yields a DSN string) runs initdb into a fresh temporary folder, starts the server on a
free 127.0.0.1 port with its unix socket in that folder, yields a DSN for the `postgres`
superuser and stops and removes everything at the end. PostgreSQL refuses to run as root, so
as root the binaries run as the `postgres` system user (runuser); otherwise as the current user.

`pg_database` (function scope) gives each test its own empty database on that server.

Register the fixtures in a test module by importing them:
`from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401`
(the functions are named *_fixture so that test parameters `postgres` / `pg_database` do not
shadow an import).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.httpstub import HttpStub
from watcher.testing import KEEP_TOKENS_3_DEMO_PARAMS  # noqa: F401 - re-exported for the Supabase tests


def find_pg_bindir() -> Path | None:
    """The folder holding initdb/pg_ctl: PG_BINDIR, the newest Debian layout, or PATH."""
    env = os.environ.get("PG_BINDIR")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for cand in reversed(candidates):
        if (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """One initdb'd cluster in a temporary folder; start() / stop()."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="epochwatch-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "server.log"
        self.port = 0
        if self.as_root:
            # The server's own user must own the folder (mkdtemp makes it 0700, root-owned).
            pg = pwd.getpwnam("postgres")
            os.chown(self.base, pg.pw_uid, pg.pw_gid)

    def _cmd(self, *argv: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)

    def _run(self, *argv: str) -> None:
        proc = subprocess.run(self._cmd(*argv), capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{Path(argv[0]).name} failed ({proc.returncode}): {proc.stderr.strip()} {log[-2000:]}"
            )

    def start(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
            "-A", "trust", "-E", "UTF8", "--no-sync", "--locale=C",
        )
        last_error: Exception | None = None
        for _ in range(5):  # the port could be taken between probing and binding
            self.port = _free_port()
            opts = (
                f"-k {self.base} -p {self.port} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                self._run(
                    str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l",
                    str(self.logfile), "-w", "-t", "60", "-o", opts, "start",
                )
                return
            except RuntimeError as exc:
                last_error = exc
        raise RuntimeError(f"PostgreSQL did not start: {last_error}")

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname} connect_timeout=10"

    def stop(self) -> None:
        try:
            if self.datadir.exists():
                subprocess.run(
                    self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.datadir),
                              "-m", "immediate", "-w", "stop"),
                    capture_output=True, timeout=60,
                )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session", name="postgres")
def postgres_fixture() -> Iterator[str]:
    """DSN of the superuser's `postgres` database on a server started for this session."""
    bindir = find_pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; set PG_BINDIR")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root but there is no 'postgres' system user to run the server")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server.dsn()
    finally:
        server.stop()


@pytest.fixture(name="pg_database")
def pg_database_fixture(postgres: str) -> Iterator[str]:
    """DSN of a new, empty database (dropped afterwards). Roles are cluster-wide."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres, dbname=name)
    finally:
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def apply_migrations(dsn: str) -> list[str]:
    """Apply watcher/migrations/*.sql in order, each file in one transaction (as
    `psql --single-transaction -f` does). Returns the file names applied."""
    import psycopg

    from watcher.publish.supabase import migration_files

    applied = []
    for path in migration_files():
        with psycopg.connect(dsn) as conn:  # commits on a clean exit
            conn.execute(path.read_text())  # no parameters: simple protocol, many statements
        applied.append(path.name)
    return applied


def postgrest_upsert(
    conn: Any, table: str, body: str | bytes, on_conflict: str,
    columns: list[str] | None = None, role: str | None = "service_role",
) -> int:
    """Replay a PostgREST bulk upsert (POST /rest/v1/<table>?on_conflict=...&columns=...
    with Prefer: resolution=merge-duplicates) the way PostgREST runs it: as the request's
    role, INSERT ... SELECT ... FROM json_populate_recordset(...) ON CONFLICT ... DO UPDATE
    SET each sent column. Returns the number of rows written. Commits on success."""
    import json

    from psycopg import sql

    text = body.decode() if isinstance(body, bytes) else body
    rows = json.loads(text)
    cols = columns or list(rows[0].keys())
    conflict = [c.strip() for c in on_conflict.split(",")]
    ident = [sql.Identifier(c) for c in cols]
    query = sql.SQL(
        "INSERT INTO {tbl} ({cols}) SELECT {cols} FROM json_populate_recordset(NULL::{tbl}, %s::json) "
        "ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    ).format(
        tbl=sql.Identifier("public", table),
        cols=sql.SQL(", ").join(ident),
        conflict=sql.SQL(", ").join(sql.Identifier(c) for c in conflict),
        sets=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=i) for i in ident),
    )
    with conn.transaction():
        if role:
            conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
        cur = conn.execute(query, (text,))
        return int(cur.rowcount)


def columns_param(value: str) -> list[str]:
    """PostgREST's `columns` query parameter ('"a","b"') as a list of names."""
    return [c.strip().strip('"') for c in value.split(",") if c.strip()]


def sample_metrics(run: str, epoch: int, *, bg_rate: float | None = 0.25,
                   background_hex: str = "#ff00ff", visual: float = 6.5) -> dict[str, Any]:
    """A metrics.json document shaped as docs/INTERFACES.md describes (two images)."""
    image = {
        "prompt": "pixel art portrait, solid green background (#00ff00)", "seed": 1234,
        "sample": "samples/00-s1234.png", "sample_24px": "samples_24px/00-s1234.png",
        "background_hex": background_hex, "background_delta_e": 41.2,
        "background_match": False, "color_accuracy": 71.5, "style_quality": 88.0,
        "unique_colors": 14, "issues": ["background_mismatch"], "visual_score": visual,
        "style_score": 7.0, "prompt_score": 5.5,
        "grid": {"cells_x": 24, "cells_y": 24, "pitch_x": 21.33, "pitch_y": 21.33,
                 "offset_x": 0.0, "offset_y": 0.0},
        "per_color": [{"hex": "#00ff00", "role": "background", "phrase": "solid green background",
                       "matched_hex": background_hex, "delta_e": 41.2}],
    }
    return {
        "run": run, "epoch": epoch,
        "checkpoint": {"path": f"/data/out/{run}-{epoch:06d}.safetensors",
                       "sha256": f"{epoch:064x}", "size": 1234567,
                       "metadata": {"ss_epoch": str(epoch), "ss_output_name": run}},
        "images": [image, {**image, "seed": 99, "sample": "samples/01-s99.png"}],
        "aggregate": {
            "background_match_rate": bg_rate, "color_accuracy": 71.5, "style_quality": 88.0,
            "visual_score": visual, "style_score": 7.0, "prompt_score": 5.5,
            "overall_score": round((visual + 7.0 + 5.5) / 3, 4), "unique_colors": 14.5,
            "background_hex": background_hex, "issues": ["background_mismatch", "two_tone_hair"],
            "issue_counts": {"background_mismatch": 2, "two_tone_hair": 1}, "n_images": 2,
        },
        "decisions": [
            {"criterion": "green_background_by_epoch_4", "metric": "background_match_rate",
             "value": bg_rate, "comparison": ">=", "threshold": 0.5, "outcome": "pending",
             "action": "stop", "message": f"background {background_hex}, wanted #00ff00"},
        ],
        "timing": {"generate_s": 8.1, "score_s": 0.4},
    }




class PostgrestStandIn:
    """A small PostgREST in front of the real test database, as an `HttpStub` responder:
    checks the API key headers, applies `POST /rest/v1/<table>?on_conflict=...` upserts
    with `postgrest_upsert` as service_role, answers 201 (or PostgREST-style errors) and
    counts, per conflict key, the requests that were applied."""

    def __init__(self, dsn: str, key: str) -> None:
        import threading

        self.dsn = dsn
        self.key = key
        self.applied: list[tuple[str, dict[str, Any]]] = []  # (table, row) in commit order
        self.refuse: Any = None  # optional predicate(row) -> bool: answer 400 for such rows
        self._lock = threading.Lock()

    def __call__(self, req: Any) -> Any:
        import json

        import psycopg

        from tests.httpstub import Response

        if req.headers.get("apikey") != self.key or req.headers.get("authorization") != f"Bearer {self.key}":
            return Response(401, {"code": "PGRST301", "message": "JWT invalid"})
        table = req.path.removeprefix("/rest/v1/")
        if req.method != "POST" or "/" in table:
            return Response(404, {"code": "PGRST125", "message": "invalid path"})
        rows = json.loads(req.body)
        if self.refuse is not None and any(self.refuse(r) for r in rows):
            return Response(400, {"code": "23514", "message": "refused by the test"})
        on_conflict = req.query.get("on_conflict", [""])[0]
        cols = columns_param(req.query["columns"][0]) if "columns" in req.query else None
        with self._lock:  # applied-order bookkeeping matches commit order
            try:
                with psycopg.connect(self.dsn) as conn:
                    postgrest_upsert(conn, table, req.body, on_conflict, cols)
            except psycopg.Error as exc:
                return Response(409 if exc.sqlstate == "23503" else 400,
                                {"code": exc.sqlstate, "message": str(exc).splitlines()[0]})
            self.applied.extend((table, r) for r in rows)
        return Response(201, b"")

    def applied_keys(self, table: str, on_conflict: str) -> list[tuple[Any, ...]]:
        cols = on_conflict.split(",")
        return [tuple(r[c] for c in cols) for t, r in self.applied if t == table]


@contextmanager
def postgrest_served(dsn: str, key: str) -> Iterator[tuple[HttpStub, PostgrestStandIn]]:
    """The Supabase REST stand-in on `dsn` (migrations applied), served on a real 127.0.0.1
    HTTP port: (the server, the stand-in behind it)."""
    apply_migrations(dsn)
    api = PostgrestStandIn(dsn, key)
    with HttpStub(api) as stub:
        yield stub, api
