"""`epochwatch replay`: a past run's 10 epochs judged as live, published as the daemon
would (state, one commit per epoch, report, Supabase rows in PostgreSQL, alerts), and a
second replay changes nothing. Real processes, real git, real HTTP, real PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.httpstub import HttpStub
from tests.pg import PostgrestStandIn, apply_migrations
from watcher.samples import demo_set
from watcher.samples.demo_set import EpochLook
from watcher.testing import write_trainer_source_config

# Pink until epoch 4 (the stop), green at 5-6, pink again at 7 (oscillation), clean after.
STOP_STORY = (
    EpochLook(2, 6.0, 14.0, 0.35), EpochLook(2, 4.5, 11.0, 0.25), EpochLook(2, 3.5, 8.0, 0.16),
    EpochLook(2, 3.2, 8.0, 0.14), EpochLook(0, 3.0, 8.0, 0.12), EpochLook(0, 2.6, 6.0, 0.08),
    EpochLook(2, 2.4, 5.0, 0.06), EpochLook(0, 1.0, 3.0, 0.03), EpochLook(0, 0.6, 2.0, 0.0),
    EpochLook(0, 0.6, 2.0, 0.0),
)
KEY = "service-role-key-0123456789abcdef"


def write_config(root: Path, prompts: Path) -> Path:
    return write_trainer_source_config(
        root, prompts, name="REPLAY_STOP_AT_4", sampling="review_epochs = []",
        tables='[model]\nbase = "not-used"\n\n[alerts]\nmin_interval_s = 0.0\n')


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True,
                          text=True, timeout=600, env=env, check=False)


def git_log(repo: Path) -> list[str]:
    return subprocess.run(["git", "-C", str(repo), "log", "--format=%H %s"], capture_output=True,
                          text=True, check=True).stdout.splitlines()


def db_counts(db: Path) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]  # noqa: S608
                for t in ("checkpoints", "evaluations", "decisions", "outbox", "events",
                          "stop_requests")}


@pytest.fixture()
def rest(pg_database: str):
    apply_migrations(pg_database)
    api = PostgrestStandIn(pg_database, KEY)
    with HttpStub(api) as stub:
        yield stub, api


def test_replay_ten_epochs_stop_stands_then_idempotent(tmp_path: Path, rest: Any) -> None:
    supabase, api = rest
    images = demo_set.build(tmp_path / "past_run", story=STOP_STORY,
                            subjects=demo_set.DEMO_SUBJECTS[:2])
    config = write_config(tmp_path, demo_set.prompts_file(images))
    with HttpStub() as hook:
        env = {**os.environ, "SUPABASE_URL": supabase.url, "SUPABASE_KEY": KEY,
               "EPOCHWATCH_ALERT_URLS": f"json://127.0.0.1:{hook.port}/hooks/epochwatch"}
        first = cli("replay", "--config", str(config), "--images", str(images), "--json", env=env)
        assert first.returncode == 0, first.stderr
        out = json.loads(first.stdout)
        alerts = [r.json()["title"] for r in hook.recorded("/hooks/")]
        commits = git_log(tmp_path / "results")
        counts = db_counts(tmp_path / "state" / "state.db")
        rows = list(api.applied)

        # the rules as live: stop decided at epoch 4 stands; later epochs judged after it
        assert (out["status"], out["stop_epoch"]) == ("stopped", 4)
        epochs = {e["epoch"]: e for e in out["epochs"]}
        assert sorted(epochs) == list(range(1, 11))
        assert all(e["state"] == "judged" for e in epochs.values())
        assert epochs[4]["decision"] == "stop" and not epochs[4]["after_stop"]
        assert all(epochs[e]["after_stop"] for e in range(5, 11))
        assert [epochs[e]["background_match_rate"] for e in (4, 5, 6, 7, 8)] == [0.0, 1.0, 1.0, 0.0, 1.0]
        assert epochs[7]["decision"] == "alert"  # the oscillation
        assert any("oscillation" in t.lower() for t in alerts) and any("stop" in t.lower() for t in alerts)
        # published as the daemon would: one commit per epoch, then the report
        epoch_commits = [c for c in commits if re.search(r" REPLAY_STOP_AT_4 epoch \d+: ", c)]
        assert len(epoch_commits) == 10
        assert any(" report: " in c for c in commits)
        assert (tmp_path / "results" / "runs" / "REPLAY_STOP_AT_4" / "report.md").exists()
        assert sorted(r["epoch"] for t, r in rows if t == "epoch_evaluations") == list(range(1, 11))
        assert any(t == "training_runs" and r.get("status") == "stopped" for t, r in rows)

        # status lists every epoch, with the run's decision
        status = cli("status", "--config", str(config), "--json", env=env)
        s = json.loads(status.stdout)
        assert [e["epoch"] for e in s["epochs"]] == list(range(1, 11))
        assert all(e["overall_score"] is not None for e in s["epochs"])
        assert s["decision"] == "stop" and s["decision_detail"]["epoch"] == 4
        assert [e["after_stop"] for e in s["epochs"]] == [False] * 4 + [True] * 6
        assert s["trainer"]["pid"] is None  # no trainer was started or signalled

        # a second replay changes nothing
        second = cli("replay", "--config", str(config), "--images", str(images), "--json", env=env)
        assert second.returncode == 0, second.stderr
        again = json.loads(second.stdout)
        assert all(e["state"] == "already judged" for e in again["epochs"])
        assert (again["status"], again["stop_epoch"]) == ("stopped", 4)
        assert git_log(tmp_path / "results") == commits
        assert db_counts(tmp_path / "state" / "state.db") == counts
        assert [r.json()["title"] for r in hook.recorded("/hooks/")] == alerts
        assert api.applied == rows


def test_images_the_evaluators_cannot_score_fail_that_epoch_only(tmp_path: Path) -> None:
    from PIL import Image

    images = demo_set.build(tmp_path / "past_run", story=STOP_STORY[:2], subjects=demo_set.DEMO_SUBJECTS[:2])
    for png in (images / "epoch_02").glob("*.png"):  # 16 px: smaller than the 24-cell grid
        Image.new("RGB", (16, 16), (0, 255, 0)).save(png)
    config = write_config(tmp_path, demo_set.prompts_file(images))
    proc = cli("replay", "--config", str(config), "--images", str(images), "--json", env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    epochs = {e["epoch"]: e for e in json.loads(proc.stdout)["epochs"]}
    assert epochs[1]["state"] == "judged"
    assert epochs[2]["state"] == "failed" and "epoch 2: " in epochs[2]["problems"][-1]
    again = json.loads(cli("replay", "--config", str(config), "--images", str(images), "--json",
                           env=dict(os.environ)).stdout)
    assert [e["state"] for e in again["epochs"]] == ["already judged", "failed before"]
