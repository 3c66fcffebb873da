"""Chaos: SIGKILL the daemon at random moments over one run, restart it each time,
and check the ledger: every epoch in the state database, in exactly one git commit, in
exactly one delivered Supabase row (real PostgreSQL behind an HTTP stand-in), and no
secret in any log, result or commit.

Short form (make test): a 6-epoch run, 2 kills: one at a random time in start-up, one just
after epoch 4 is recorded and before it is committed (its stop decision follows the commit).
Full form (EPOCHWATCH_CHAOS=full): a 10-epoch run, those two kills, then 18 aimed at random at
start-up, an evaluation, a commit or anywhere. Both forms then kill the daemon once more after
the run has ended (a restart must not undo it).
EPOCHWATCH_CHAOS_SEED replays a run's kill schedule (the seed is printed).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.chaos.ledger import appeared, check_ledger, secrets_nowhere
from tests.chaos.rig import (
    HOOK_TOKEN,
    SUPABASE_KEY,
    Proc,
    chaos_config,
    daemon,
    epochwatch,
    figures,
    kill_running,
    scale,
    services,
    state_of,
    status_json,
    wait_delivered,
    wait_evaluated,
    wait_ready,
)
from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401
from watcher.config import load_config
from watcher.store import Store

RUN = "CHAOS_KILL"
EPOCHS = scale(6, 10)
EXTRA = """
[supabase]
timeout_s = 2.0

[alerts]
min_interval_s = 0.0
"""


# The first kills are aimed, in both forms: at start-up, and at the moment that matters
# most, epoch 4 recorded but not yet committed (its stop decision comes after the commit).
# Further kills (full form) are aimed at random.
FIRST_AIMS = ("start-up", "epoch 4 commit")
RANDOM_AIMS = ("start-up", "evaluation", "commit", "anywhere")


def _uncommitted(db: Path) -> list[int]:
    with Store(db) as s:
        return [r[0] for r in s.conn.execute(
            "SELECT epoch FROM evaluations WHERE run=? AND git_commit IS NULL", (RUN,))]


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll fast (a commit lasts a fraction of a second); False if it never came."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def _phase(db: Path, pid: int) -> str:
    """What the daemon was doing when it was killed, as far as its state database says."""
    snap = state_of(db, RUN)
    d = snap["daemon"]
    if d.get("pid") != pid or d.get("state") == "starting":
        return "starting"
    if any(status == "evaluating" for _, status in snap["checkpoints"].values()):
        return "evaluating"
    if _uncommitted(db):
        return "committing"
    return str(d.get("state"))


@pytest.mark.chaos
@pytest.mark.timeout(1500)
def test_sigkill_at_random_moments_loses_and_repeats_nothing(
    tmp_path: Path, tiny_model_dir: Path, pg_database: str
) -> None:
    n_kills = scale(2, 20)  # one more follows the end of the run
    seed = int(os.environ.get("EPOCHWATCH_CHAOS_SEED") or time.time_ns() % 2**31)
    rng = random.Random(seed)
    print(f"CHAOS sigkill seed={seed} (EPOCHWATCH_CHAOS_SEED={seed} replays it)")  # shown on failure too
    started = time.monotonic()
    with services(pg_database) as svc:
        # The trainer's pace (the full form's is simtrain's default, as it always ran).
        interval = scale(1.0, 5.0)
        config = chaos_config(tmp_path, tiny_model_dir, name=RUN, epochs=EPOCHS,
                              interval=interval, extra=EXTRA)
        db = tmp_path / "state" / "state.db"
        env = svc.child_env()
        trainer = Proc(epochwatch("simtrain", "--config", str(config), "--interval", str(interval)),
                       tmp_path / "trainer.log", env).start()
        watcher = daemon(config, tmp_path, env)
        kills: list[float] = []
        phases: Counter[str] = Counter()
        try:
            while len(kills) < n_kills:
                watcher.start()
                aim = FIRST_AIMS[len(kills)] if len(kills) < len(FIRST_AIMS) else \
                    rng.choices(RANDOM_AIMS, weights=(1, 2, 1, 1))[0]
                if aim == "start-up":  # imports, pipeline loading, backlog
                    time.sleep(rng.uniform(0.2, 6.0))
                else:
                    wait_ready(watcher, db, RUN)
                    if aim == "epoch 4 commit":
                        assert _wait(lambda: 4 in _uncommitted(db), 300), "epoch 4 never seen uncommitted"
                    elif aim == "commit":  # if one comes soon
                        _wait(lambda: bool(_uncommitted(db)), 10)
                    elif aim == "evaluation":
                        _wait(lambda: _phase(db, watcher.pid) == "evaluating", 10)
                        time.sleep(rng.uniform(0.0, 0.8))
                    else:
                        time.sleep(rng.uniform(0.0, 3.0))
                assert watcher.running(), watcher.tail()
                phases[_phase(db, watcher.pid)] += 1
                watcher.kill()
                kills.append(time.time())
            watcher.start()
            wait_ready(watcher, db, RUN, "the last daemon ready")
            assert trainer.wait(600) == 0, trainer.tail()
            wait_evaluated(watcher, db, RUN, EPOCHS)
            wait_delivered(watcher, db, RUN, "Supabase rows and alerts delivered")
            # One more kill once the run is over: a restart must not undo its end.
            phases["after the run"] += 1
            watcher.kill()
            kills.append(time.time())
            watcher.start()
            wait_ready(watcher, db, RUN, "the daemon ready again")
            wait_delivered(watcher, db, RUN, "deliveries after the restart")
            status, _took = status_json(config, env)
            rc = watcher.stop()
        finally:
            kill_running(watcher, trainer)
        assert rc == 0, watcher.tail()
        assert [e["status"] for e in status["epochs"]] == ["evaluated"] * EPOCHS
        files = sorted((tmp_path / "output").glob("*.safetensors"))
        expected = appeared(files)
        assert sorted(expected) == list(range(1, EPOCHS + 1))
        report = check_ledger(load_config(config), expected, svc, kills)
        searched = secrets_nowhere([SUPABASE_KEY, HOOK_TOKEN], tmp_path, tmp_path / "results", svc)
        # The rig really used the secrets (or the search above would prove nothing).
        assert any(r.headers.get("apikey") == SUPABASE_KEY for r in svc.supabase.stub.recorded())
        assert svc.hook.stub.recorded(f"/hooks/{HOOK_TOKEN}")
    figures("sigkill", kills_survived=len(kills), daemon_starts=watcher.starts, seed=seed,
            kill_phases=dict(phases), epochs=report.epochs, commits=report.commits,
            supabase_rows=report.supabase_rows, duplicate_deliveries=report.duplicate_deliveries,
            alerts=report.alerts_delivered, files_searched_for_secrets=searched,
            wall_s=round(time.monotonic() - started))
