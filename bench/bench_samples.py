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

from bench.bench_daemon import wait_published
from watcher.samples import demo_set
from watcher.store import Store
from watcher.testing import write_trainer_source_config

RUN = "BENCH_SAMPLES"


def _config(root: Path, prompts: Path) -> Path:
    return write_trainer_source_config(root, prompts, name=RUN, epochs=100)


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
            latencies.append(wait_published(db, epoch, RUN) - t_complete)
            rss.append(proc.memory_info().rss / 2**20)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
    return {"trainer_latency_p50_s": round(statistics.median(latencies), 3),
            "trainer_latency_max_s": round(max(latencies), 3),
            "trainer_daemon_rss_mb": round(max(rss), 1), "epochs": epochs}


def measure_replay(epochs: int = len(demo_set.DEMO_STORY)) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="epochwatch-bench-replay-"))
    images = demo_set.build(root / "replay", story=demo_set.DEMO_STORY[:epochs])
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
