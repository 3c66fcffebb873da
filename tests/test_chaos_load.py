"""Chaos: load. Checkpoint files for every epoch of a run appear in the watched folder at
once (renamed in, in one burst) while the daemon is idle. They are processed in epoch order,
each exactly once; the daemon's memory stays bounded; `status` keeps answering throughout;
and the ledger holds for every epoch (state database, git, Supabase).

Short form (make test): 12 files. Full form (EPOCHWATCH_CHAOS=full): 200 files.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.chaos.ledger import appeared, check_ledger
from tests.chaos.rig import (
    chaos_config,
    daemon,
    evaluated_epochs,
    figures,
    kill_running,
    make_checkpoints,
    scale,
    services,
    status_json,
    wait_delivered,
    wait_ready,
)
from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401
from watcher.config import load_config
from watcher.store import Store

RUN = "CHAOS_LOAD"
# Memory the daemon may gain between its first evaluations and the end of the burst; a leak
# of even a few hundred kB per epoch (a LoRA or an image kept) would exceed it at 200.
RSS_GROWTH_LIMIT_MB = 150
EXTRA = """
[alerts]
min_interval_s = 0.0
"""


class Sampler(threading.Thread):
    """Samples the daemon's resident memory every 0.5 s, with the number of evaluated epochs."""

    def __init__(self, pid: int, db: Path) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.db = db
        self.samples: list[tuple[int, float]] = []  # (epochs evaluated, RSS MB)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            try:
                rss = self.proc.memory_info().rss / 2**20
            except psutil.Error:
                return
            self.samples.append((len(evaluated_epochs(self.db, RUN)), rss))


@pytest.mark.chaos
@pytest.mark.timeout(1500)
def test_a_burst_of_checkpoints_is_processed_in_order_once_with_bounded_memory(
    tmp_path: Path, tiny_model_dir: Path, pg_database: str
) -> None:
    n = scale(12, 200)
    started = time.monotonic()
    staged = make_checkpoints(tiny_model_dir, tmp_path / "staging", "e2e_lora", n, dim=4)
    expected = appeared(staged)
    with services(pg_database) as svc:
        config = chaos_config(tmp_path, tiny_model_dir, name=RUN, epochs=n, one_prompt=True,
                              extra=EXTRA)
        db = tmp_path / "state" / "state.db"
        out = tmp_path / "output"
        out.mkdir()
        env = svc.child_env()
        watcher = daemon(config, tmp_path, env).start()
        sampler = Sampler(watcher.pid, db)
        latencies: list[float] = []
        try:
            wait_ready(watcher, db, RUN)
            sampler.start()
            burst_at = time.time()
            for path in staged:  # the same file system: each appears whole, all at once
                os.rename(path, out / path.name)
            done = 0
            while done < n:
                assert watcher.running(), watcher.tail()
                status, took = status_json(config, env)
                latencies.append(took)
                states = [e["status"] for e in status["epochs"]]
                assert status["run"] == RUN and len(states) <= n
                assert states.count("evaluating") <= 1  # one at a time
                done = states.count("evaluated")
                time.sleep(2.0)
            wait_delivered(watcher, db, RUN, "deliveries", timeout=600)
            rc = watcher.stop()
        finally:
            sampler.stop.set()
            kill_running(watcher)
        assert rc == 0, watcher.tail()
        with Store(db) as s:
            checkpoints = s.checkpoints(RUN)
        assert len(checkpoints) == n
        # Epoch order: each evaluation started after the one of the epoch before it.
        order = sorted(checkpoints, key=lambda c: c.epoch or 0)
        assert [c.epoch for c in order] == list(range(1, n + 1))
        with Store(db) as s:  # started_at is not part of the Checkpoint record: read it here
            started_at = dict(s.conn.execute(
                "SELECT epoch, started_at FROM checkpoints WHERE run=?", (RUN,)).fetchall())
        assert all(started_at[e] < started_at[e + 1] for e in range(1, n)), started_at
        # Each once: one evaluation attempt per checkpoint.
        assert [c.attempts for c in order] == [1] * n, [(c.epoch, c.attempts) for c in order]
        assert all(c.detected_at >= burst_at - 1 for c in order)
        report = check_ledger(load_config(config), expected, svc)
        # Memory: what the daemon holds after its first few epochs is what it holds at the end.
        early = [rss for k, rss in sampler.samples if 0 < k <= max(3, n // 10)]
        late = [rss for k, rss in sampler.samples if k >= n - max(3, n // 10)]
        assert early and late, sampler.samples
        growth = max(late) - statistics.median(early)
        assert growth < RSS_GROWTH_LIMIT_MB, (statistics.median(early), max(late))
    figures("load", files=n, processed=report.epochs, commits=report.commits,
            supabase_rows=report.supabase_rows, status_calls=len(latencies),
            status_max_s=round(max(latencies), 2),
            status_median_s=round(statistics.median(latencies), 2),
            rss_early_mb=round(statistics.median(early)), rss_max_mb=round(max(r for _, r in sampler.samples)),
            rss_growth_mb=round(growth, 1), wall_s=round(time.monotonic() - started))
