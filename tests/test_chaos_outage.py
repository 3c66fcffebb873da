"""Chaos: outages around a real daemon, then the ledger check.

1. Supabase and the webhook down (503, requests that hang past the client timeout, refused
   connections) while epochs arrive: the daemon keeps evaluating, the outbox delivers every
   row and alert once afterwards.
2. The results repository on a small tmpfs: full, then read-only, then its git index locked
   by another process: a clear error (event + alert), retried, nothing lost or repeated.

Short form (make test): about 10 s of network outage, 2 s of each disk fault, a 3 s lock.
Full form (EPOCHWATCH_CHAOS=full): 30 s or more of each network outage (each lasts until
both channels have met it: about 2 minutes in all), 45 s of full disk and of read-only
repository, and an index lock held past the 60 s git retry window.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.chaos.ledger import appeared, check_ledger, secrets_nowhere
from tests.chaos.rig import (
    HOOK_TOKEN,
    OUTAGES,
    SUPABASE_KEY,
    IndexLockHolder,
    Proc,
    Tmpfs,
    chaos_config,
    daemon,
    drop,
    epochwatch,
    evaluated_epochs,
    figures,
    kill_running,
    make_checkpoints,
    scale,
    services,
    tmpfs_unavailable,
    wait_delivered,
    wait_evaluated,
    wait_ready,
)
from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401
from watcher.config import load_config
from watcher.store import Store

EPOCHS = scale(6, 10)
EXTRA = """
[supabase]
timeout_s = 1.0
retry_max_s = 10.0  # a short backoff cap keeps recovery after the outage quick
[alerts]
min_interval_s = 0.0
"""


CHANNELS = ("supabase", "alert")


def _tries(db: Path, run: str) -> dict[str, int]:
    """Failed delivery attempts so far, per channel (each failure adds one)."""
    with Store(db) as s:
        rows = s.conn.execute("SELECT channel, SUM(attempts) FROM outbox WHERE run=? "
                              "GROUP BY channel", (run,)).fetchall()
    return {c: 0 for c in CHANNELS} | {r[0]: int(r[1]) for r in rows}


def _attempts(db: Path, run: str) -> dict[str, int]:
    """The most delivery attempts any outbox item needed, per channel."""
    with Store(db) as s:
        rows = s.conn.execute("SELECT channel, MAX(attempts) FROM outbox WHERE run=? "
                              "GROUP BY channel", (run,)).fetchall()
    return {r[0]: r[1] for r in rows}


# Every epoch fails this rule, so alerts are queued all through the outage.
ALERT_EVERY_EPOCH = """
[[criteria]]
name = "chaos_alert_every_epoch"
metric = "overall_score"
comparison = ">"
threshold = 10
epoch = 1
mode = "from"
action = "alert"
"""


@pytest.mark.chaos
@pytest.mark.timeout(1200)
def test_supabase_and_webhook_outages_lose_nothing(
    tmp_path: Path, tiny_model_dir: Path, pg_database: str
) -> None:
    run = "CHAOS_OUTAGE"
    each_s = scale(2.0, 30.0)
    started = time.monotonic()
    with services(pg_database, hang_s=5.0) as svc:
        # The trainer's pace (the full form's is simtrain's default, as it always ran).
        interval = scale(1.5, 5.0)
        config = chaos_config(tmp_path, tiny_model_dir, name=run, epochs=EPOCHS,
                              interval=interval, extra=EXTRA + ALERT_EVERY_EPOCH)
        db = tmp_path / "state" / "state.db"
        env = svc.child_env()
        watcher = daemon(config, tmp_path, env).start()
        trainer = Proc(epochwatch("simtrain", "--config", str(config), "--interval", str(interval)),
                       tmp_path / "trainer.log", env)
        try:
            wait_ready(watcher, db, run)
            trainer.start()
            watcher.wait_until(lambda: evaluated_epochs(db, run), 300, "the first epoch evaluated")
            before = len(evaluated_epochs(db, run))
            met: dict[str, dict[str, int]] = {}
            for outage in OUTAGES:
                tries = _tries(db, run)
                svc.set_outage(outage)
                time.sleep(each_s)
                # Both channels must really have met this kind of outage before it ends.
                watcher.wait_until(lambda t=tries: all(_tries(db, run)[c] > t[c] for c in CHANNELS),
                                   180, f"failed deliveries during the {outage} outage", 0.2)
                met[outage] = {c: _tries(db, run)[c] - tries[c] for c in CHANNELS}
            during = len(evaluated_epochs(db, run)) - before
            svc.set_outage("none")
            assert trainer.wait(600) == 0, trainer.tail()
            wait_evaluated(watcher, db, run, EPOCHS)
            wait_delivered(watcher, db, run, "deliveries after the outage", timeout=900)
            recovered_s = time.monotonic() - started
            rc = watcher.stop()
        finally:
            kill_running(watcher, trainer)
        assert rc == 0, watcher.tail()
        # The daemon never waited on the network: epochs were evaluated during the outage.
        assert during >= 1, "no epoch was evaluated while Supabase and the webhook were down"
        attempts = _attempts(db, run)
        # The 503s and the hung requests reached the servers and were answered as failures.
        failed = {"supabase": svc.supabase.failed_requests(), "webhook": svc.hook.failed_requests()}
        assert failed["supabase"] >= 2 and failed["webhook"] >= 2, failed
        expected = appeared(sorted((tmp_path / "output").glob("*.safetensors")))
        report = check_ledger(load_config(config), expected, svc)
        assert report.duplicate_deliveries == 0
        assert svc.run_row(run) is not None
        searched = secrets_nowhere([SUPABASE_KEY, HOOK_TOKEN], tmp_path, tmp_path / "results", svc)
    outage_s = {k: round(v, 1) for k, v in svc.supabase.seconds.items()}
    figures("outage", outage_minutes=round(sum(outage_s.values()) / 60, 2), outage_s=outage_s,
            failed_requests=failed, failures_per_outage=met, max_attempts=attempts, epochs_evaluated_during_outage=during,
            epochs=report.epochs, supabase_rows=report.supabase_rows,
            duplicate_deliveries=report.duplicate_deliveries, alerts=report.alerts_delivered,
            files_searched_for_secrets=searched, wall_s=round(recovered_s))


def _all_committed(db: Path, run: str) -> bool:
    with Store(db) as s:
        return not s.unpublished(run)


def _last_event(db: Path, run: str) -> int:
    with Store(db) as s:
        events = s.events(run, limit=1)
    return events[0].id if events else 0


def _error_since(db: Path, run: str, after: int, text: str) -> bool:
    with Store(db) as s:
        return any(e.id > after and text in e.message for e in s.events(run, "error", 100))


@pytest.mark.chaos
@pytest.mark.timeout(1200)
def test_full_disk_read_only_repository_and_index_lock(
    tmp_path: Path, tiny_model_dir: Path, pg_database: str
) -> None:
    why = tmpfs_unavailable(tmp_path / "probe")
    if why:
        pytest.skip(why)
    run = "CHAOS_DISK"
    epochs = 6
    fault_s = scale(2.0, 45.0)
    lock_s = scale(3.0, 75.0)  # the full form outlasts the 60 s git lock retry window
    started = time.monotonic()
    staged = make_checkpoints(tiny_model_dir, tmp_path / "staging", "e2e_lora", epochs)
    expected = appeared(staged)
    with services(pg_database) as svc, Tmpfs(tmp_path / "results", size_mb=24) as disk:
        config = chaos_config(tmp_path, tiny_model_dir, name=run, epochs=epochs, extra=EXTRA)
        db = tmp_path / "state" / "state.db"
        out = tmp_path / "output"
        out.mkdir()
        env = svc.child_env()
        watcher = daemon(config, tmp_path, env).start()
        try:
            wait_ready(watcher, db, run)

            def settled(n: int) -> None:
                """n epochs evaluated and committed (so the next fault meets the next epoch)."""
                watcher.wait_until(lambda: len(evaluated_epochs(db, run)) >= n
                                   and _all_committed(db, run),
                                   600, f"{n} epochs evaluated and committed", interval=0.2)

            def fault_seen(text: str, after: int) -> None:
                watcher.wait_until(lambda: _error_since(db, run, after, text), 120,
                                   f"an error {text!r}")

            drop(staged[0], out)
            settled(1)
            # 1. Full disk: the epoch waits, with an error that says so, and goes through after.
            mark = _last_event(db, run)
            filled = disk.fill()
            drop(staged[1], out)
            fault_seen("No space left on device", mark)
            time.sleep(fault_s)
            disk.free()
            settled(2)
            # 2. Read-only repository: the same.
            mark = _last_event(db, run)
            disk.read_only(True)
            drop(staged[2], out)
            fault_seen("Read-only file system", mark)
            time.sleep(fault_s)
            disk.read_only(False)
            settled(3)
            # 3. Another process holds the git index lock while two epochs arrive.
            with IndexLockHolder(tmp_path / "results", lock_s) as lock:
                drop(staged[3], out)
                drop(staged[4], out)
                lock.wait()
            settled(5)
            drop(staged[5], out)
            settled(6)
            wait_delivered(watcher, db, run, "deliveries", timeout=600)
            rc = watcher.stop()
        finally:
            kill_running(watcher)
        assert rc == 0, watcher.tail()
        with Store(db) as s:
            attempts = {c.epoch: c.attempts for c in s.checkpoints(run)}
            errors = [e for e in s.events(run, level="error", limit=1000)]
        # The faulty epochs were retried: evaluated again, or their commit made later.
        for epoch in (2, 3):
            assert attempts[epoch] >= 2 or any(e.kind == "git_commit_failed" and e.epoch == epoch
                                               for e in errors), (epoch, attempts, errors)
        kinds = sorted({e.kind for e in errors})
        assert all("\n" not in e.message for e in errors)
        # Every fault was announced: the alerts name the reason in one line.
        bodies = " ".join(f"{a.get('title')} {a.get('message')}" for a in svc.delivered_alerts())
        assert "No space left on device" in bodies and "Read-only file system" in bodies, bodies
        if lock_s > 60:
            assert any(e.kind == "git_commit_failed" and "index.lock" in e.message
                       for e in errors), errors
        report = check_ledger(load_config(config), expected, svc)
        assert report.duplicate_deliveries == 0
        searched = secrets_nowhere([SUPABASE_KEY, HOOK_TOKEN], tmp_path, tmp_path / "results", svc)
    figures("disk", full_disk_s=fault_s, filled_mb=round(filled / 2**20, 1),
            read_only_s=fault_s, index_lock_s=lock_s, error_kinds=kinds, attempts=attempts,
            epochs=report.epochs, commits=report.commits, supabase_rows=report.supabase_rows,
            files_searched_for_secrets=searched, wall_s=round(time.monotonic() - started))
