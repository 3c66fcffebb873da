"""The state database: SQLite in WAL mode, one file per run's state folder.

Everything the daemon must not forget lives here: checkpoints seen and their status,
evaluations, decisions, the trainer record, stop requests, the outbox of deliveries to
Supabase and alert targets, and events (errors, warnings) for `status`.

Every write is a short transaction; readers (`status`) never block the daemon thanks to WAL.
Rows come back as the typed records of `watcher.records`. Only the standard library and
those light records are imported here: `status` must start fast.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar, cast

from watcher.records import (
    Checkpoint,
    CheckpointStatus,
    DaemonRow,
    DecisionRow,
    Evaluation,
    Event,
    OutboxItem,
    RejectedFile,
    Review,
    RunRow,
    RunStatus,
    StopRequest,
    TrainerRow,
)
from watcher.rules import Decision, Rule

_T = TypeVar("_T")

__all__ = ["Checkpoint", "Store"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS runs (
    name TEXT PRIMARY KEY,
    config_path TEXT,
    params_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'running',       -- running | stopped | finished | failed
    verdict TEXT,
    best_epoch INTEGER,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);

-- One row per distinct checkpoint content seen in the output folder.
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    path TEXT NOT NULL,
    epoch INTEGER,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    session_id TEXT,
    metadata_json TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL DEFAULT 'pending',       -- pending | evaluating | evaluated | failed
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    detected_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    UNIQUE (run, sha256)
);
CREATE INDEX IF NOT EXISTS checkpoints_by_status ON checkpoints (run, status, epoch);

-- Files that were refused (not safetensors, truncated for good, foreign run, ...).
CREATE TABLE IF NOT EXISTS rejected_files (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER,
    mtime REAL,
    reason TEXT NOT NULL,
    created_at REAL NOT NULL,
    UNIQUE (run, path, size, mtime)
);

CREATE TABLE IF NOT EXISTS evaluations (
    checkpoint_id INTEGER PRIMARY KEY REFERENCES checkpoints(id),
    run TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    metrics_json TEXT NOT NULL,
    result_dir TEXT NOT NULL,
    git_commit TEXT,
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    checkpoint_id INTEGER,
    criterion TEXT NOT NULL,
    metric TEXT,
    value REAL,
    comparison TEXT,
    threshold REAL,
    outcome TEXT NOT NULL,                        -- pass | fail | pending | marked
    action TEXT NOT NULL,                         -- stop | alert | none | mark
    message TEXT NOT NULL,
    evidence_json TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    UNIQUE (run, epoch, criterion, checkpoint_id)
);

CREATE TABLE IF NOT EXISTS trainer (
    run TEXT PRIMARY KEY,
    pid INTEGER,
    pgid INTEGER,
    start_time REAL,                              -- process start time (psutil create_time)
    command_json TEXT,
    cwd TEXT,
    log_path TEXT,
    state TEXT NOT NULL DEFAULT 'unknown',        -- starting | running | exited | stopped | killed | crashed
    exit_code INTEGER,
    cause TEXT,
    started_at REAL,
    ended_at REAL
);

CREATE TABLE IF NOT EXISTS stop_requests (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    epoch INTEGER,
    reason TEXT NOT NULL,
    requested_at REAL NOT NULL,
    handled_at REAL,
    result TEXT
);

CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    channel TEXT NOT NULL,                        -- supabase | alert | storage
    dedupe_key TEXT NOT NULL,
    payload_json TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',       -- pending | delivered | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL,
    UNIQUE (channel, dedupe_key)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, channel, id);

CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    epoch INTEGER,
    level TEXT NOT NULL,                          -- info | warning | error
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS reviews (
    run TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    visual REAL NOT NULL,
    style REAL NOT NULL,
    prompt REAL NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    PRIMARY KEY (run, epoch)
);

-- Every review ever saved, append-only (reviews above holds the latest of each epoch).
CREATE TABLE IF NOT EXISTS review_history (
    id INTEGER PRIMARY KEY,
    run TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    visual REAL NOT NULL,
    style REAL NOT NULL,
    prompt REAL NOT NULL,
    notes TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS review_history_run ON review_history (run, epoch, id);

-- The trainer's own figures (watcher.training): kohya's scalars per step, bounded per tag
-- (older points thinned for long runs), and the latest figures and health for `status`.
CREATE TABLE IF NOT EXISTS training_points (
    run TEXT NOT NULL,
    tag TEXT NOT NULL,                            -- kohya's: loss/average, lr/unet, ...
    step INTEGER NOT NULL,
    value REAL,                                   -- NULL when not finite: see nonfinite
    nonfinite TEXT,                               -- nan | inf | -inf
    wall_time REAL NOT NULL,
    PRIMARY KEY (run, tag, step)
);

CREATE TABLE IF NOT EXISTS training_state (
    run TEXT PRIMARY KEY,
    source TEXT,                                  -- tensorboard | log
    figures_json TEXT NOT NULL,
    health_json TEXT NOT NULL DEFAULT '[]',
    gpu_json TEXT,
    updated_at REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS daemon (
    run TEXT PRIMARY KEY,
    pid INTEGER,
    start_time REAL,
    heartbeat_at REAL,
    state TEXT,                                   -- starting | idle | evaluating | stopped
    gpu_memory_bytes INTEGER
);
"""


