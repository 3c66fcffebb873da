"""The trainer source end to end with real processes: the daemon judges kohya's own sample
PNGs (written in place, named as sd-scripts names them), never imports torch, and `launch`
stops a trainer whose samples fail the epoch-4 rule."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.test_replay import STOP_STORY, git_log
from watcher.samples import demo_set
from watcher.samples.names import sample_name
from watcher.testing import write_trainer_source_config

SUBJECTS = demo_set.DEMO_SUBJECTS[:2]

TRAINER = """
import sys, time
from watcher.samples import demo_set
from tests.test_replay import STOP_STORY
out, interval = sys.argv[1], float(sys.argv[2])
for epoch, look in enumerate(STOP_STORY, 1):
    # "training"; after epoch 4 (the stop rule's epoch) an epoch takes 60 s, so a loaded
    # machine cannot let the stand-in finish before the daemon has judged epoch 4
    time.sleep(interval if epoch <= 4 else 60)
    demo_set.write_epoch(out, epoch, look, subjects=demo_set.DEMO_SUBJECTS[:2], layout="kohya")
    print(f"epoch {epoch} sampled", flush=True)
"""


def write_config(root: Path, trainer: list[str] | None = None) -> Path:
    prompts = demo_set.write_prompts(root / "prompts.txt", SUBJECTS)
    command = ", ".join(json.dumps(a) for a in trainer or [])
    return write_trainer_source_config(
        root, prompts, name="TRAINER_SAMPLES", run="expected_epoch_minutes = 1.0",
        sampling="set_timeout_s = 30",
        tables=f'[trainer]\ncommand = [{command}]\ncwd = "."\nstop_grace_s = 5.0\n\n'
               "[daemon]\nrescan_interval_s = 0.5\nsettle_interval_s = 0.1\n")


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_watch_once_judges_samples_without_torch(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    sample = tmp_path / "output" / "sample"
    for epoch in (1, 2, 3):
        demo_set.write_epoch(sample, epoch, STOP_STORY[epoch + 3], subjects=SUBJECTS, layout="kohya")
    (sample / sample_name("other_run", 1, 0, "20261201100000", 1)).write_bytes(b"x")
    (sample / "demo_lora_000500_00_20261201100000_1.png").write_bytes(b"x")
    extra = sample / sample_name("demo_lora", 2, 5, "20261201100000", 1)  # a real PNG, idx 5
    extra.write_bytes(next(sample.glob("demo_lora_e000002_00_*.png")).read_bytes())
    (sample / sample_name("demo_lora", 3, 1, "20261201100000", 9)).write_bytes(b"\xff\xd8 JPEG")
    code = ("import json, sys, psutil\n"
            "from watcher.cli import main\n"
            f"rc = main(['watch', '--once', '--config', {str(config)!r}])\n"
            "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
            "print(json.dumps({'rc': rc, 'heavy': heavy, "
            "'rss_mb': psutil.Process().memory_info().rss / 2**20}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0 and result["heavy"] == []
    assert result["rss_mb"] < 300
    db = tmp_path / "state" / "state.db"
    assert query(db, "SELECT epoch FROM evaluations ORDER BY epoch") == [(1,), (2,), (3,)]
    rates = [json.loads(m)["aggregate"]["background_match_rate"]
             for (m,) in query(db, "SELECT metrics_json FROM evaluations ORDER BY epoch")]
    assert rates == [1.0, 1.0, 0.0]  # STOP_STORY epochs 5, 6, 7: green, green, pink
    refused = dict(sorted((Path(p).name, r) for p, r in query(db, "SELECT path, reason FROM rejected_files")))
    assert refused == {
        sample_name("other_run", 1, 0, "20261201100000", 1):
            "belongs to another run (output_name 'other_run', this run's is 'demo_lora')",
        "demo_lora_000500_00_20261201100000_1.png":
            "is a step-based sample (step 500), but epochs are expected: set "
            "sample_every_n_epochs, not sample_every_n_steps",
        sample_name("demo_lora", 2, 5, "20261201100000", 1):
            "more images than prompts: prompt idx 5, the prompt file has 2 prompts",
        sample_name("demo_lora", 3, 1, "20261201100000", 9): "not a PNG (bad signature)",
    }  # each once, named by the path beside it
    assert len([c for c in git_log(tmp_path / "results") if " epoch " in c]) == 3


def test_launch_stops_the_trainer_on_its_own_samples(tmp_path: Path) -> None:
    script = tmp_path / "sampler.py"
    script.write_text(TRAINER)
    config = write_config(tmp_path, [sys.executable, str(script), str(tmp_path / "output" / "sample"), "1.5"])
    proc = subprocess.run([sys.executable, "-m", "watcher", "launch", "--config", str(config)],
                          capture_output=True, text=True, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    db = tmp_path / "state" / "state.db"
    assert query(db, "SELECT epoch FROM stop_requests") == [(4,)], out[-3000:]
    (state,) = query(db, "SELECT state FROM trainer")
    assert state[0] == "stopped", out[-3000:]
    epochs = [e for (e,) in query(db, "SELECT epoch FROM evaluations ORDER BY epoch")]
    assert epochs[:4] == [1, 2, 3, 4] and max(epochs) < 10  # stopped well before the end
    log = (tmp_path / "logs" / "trainer.log").read_text()
    assert "epoch 4 sampled" in log and "epoch 10 sampled" not in log
    (status,) = query(db, "SELECT status FROM runs")
    assert status[0] == "stopped"
