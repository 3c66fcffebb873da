"""Figures for the trainer as the sample source, and for `replay`:

- trainer_latency_p50_s: an epoch's last sample PNG is complete (PIL closed the file it
  wrote in place, in `{output_dir}/sample/`) -> the daemon records that the epoch's
  evaluation started (one real `epochwatch watch` process, `[sampling] source = "trainer"`);
- trainer_daemon_rss_mb: that daemon's largest resident memory over the epochs;
- replay_images_per_s: `epochwatch replay` over the demo's 10 x 4 stand-in images (512 px),
  everything included: scoring, results folder, git commits, report.

Run: .venv/bin/python -m bench.bench_samples
"""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from watcher.samples import demo_set
from watcher.store import Store

RUN = "BENCH_SAMPLES"


def _config(root: Path, prompts: Path) -> Path:
    config = root / "config.toml"
    config.write_text(f"""
[run]
name = "{RUN}"
output_dir = "output"
output_name = "demo_lora"
max_train_epochs = 100
state_dir = "state"

[sampling]
source = "trainer"
prompts_file = "{prompts}"

[results]
repo = "results"
dir = "runs"
""")
    return config


def _wait(db: Path, epoch: int, timeout: float = 120) -> float:
    """Until the epoch is committed and the daemon idle; returns its evaluation start."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if db.exists():
            with Store(db) as s:
                done = any(e.epoch == epoch and e.git_commit for e in s.evaluations(RUN))
                if done and s.daemon_state(RUN) == "idle":
                    ck = next(c for c in s.checkpoints(RUN) if c.epoch == epoch)
                    row = s.conn.execute("SELECT started_at FROM checkpoints WHERE id=?", (ck.id,))
                    return float(row.fetchone()[0])
        time.sleep(0.05)
    raise TimeoutError(f"epoch {epoch} was never published")


def measure_trainer_source(epochs: int = 10) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="epochwatch-bench-samples-"))
    config = _config(root, demo_set.write_prompts(root / "prompts.txt"))
    sample = root / "output" / "sample"
    sample.mkdir(parents=True)
    db = root / "state" / "state.db"
    log = open(root / "daemon.log", "ab")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "watcher", "watch", "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(daemon.pid)
    latencies, rss = [], []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if db.exists():
                with Store(db) as s:
                    if s.daemon_state(RUN) == "idle":
                        break
            time.sleep(0.1)
        for epoch in range(1, epochs + 1):
            look = demo_set.DEMO_STORY[(epoch - 1) % len(demo_set.DEMO_STORY)]
            demo_set.write_epoch(sample, epoch, look, layout="kohya")  # PIL writes in place
            t_complete = time.time()
            latencies.append(_wait(db, epoch) - t_complete)
            rss.append(proc.memory_info().rss / 2**20)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
    return {"trainer_latency_p50_s": round(statistics.median(latencies), 3),
            "trainer_latency_max_s": round(max(latencies), 3),
            "trainer_daemon_rss_mb": round(max(rss), 1), "epochs": epochs}


def measure_replay() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="epochwatch-bench-replay-"))
    images = demo_set.build(root / "replay")
    config = _config(root, demo_set.prompts_file(images))
    n = sum(1 for _ in images.glob("epoch_*/*.png"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "watcher", "replay", "--config", str(config),
                    "--images", str(images)], check=True, capture_output=True)
    seconds = time.perf_counter() - t0
    return {"replay_images_per_s": round(n / seconds, 2), "replay_images": n,
            "replay_s": round(seconds, 1)}


if __name__ == "__main__":
    print(json.dumps({**measure_trainer_source(), **measure_replay()}))