def judged_by_from_json(judged: Mapping[str, Any] | None) -> tuple[list[Rule], float | None] | None:
    """(rules, partial_at_least) from a judged_by record (state store meta or Supabase row)."""
    if not judged:
        return None
    return [Rule(**r) for r in judged["rules"]], judged.get("partial_at_least")


def now() -> float:
    return time.time()


class Store:
    """Thin typed access to the state database. One instance per thread."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(
            str(self.path), timeout=timeout_s, isolation_level=None, check_same_thread=False
        )
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)
        # a store from before review_history: its latest reviews become the first entries
        self.conn.execute(
            "INSERT INTO review_history (run, epoch, visual, style, prompt, notes, created_at) "
            "SELECT r.run, r.epoch, r.visual, r.style, r.prompt, r.notes, r.created_at FROM reviews r "
            "WHERE NOT EXISTS (SELECT 1 FROM review_history h WHERE h.run=r.run AND h.epoch=r.epoch)")
        self.conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue instead of failing half-way."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    # ---- runs -------------------------------------------------------------------------
    def ensure_run(self, name: str, *, config_path: str = "", params: dict[str, Any] | None = None) -> None:
        t = now()
        with self.tx() as c:
            c.execute(
                "INSERT INTO runs (name, config_path, params_json, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "config_path=excluded.config_path, params_json=excluded.params_json, "
                "updated_at=excluded.updated_at",
                (name, config_path, json.dumps(params or {}, sort_keys=True), t, t),
            )

    def _one(self, from_row: Callable[[sqlite3.Row], _T], sql: str, *args: Any) -> _T | None:
        """The first row `sql` selects, as a record; None when there is none."""
        row = self.conn.execute(sql, args).fetchone()
        return from_row(row) if row else None

    def run_row(self, name: str) -> RunRow | None:
        return self._one(RunRow.from_row, "SELECT * FROM runs WHERE name=?", name)

    def run_status(self, name: str) -> RunStatus | None:
        """The run's recorded status, None before `ensure_run`."""
        row = self.run_row(name)
        return row.status if row else None

    def update_run(self, name: str, **fields: Any) -> None:
        allowed = {"status", "verdict", "best_epoch"}
        if not fields.keys() <= allowed:
            raise ValueError(f"unknown run fields: {sorted(set(fields) - allowed)}")
        sets = ", ".join(f"{k}=?" for k in fields)
        self.conn.execute(
            f"UPDATE runs SET {sets}, updated_at=? WHERE name=?", (*fields.values(), now(), name)
        )

    # ---- checkpoints --------------------------------------------------------------------
    def add_checkpoint(
        self, run: str, path: str, epoch: int | None, sha256: str, size: int,
        session_id: str | None, metadata: dict[str, str],
    ) -> tuple[Checkpoint, bool]:
        """Record a settled checkpoint; returns (checkpoint, created). Same content = same row."""
        with self.tx() as c:
            row = c.execute(
                "SELECT * FROM checkpoints WHERE run=? AND sha256=?", (run, sha256)
            ).fetchone()
            if row is not None:
                if row["path"] != path:  # e.g. renamed by the user: remember the newest path
                    c.execute("UPDATE checkpoints SET path=? WHERE id=?", (path, row["id"]))
                    row = c.execute("SELECT * FROM checkpoints WHERE id=?", (row["id"],)).fetchone()
                return Checkpoint.from_row(row), False
            cur = c.execute(
                "INSERT INTO checkpoints (run, path, epoch, sha256, size, session_id, "
                "metadata_json, detected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run, path, epoch, sha256, size, session_id, json.dumps(metadata), now()),
            )
            row = c.execute("SELECT * FROM checkpoints WHERE id=?", (cur.lastrowid,)).fetchone()
            return Checkpoint.from_row(row), True

    def checkpoint(self, checkpoint_id: int) -> Checkpoint:
        row = self.conn.execute("SELECT * FROM checkpoints WHERE id=?", (checkpoint_id,)).fetchone()
        if row is None:
            raise KeyError(checkpoint_id)
        return Checkpoint.from_row(row)

    def checkpoints(self, run: str) -> list[Checkpoint]:
        rows = self.conn.execute(
            "SELECT * FROM checkpoints WHERE run=? ORDER BY COALESCE(epoch, 1e9), id", (run,)
        ).fetchall()
        return [Checkpoint.from_row(r) for r in rows]

    def next_pending(self, run: str) -> Checkpoint | None:
        """The pending checkpoint with the lowest epoch: epochs are evaluated in order."""
        return self._one(Checkpoint.from_row, "SELECT * FROM checkpoints WHERE run=? AND "
                         "status='pending' ORDER BY COALESCE(epoch, 1e9), id LIMIT 1", run)

    def pending_count(self, run: str) -> int:
        return int(self.conn.execute(
            "SELECT COUNT(*) FROM checkpoints WHERE run=? AND status='pending'", (run,)
        ).fetchone()[0])

    def mark_checkpoint(self, checkpoint_id: int, status: CheckpointStatus, error: str | None = None) -> None:
        t = now()
        if status == "evaluating":
            self.conn.execute(
                "UPDATE checkpoints SET status=?, error=NULL, started_at=?, attempts=attempts+1 "
                "WHERE id=?",
                (status, t, checkpoint_id),
            )
        else:
            self.conn.execute(
                "UPDATE checkpoints SET status=?, error=?, finished_at=? WHERE id=?",
                (status, error, t, checkpoint_id),
            )

    def requeue_interrupted(self, run: str) -> int:
        """After a crash: evaluations that were in flight start again from scratch."""
        cur = self.conn.execute(
            "UPDATE checkpoints SET status='pending' WHERE run=? AND status='evaluating' "
            "AND id NOT IN (SELECT checkpoint_id FROM evaluations)",
            (run,),
        )
        return cur.rowcount

    def add_rejected(self, run: str, path: str, size: int | None, mtime: float | None, reason: str) -> bool:
        """Record a refused file once per (path, size, mtime); True when it is new."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO rejected_files (run, path, size, mtime, reason, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run, path, size, mtime, reason, now()),
        )
        return cur.rowcount == 1

    def rejected(self, run: str) -> list[RejectedFile]:
        rows = self.conn.execute(
            "SELECT * FROM rejected_files WHERE run=? ORDER BY id", (run,)
        ).fetchall()
        return [RejectedFile.from_row(r) for r in rows]

    # ---- evaluations ----------------------------------------------------------------------
    def save_evaluation(self, checkpoint: Checkpoint, epoch: int, metrics: Mapping[str, Any],
                        result_dir: str) -> None:
        with self.tx() as c:
            c.execute(
                "INSERT INTO evaluations (checkpoint_id, run, epoch, metrics_json, result_dir, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(checkpoint_id) DO UPDATE SET "
                "metrics_json=excluded.metrics_json, result_dir=excluded.result_dir",
                (checkpoint.id, checkpoint.run, epoch, json.dumps(metrics), result_dir, now()),
            )
            c.execute(
                "UPDATE checkpoints SET status='evaluated', error=NULL, finished_at=? WHERE id=?",
                (now(), checkpoint.id),
            )

    def set_git_commit(self, checkpoint_id: int, sha: str) -> None:
        self.conn.execute(
            "UPDATE evaluations SET git_commit=? WHERE checkpoint_id=?", (sha, checkpoint_id)
        )

    def evaluations(self, run: str) -> list[Evaluation]:
        rows = self.conn.execute(
            "SELECT e.*, c.path, c.sha256 FROM evaluations e JOIN checkpoints c "
            "ON c.id = e.checkpoint_id WHERE e.run=? ORDER BY e.epoch, e.checkpoint_id",
            (run,),
        ).fetchall()
        return [Evaluation.from_row(r) for r in rows]

    def git_commit_of(self, checkpoint_id: int) -> str | None:
        row = self.conn.execute(
            "SELECT git_commit FROM evaluations WHERE checkpoint_id=?", (checkpoint_id,)
        ).fetchone()
        return row["git_commit"] if row else None

    def forget_evaluation(self, checkpoint_id: int) -> None:
        """An evaluation whose results folder is gone: dropped, its checkpoint pending again."""
        self.conn.execute("DELETE FROM evaluations WHERE checkpoint_id=?", (checkpoint_id,))
        self.mark_checkpoint(checkpoint_id, "pending")

    def unpublished(self, run: str) -> list[Evaluation]:
        return [e for e in self.evaluations(run) if not e.git_commit]

    # ---- decisions ------------------------------------------------------------------------
    def save_decision(self, run: str, epoch: int, checkpoint_id: int | None, decision: Decision) -> None:
        d = decision
        self.conn.execute(
            "INSERT OR REPLACE INTO decisions (run, epoch, checkpoint_id, criterion, metric, value, "
            "comparison, threshold, outcome, action, message, evidence_json, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run, epoch, checkpoint_id, d.criterion, d.metric, d.value, d.comparison,
                d.threshold, d.outcome, d.action, d.message, json.dumps(d.evidence), now(),
            ),
        )

    def decisions(self, run: str, epoch: int | None = None) -> list[DecisionRow]:
        q = "SELECT * FROM decisions WHERE run=?"
        args: tuple[str | int, ...] = (run,)
        if epoch is not None:
            q += " AND epoch=?"
            args += (epoch,)
        rows = self.conn.execute(q + " ORDER BY epoch, id", args).fetchall()
        return [DecisionRow.from_row(r) for r in rows]

    # ---- trainer, daemon, stop requests ---------------------------------------------------------
    def set_trainer(self, run: str, **fields: Any) -> None:
        cols = ["pid", "pgid", "start_time", "command_json", "cwd", "log_path", "state",
                "exit_code", "cause", "started_at", "ended_at"]
        if not fields.keys() <= set(cols):
            raise ValueError(f"unknown trainer fields: {sorted(set(fields) - set(cols))}")
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO trainer (run) VALUES (?)", (run,))
            if fields:
                sets = ", ".join(f"{k}=?" for k in fields)
                c.execute(f"UPDATE trainer SET {sets} WHERE run=?", (*fields.values(), run))

    def trainer(self, run: str) -> TrainerRow | None:
        return self._one(TrainerRow.from_row, "SELECT * FROM trainer WHERE run=?", run)

    def set_daemon(self, run: str, **fields: Any) -> None:
        cols = {"pid", "start_time", "heartbeat_at", "state", "gpu_memory_bytes"}
        if not fields.keys() <= cols:
            raise ValueError(f"unknown daemon fields: {sorted(set(fields) - cols)}")
        with self.tx() as c:
            c.execute("INSERT OR IGNORE INTO daemon (run) VALUES (?)", (run,))
            sets = ", ".join(f"{k}=?" for k in fields)
            c.execute(f"UPDATE daemon SET {sets} WHERE run=?", (*fields.values(), run))

    def daemon(self, run: str) -> DaemonRow | None:
        return self._one(DaemonRow.from_row, "SELECT * FROM daemon WHERE run=?", run)

    def daemon_state(self, run: str) -> str | None:
        """The daemon's recorded state, None before its first start."""
        row = self.daemon(run)
        return row.state if row else None

    def request_stop(self, run: str, epoch: int | None, reason: str) -> int:
        """Idempotent: one open stop request per run."""
        with self.tx() as c:
            row = c.execute(
                "SELECT id FROM stop_requests WHERE run=? AND handled_at IS NULL", (run,)
            ).fetchone()
            if row:
                return int(row["id"])
            cur = c.execute(
                "INSERT INTO stop_requests (run, epoch, reason, requested_at) VALUES (?, ?, ?, ?)",
                (run, epoch, reason, now()),
            )
            return int(cur.lastrowid or 0)

    def open_stop_request(self, run: str) -> StopRequest | None:
        return self._one(StopRequest.from_row, "SELECT * FROM stop_requests WHERE run=? AND "
                         "handled_at IS NULL ORDER BY id LIMIT 1", run)

    def stop_requests(self, run: str) -> list[StopRequest]:
        rows = self.conn.execute(
            "SELECT * FROM stop_requests WHERE run=? ORDER BY id", (run,)
        ).fetchall()
        return [StopRequest.from_row(r) for r in rows]

    def close_stop_request(self, request_id: int, result: str) -> None:
        self.conn.execute(
            "UPDATE stop_requests SET handled_at=?, result=? WHERE id=?", (now(), result, request_id)
        )

    # ---- outbox ----------------------------------------------------------------------------
    def enqueue(self, run: str, channel: str, dedupe_key: str, payload: dict[str, Any]) -> bool:
        """Queue a delivery durably; a second enqueue with the same key replaces a pending
        payload (newer data wins) and is ignored once delivered. True when queued."""
        t = now()
        cur = self.conn.execute(
            "INSERT INTO outbox (run, channel, dedupe_key, payload_json, next_attempt_at, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(channel, dedupe_key) DO UPDATE SET "
            "payload_json=excluded.payload_json WHERE outbox.status='pending'",
            (run, channel, dedupe_key, json.dumps(payload, sort_keys=True), t, t),
        )
        return cur.rowcount == 1

    def due(self, channel: str, limit: int = 50) -> list[OutboxItem]:
        """Pending items in insertion order; stops at the first one not yet due so that
        deliveries on a channel keep their order."""
        rows = self.conn.execute(
            "SELECT * FROM outbox WHERE channel=? AND status='pending' ORDER BY id LIMIT ?",
            (channel, limit),
        ).fetchall()
        out: list[OutboxItem] = []
        t = now()
        for r in rows:
            if r["next_attempt_at"] > t:
                break
            out.append(OutboxItem.from_row(r))
        return out

    def alert_queued(self, run: str, dedupe_key: str) -> bool:
        """Was an alert with this dedupe key ever queued for the run?"""
        row = self.conn.execute(
            "SELECT 1 FROM outbox WHERE channel='alert' AND run=? "
            "AND json_extract(payload_json, '$.dedupe_key')=? LIMIT 1", (run, dedupe_key),
        ).fetchone()
        return row is not None

    def mark_delivered(self, item_id: int) -> None:
        self.conn.execute(
            "UPDATE outbox SET status='delivered', delivered_at=?, last_error=NULL WHERE id=?",
            (now(), item_id),
        )

    def mark_failed(self, item_id: int, error: str, retry_at: float, dead: bool = False) -> None:
        self.conn.execute(
            "UPDATE outbox SET attempts=attempts+1, last_error=?, next_attempt_at=?, status=? "
            "WHERE id=?",
            (error, retry_at, "dead" if dead else "pending", item_id),
        )

    def outbox_counts(self, run: str) -> dict[str, dict[str, int]]:
        rows = self.conn.execute(
            "SELECT channel, status, COUNT(*) n FROM outbox WHERE run=? GROUP BY channel, status",
            (run,),
        ).fetchall()
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["channel"], {})[r["status"]] = r["n"]
        return out

    def set_sinks(self, run: str, sinks: dict[str, bool]) -> None:
        """Which delivery channels the run's daemon has enabled (for `status`)."""
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          (f"sinks:{run}", json.dumps(sinks, sort_keys=True)))

    def sinks(self, run: str) -> dict[str, bool] | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (f"sinks:{run}",)).fetchone()
        return None if row is None else dict(json.loads(row["value"]))

    def set_judged_by(self, run: str, rules: Sequence[Rule], partial_at_least: float | None) -> None:
        """The rules and the plan's `partial_at_least` the run is judged by, recorded when its
        daemon starts, so a later analysis judges the run as its daemon did."""
        judged = {"rules": [asdict(r) for r in rules], "partial_at_least": partial_at_least}
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                          (f"judged_by:{run}", json.dumps(judged, sort_keys=True)))

    def judged_by_json(self, run: str) -> dict[str, Any] | None:
        """The record as sent to Supabase: {"rules": [...], "partial_at_least": ...}."""
        row = self.conn.execute("SELECT value FROM meta WHERE key=?", (f"judged_by:{run}",)).fetchone()
        return None if row is None else cast("dict[str, Any]", json.loads(row["value"]))

    def judged_by(self, run: str) -> tuple[list[Rule], float | None] | None:
        """(rules, partial_at_least) as recorded; None for a run from before the record."""
        return judged_by_from_json(self.judged_by_json(run))

    # ---- events and reviews ----------------------------------------------------------------
    def add_event(self, run: str, level: str, kind: str, message: str, epoch: int | None = None) -> None:
        self.conn.execute(
            "INSERT INTO events (run, epoch, level, kind, message, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (run, epoch, level, kind, message, now()),
        )

    def events(self, run: str, level: str | None = None, limit: int = 50) -> list[Event]:
        q = "SELECT * FROM events WHERE run=?"
        args: tuple[str | int, ...] = (run,)
        if level:
            q += " AND level=?"
            args += (level,)
        rows = self.conn.execute(q + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [Event.from_row(r) for r in rows]

    def save_review(self, run: str, epoch: int, visual: float, style: float, prompt: float, notes: str) -> None:
        """Append to the epoch's review history; the latest is the one that counts."""
        row = (run, epoch, visual, style, prompt, notes, now())
        with self.tx() as c:
            c.execute(
                "INSERT INTO review_history (run, epoch, visual, style, prompt, notes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            c.execute(
                "INSERT OR REPLACE INTO reviews (run, epoch, visual, style, prompt, notes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", row)

    def review_history(self, run: str, epoch: int | None = None) -> list[Review]:
        """Every review saved, oldest first (of one epoch, or of all)."""
        q = "SELECT * FROM review_history WHERE run=?"
        args: tuple[str | int, ...] = (run,)
        if epoch is not None:
            q, args = q + " AND epoch=?", (run, epoch)
        return [Review.from_row(r) for r in self.conn.execute(q + " ORDER BY epoch, id", args).fetchall()]

    def reviews(self, run: str) -> list[Review]:
        rows = self.conn.execute("SELECT * FROM reviews WHERE run=? ORDER BY epoch", (run,)).fetchall()
        return [Review.from_row(r) for r in rows]
