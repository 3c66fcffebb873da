"""End to end, in real processes: `simtrain` writes 10 kohya epochs on the tiny model while
`watch` runs. Every epoch is evaluated and committed exactly once, also when the daemon is
killed with SIGKILL mid-evaluation and restarted (that case is marked slow and chaos: `make
slow` and `make chaos` run it, `make test` leaves it out; its short chaos twin,
test_chaos_kill.py, runs in `make test`). 64 px images, 1 step: nothing here depends on size."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_watch_config
from tests.e2e import (
    checkpoint_statuses,
    commit_subjects,
    epochwatch,
    start,
    status_json,
    stop,
    wait_for,
)
from watcher.store import Store

RUN = "E2E_RUN"
INTERVAL = "0.4"  # seconds between the trainer's epochs


def _run(root: Path, model: Path, kill_mid_evaluation: bool) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    config = write_watch_config(root, model, name=RUN, interval=float(INTERVAL), size=64, steps=1)
    db = root / "state" / "state.db"
    daemon = start(epochwatch("watch", "--config", str(config)), root / "daemon.log")
    trainer = start(epochwatch("simtrain", "--config", str(config), "--interval", INTERVAL),
                    root / "trainer.log")
    kills = 0
    try:
        if kill_mid_evaluation:
            wait_for(lambda: "evaluating" in checkpoint_statuses(db, RUN).values()
                     and list(checkpoint_statuses(db, RUN).values()).count("evaluated") >= 2,
                     240, "an evaluation in flight after two finished", interval=0.02)
            stop(daemon, signal.SIGKILL)
            kills += 1
            daemon = start(epochwatch("watch", "--config", str(config)), root / "daemon.log")
        assert trainer.wait(240) == 0
        wait_for(lambda: list(checkpoint_statuses(db, RUN).values()).count("evaluated") == 10,
                 300, "10 evaluated epochs")
        status = status_json(config)
    finally:
        stop(trainer, signal.SIGKILL)
        rc = stop(daemon)
    assert rc == 0, (root / "daemon.log").read_text()[-3000:]
    with Store(db) as s:
        aggregates = {e.epoch: e.aggregate for e in s.evaluations(RUN)}
        commits = {e.epoch: e.git_commit for e in s.evaluations(RUN)}
    return {"status": status, "aggregates": aggregates, "commits": commits, "kills": kills,
            "subjects": commit_subjects(root / "results"), "root": root}


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> dict[str, Any]:
    return _run(tmp_path_factory.mktemp("clean"), tiny_model_dir, kill_mid_evaluation=False)


def test_all_ten_epochs_evaluated_and_committed_once(clean_run: dict[str, Any]) -> None:
    status = clean_run["status"]
    assert [e["epoch"] for e in status["epochs"]] == list(range(1, 11))
    assert all(e["status"] == "evaluated" for e in status["epochs"])
    # The last epoch came from the unnumbered final file, as kohya writes it.
    assert status["epochs"][-1]["checkpoint"].endswith("e2e_lora.safetensors")
    for epoch in range(1, 11):
        subjects = [s for s in clean_run["subjects"] if s.startswith(f"{RUN} epoch {epoch}:")]
        assert len(subjects) == 1, (epoch, clean_run["subjects"])
    run_dir = clean_run["root"] / "results" / "runs" / RUN
    for epoch in range(1, 11):
        folder = run_dir / f"epoch-{epoch:03d}"
        assert (folder / "metrics.json").is_file()
        assert len(list((folder / "samples").glob("*.png"))) == 2
        assert len(list((folder / "samples_24px").glob("*.png"))) == 2
        assert (folder / "contact_sheet.png").is_file()
    assert status["results"]["repo"] == str(clean_run["root"] / "results")


@pytest.mark.slow
@pytest.mark.chaos
def test_sigkill_mid_evaluation_gives_the_same_result(
    clean_run: dict[str, Any], tmp_path: Path, tiny_model_dir: Path
) -> None:
    killed = _run(tmp_path / "killed", tiny_model_dir, kill_mid_evaluation=True)
    assert killed["kills"] == 1
    for epoch in range(1, 11):
        subjects = [s for s in killed["subjects"] if s.startswith(f"{RUN} epoch {epoch}:")]
        assert len(subjects) == 1, (epoch, killed["subjects"])
    assert sorted(killed["aggregates"]) == list(range(1, 11))
    assert killed["aggregates"] == clean_run["aggregates"]
    assert all(killed["commits"].values())
