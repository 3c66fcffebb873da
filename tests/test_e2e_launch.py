"""End to end with real processes: `epochwatch launch` starts the daemon and a trainer
(an accelerate-like wrapper whose child is `simtrain`), and the Epoch 4 rule decides.

Stop path: the random tiny model never draws a green background, so the trainer's whole
process group is stopped after epoch 4 is judged: no orphans, no epoch written after the stop.
Continue path: rules that pass let the trainer run to its last (unnumbered) file.
64 px images, 1 step: the rules do not depend on size, and the epochs come sooner.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

from tests.conftest import write_watch_config
from tests.e2e import epochwatch, passing_stop_rule, start
from watcher.store import Store

RUN = "E2E_LAUNCH"

# Fewer epochs than the stop path's 10: enough to run past the epoch-4 rule to the last file.
CONTINUE_EPOCHS = 5


def _wrapped_trainer(config: Path, interval: float) -> str:
    # Like `accelerate launch`: a parent that runs the real trainer as its child and does not
    # forward signals to it. Only a signal to the whole process group reaches the child.
    inner = " ".join([sys.executable, "-m", "watcher", "simtrain", "--config", str(config),
                      "--interval", str(interval)])
    return f'command = ["/bin/sh", "-c", "trap \\"\\" TERM; {inner} & wait"]\n'


def _launch(root: Path, model: Path, criteria: str, interval: float,
            epochs: int = 10) -> tuple[int, Path]:
    config = write_watch_config(root, model, name=RUN, epochs=epochs, size=64, steps=1,
                                interval=interval, criteria=criteria)
    text = config.read_text()
    start_line = next(line for line in text.splitlines() if line.startswith("command = "))
    config.write_text(text.replace(start_line + "\n", _wrapped_trainer(config, interval)))
    proc = start(epochwatch("launch", "--config", str(config)), root / "launch.log", cwd=root)
    rc = proc.wait(600)
    return rc, config


def _leftovers(config: Path) -> list[psutil.Process]:
    mine = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if str(config) in cmd and "simtrain" in cmd:
            mine.append(p)
    return mine


def test_stop_path_stops_the_whole_group_before_the_last_epoch(tmp_path: Path, tiny_model_dir: Path) -> None:
    rc, config = _launch(tmp_path, tiny_model_dir, "", interval=3.0)
    log = (tmp_path / "launch.log").read_text()
    assert rc == 0, log[-3000:]
    db = tmp_path / "state" / "state.db"
    with Store(db) as s:
        trainer = s.trainer(RUN)
        requests = s.stop_requests(RUN)
        decisions = s.decisions(RUN, epoch=4)
        run_row = s.run_row(RUN)
    assert trainer is not None and trainer.state in ("stopped", "killed"), trainer
    assert len(requests) == 1 and requests[0].epoch == 4
    assert (requests[0].result or "").startswith(("terminated", "killed")), requests
    stop = next(d.decision for d in decisions if d.decision.criterion == "green_background_by_epoch_4")
    assert stop.outcome == "fail" and stop.action == "stop" and stop.value == 0.0 and stop.stops
    assert run_row is not None and run_row.status == "stopped" and run_row.verdict == "failure"
    # Nothing was written after the stop, and the trainer never reached its last epoch.
    out = tmp_path / "output"
    assert not (out / "e2e_lora.safetensors").exists()
    handled = requests[0].handled_at
    assert handled is not None
    late = [p.name for p in out.iterdir() if p.stat().st_mtime > handled + 0.5]
    assert late == []
    # The whole group is gone: the wrapper and its simtrain child, no orphans.
    assert trainer.pid is not None
    assert not psutil.pid_exists(trainer.pid) or psutil.Process(trainer.pid).status() == psutil.STATUS_ZOMBIE
    assert _leftovers(config) == []
    assert "stop requested at epoch 4" in log


def test_continue_path_runs_to_the_final_file(tmp_path: Path, tiny_model_dir: Path) -> None:
    rc, config = _launch(tmp_path, tiny_model_dir, passing_stop_rule(4), interval=0.5,
                         epochs=CONTINUE_EPOCHS)
    log = (tmp_path / "launch.log").read_text()
    assert rc == 0, log[-3000:]
    with Store(tmp_path / "state" / "state.db") as s:
        trainer = s.trainer(RUN)
        evaluations = s.evaluations(RUN)
        assert s.stop_requests(RUN) == []
        run_row = s.run_row(RUN)
    assert trainer is not None and trainer.state == "exited" and trainer.exit_code == 0
    assert [e.epoch for e in evaluations] == list(range(1, CONTINUE_EPOCHS + 1))
    assert evaluations[-1].path.endswith(os.sep + "e2e_lora.safetensors")
    assert all(e.git_commit for e in evaluations)
    assert run_row is not None and run_row.status == "finished"
    assert _leftovers(config) == []
