"""The NaN rule end to end with real processes: `launch` starts the daemon and the stand-in
trainer, which writes kohya-format TensorBoard logs and turns its loss NaN in epoch 2; the
daemon reads the event files, alerts, and a `[[criteria]]` rule over `loss_finite` stops the
trainer; `status --json` shows kohya's figures and the health finding."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.e2e import status_json
from watcher.testing import write_trainer_source_config


def _config(root: Path, model: Path) -> Path:
    prompts = root / "prompts.txt"
    prompts.write_text("pixel art portrait, solid green background (#00ff00) --d 1\n")
    simtrain = [sys.executable, "-m", "watcher", "simtrain", "-c", str(root / "config.toml"),
                "--epochs", "8", "--interval", "2", "--nan-at-epoch", "2"]
    return write_trainer_source_config(root, prompts, name="NAN_RUN", epochs=8, tables=f"""
[run.dataset]
num_images = 203  # one step an image: no kohya config, so batch size 1, no accumulation

[model]
base = "{model}"

[training]
logging_dir = "tb"

[trainer]
command = {json.dumps(simtrain)}
cwd = "."
stop_grace_s = 5.0

[[criteria]]
name = "loss_is_a_number"
metric = "loss_finite"
comparison = ">="
threshold = 1
mode = "from"
epoch = 1
action = "stop"
""")


def test_nan_loss_stops_the_trainer(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = _config(tmp_path, tiny_model_dir)
    proc = subprocess.run([sys.executable, "-m", "watcher", "launch", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    db = tmp_path / "state" / "state.db"
    with sqlite3.connect(db) as conn:
        stops = conn.execute("SELECT epoch, reason FROM stop_requests").fetchall()
        (trainer_state,) = conn.execute("SELECT state FROM trainer").fetchone()
        events = [k for (k,) in conn.execute("SELECT kind FROM events")]
        alerts = [json.loads(p)["kind"] for (p,) in conn.execute(
            "SELECT payload_json FROM outbox WHERE channel='alert'")]
    # NaN from the middle of epoch 2; the daemon reads the files every 5 s, so the stop
    # lands in epoch 2 or the next ones (the epoch in training when it was seen)
    assert len(stops) == 1 and 2 <= stops[0][0] <= 5, out[-3000:]
    assert "loss_is_a_number" in stops[0][1] and "loss_finite 0 < 1" in stops[0][1]
    assert trainer_state == "stopped", out[-3000:]
    assert not (tmp_path / "output" / "demo_lora.safetensors").exists()  # never reached the last epoch
    assert "training_loss_nan" in events
    # no alert URLs here, so nothing is queued for delivery; the finding is in the state
    assert alerts == [] or "training_health" in alerts
    # tensorboard layout as kohya's: {logging_dir}/{prefix}{stamp}/network_train/events...
    assert list((tmp_path / "tb").glob("*/network_train/events.out.tfevents.*"))
    training = status_json(config)["training"]
    assert training["source"] == "tensorboard"
    assert training["loss"] is None and training["loss_finite"] is False
    assert training["step"] > 203 + 101 and training["epoch"] >= 2 and training["lr"] > 0
    (nan,) = [h for h in training["health"] if h["kind"] == "loss_nan"]
    assert "is nan at step 305 (epoch 2)" in nan["message"]  # epoch 1 is 203 steps; step 102 of epoch 2
    text = subprocess.run([sys.executable, "-m", "watcher", "status", "--config", str(config)],
                          capture_output=True, text=True, check=True).stdout
    assert "loss NaN" in text and "(tensorboard)" in text
