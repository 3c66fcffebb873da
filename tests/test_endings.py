"""Honest endings: a stop decided after the trainer had finished is said so (launcher output,
report.md's run status, the run's status); epochs judged after a stop are marked; "stable
since" names a relapse; Ctrl-C during `demo` exits 130 naming the last epoch reached.
Real processes: the launcher, the daemon, the stand-in trainers; SIGINT to the demo."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.test_criteria import run as series
from tests.test_replay import STOP_STORY
from watcher.epoch.decide import decide_all
from watcher.rules import PLAN_RULES
from watcher.samples import demo_set
from watcher.testing import write_trainer_source_config

REPO = Path(__file__).resolve().parents[1]
RUN = "LATE_STOP"
SUBJECTS = demo_set.DEMO_SUBJECTS[:2]  # both pink until epoch 4 in STOP_STORY


def test_stable_since_names_the_relapse() -> None:
    decisions = decide_all(PLAN_RULES, series([0.0, 0.25, 0.75, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]))
    at10 = next(d for d in decisions[10] if d.criterion == "background_oscillation")
    assert at10.outcome == "pass"
    assert "stable since epoch 7 (after a relapse at epoch(s) 6)" in at10.message


def test_stop_decided_after_the_trainer_finished_is_told_as_late(tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    for epoch, look in enumerate(STOP_STORY[:5], 1):  # pink until epoch 4: the plan's rule stops
        demo_set.write_epoch(staged, epoch, look, layout="kohya", subjects=SUBJECTS)
    sample = tmp_path / "output" / "sample"
    copy = (f"import shutil; shutil.copytree({str(staged)!r}, {str(sample)!r}, "
            "dirs_exist_ok=True)")  # the whole run's samples at once, then exit 0
    config = write_trainer_source_config(
        tmp_path, demo_set.write_prompts(tmp_path / "prompts.txt", SUBJECTS), name=RUN, epochs=5,
        sampling="review_epochs = []",
        tables=f"[trainer]\ncommand = {json.dumps([sys.executable, '-c', copy])}\n")
    proc = subprocess.run([sys.executable, "-m", "watcher", "launch", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-2000:]
    assert "the stop came too late: stop decided at epoch 4; the trainer had already finished at epoch 5" in out
    assert "epoch  4: " in out and "STOP" in out.split("epoch  4: ")[1].splitlines()[0]
    for epoch in (5,):
        line = out.split(f"epoch {epoch:>2}: ")[1].splitlines()[0]
        assert line.endswith("(after the stop at epoch 4)"), line
    report = (tmp_path / "results" / "runs" / RUN / "report.md").read_text()
    assert ("run status: finished (stop decided at epoch 4; the trainer had already finished "
            "at epoch 5)") in report
    status = subprocess.run([sys.executable, "-m", "watcher", "status", "--config", str(config),
                             "--json"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert json.loads(status.stdout)["status"] == "finished"


def test_ctrl_c_during_demo_exits_130_naming_the_last_epoch(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the whole foreground process group: the demo and its daemon
    demo = subprocess.Popen([sys.executable, "-m", "watcher", "demo", "--workdir", str(tmp_path)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert demo.stdout is not None
    seen = []
    deadline = time.time() + 240
    for line in demo.stdout:  # wait until the trainer runs
        seen.append(line)
        if line.startswith("trainer: pid ") or time.time() > deadline:
            break
    time.sleep(1.0)
    os.killpg(demo.pid, signal.SIGINT)
    rest, err = demo.communicate(timeout=120)
    out = "".join(seen) + rest
    assert demo.returncode == 130, out + err
    last = err.strip().splitlines()[-1]
    assert last.startswith("epochwatch demo: interrupted after ") and last.endswith(" of 10 epochs"), err
    reached = int(last.split("after ")[1].split()[0])
    assert reached == len(list((tmp_path / "output").glob("demo_lora-*.safetensors")))
    assert "epoch None" not in out
    assert "stop requested: launcher received SIGINT" in out
    assert "restarting" not in out  # the daemon Ctrl-C reached stays stopped


def test_ctrl_c_stops_watch_with_130_and_sigterm_with_0(tmp_path: Path) -> None:
    config = write_trainer_source_config(tmp_path, demo_set.write_prompts(tmp_path / "prompts.txt"),
                                         name="WATCH_SIGNALS")
    (tmp_path / "output" / "sample").mkdir(parents=True)
    lock = tmp_path / "state" / "WATCH_SIGNALS.daemon.lock"
    for sig, rc in ((signal.SIGINT, 130), (signal.SIGTERM, 0)):  # systemd stops with SIGTERM
        daemon = subprocess.Popen([sys.executable, "-m", "watcher", "watch", "--config", str(config)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not (lock.exists() and lock.read_text().strip() == str(daemon.pid)):
            assert time.time() < deadline and daemon.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)  # past start-up, into the loop
        daemon.send_signal(sig)
        _, err = daemon.communicate(timeout=60)
        assert daemon.returncode == rc, err
        if sig == signal.SIGINT:
            assert err.strip().splitlines()[-1] == "epochwatch watch: interrupted after 0 of 10 epochs"
