"""Training points and figures in the state database (tables in watcher.store's schema).

Points are kept per (run, tag, step); a tag over `max_points` has its older points thinned
by half (the latest KEEP_RECENT and every non-finite point stay), so a long run's database
stays bounded while its curve keeps its shape. SQLite stores NaN as NULL, so a non-finite
value is kept as text beside it.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from watcher.store import Store
from watcher.training.points import Point
from watcher.training.tensorboard import Batch

MAX_POINTS = 2000
KEEP_RECENT = 200


def _nonfinite(value: float) -> str | None:
    return None if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def save_points(store: Store, run: str, batch: Batch, max_points: int = MAX_POINTS) -> None:
    if not batch.points and not batch.rewinds:
        return
    with store.tx() as c:
        for tag, step in batch.rewinds.items():
            c.execute("DELETE FROM training_points WHERE run=? AND tag=? AND step>=?", (run, tag, step))
        c.executemany(
            "INSERT OR REPLACE INTO training_points (run, tag, step, value, nonfinite, wall_time) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(run, p.tag, p.step, p.value if p.finite else None, _nonfinite(p.value), p.wall_time)
             for p in batch.points])
        for tag in {p.tag for p in batch.points}:
            _thin(c, run, tag, max_points)


def _thin(c: Any, run: str, tag: str, max_points: int) -> None:
    """Halve the older points until the tag fits (or nothing more may go)."""
    while True:
        n = c.execute("SELECT COUNT(*) FROM training_points WHERE run=? AND tag=?", (run, tag)).fetchone()[0]
        if n <= max_points or not _halve(c, run, tag, n):
            return


def _halve(c: Any, run: str, tag: str, n: int) -> int:
    deleted = c.execute(
        "DELETE FROM training_points WHERE run=? AND tag=? AND step IN ("
        " SELECT step FROM (SELECT step, nonfinite, ROW_NUMBER() OVER (ORDER BY step) AS rn"
        "  FROM training_points WHERE run=? AND tag=?)"
        " WHERE rn % 2 = 0 AND rn <= ? AND nonfinite IS NULL)",
        (run, tag, run, tag, n - KEEP_RECENT)).rowcount
    return int(deleted)


def load_series(store: Store, run: str) -> dict[str, list[Point]]:
    """tag -> points in step order."""
    out: dict[str, list[Point]] = {}
    rows = store.conn.execute(
        "SELECT tag, step, value, nonfinite, wall_time FROM training_points WHERE run=? "
        "ORDER BY tag, step", (run,)).fetchall()
    for r in rows:
        value = float(r["nonfinite"]) if r["nonfinite"] else float(r["value"])
        out.setdefault(r["tag"], []).append(Point(r["tag"], int(r["step"]), value, float(r["wall_time"])))
    return out


def save_state(store: Store, run: str, source: str | None, figures: dict[str, Any],
               health: list[dict[str, Any]], gpu: list[dict[str, Any]] | None) -> None:
    store.conn.execute(
        "INSERT OR REPLACE INTO training_state (run, source, figures_json, health_json, gpu_json, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        (run, source, json.dumps(figures), json.dumps(health),
         None if gpu is None else json.dumps(gpu), time.time()))


def load_state(store: Store, run: str) -> dict[str, Any] | None:
    """{"source", "figures", "health", "gpu", "updated_at"} or None before any."""
    row = store.conn.execute("SELECT * FROM training_state WHERE run=?", (run,)).fetchone()
    if row is None:
        return None
    return {"source": row["source"], "figures": json.loads(row["figures_json"]),
            "health": json.loads(row["health_json"]),
            "gpu": None if row["gpu_json"] is None else json.loads(row["gpu_json"]),
            "updated_at": row["updated_at"]}


def clear_points(store: Store, run: str) -> None:
    store.conn.execute("DELETE FROM training_points WHERE run=?", (run,))


def snapshot(store: Store, run: str) -> dict[str, Any] | None:
    """The latest training figures (for an epoch's metrics.json and its Supabase row)."""
    state = load_state(store, run)
    return None if state is None else {"source": state["source"], **state["figures"]}
