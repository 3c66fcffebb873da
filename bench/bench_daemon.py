"""Daemon-level figures on the tiny model, one real `epochwatch watch` process:

- detect_latency_p50_s: a checkpoint becomes complete (renamed into the watched folder, so
  the completion instant is known) -> the daemon records that its evaluation started;
- rss_growth_mb_per_epoch: the daemon's resident memory over 20 epochs of LoRA swaps
  (least-squares slope after a 2-epoch warm-up);
- idle_cpu_percent: the daemon's CPU use over 30 s with nothing to do.

Run: .venv/bin/python -m bench.bench_daemon
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from watcher.store import Store
from watcher.testing import run_table

RUN = "BENCH_DAEMON"


def _config(root: Path, model: Path) -> Path:
    config = root / "config.toml"
    config.write_text(f"""
{run_table(RUN, "bench", 100)}

[model]
base = "{model}"
device = "cpu"
dtype = "float32"
steps = 2
width = 128
height = 128
batch_size = 2

[sampling]
seeds = [7]
prompts = [ {{ text = "pixel art portrait, pink hair (#ff66cc), solid green background (#00ff00)" }},
            {{ text = "pixel art portrait, blue shirt (#1e90ff), solid green background (#00ff00)" }} ]

[results]
repo = "results"
dir = "runs"

[[criteria]]
name = "none"
metric = "style_quality"
comparison = ">="
threshold = 0
mode = "from"
epoch = 1
action = "none"
""")
    return config


def _write_epoch(model: Path, out_dir: Path, epoch: int) -> float:
    """Write a kohya LoRA for `epoch` beside the folder, rename it in; return the instant."""
    from safetensors.torch import save_file

    from launcher.kohya_lora import lora_target_names, make_lora_state_dict

    tensors = make_lora_state_dict(lora_target_names(model), rank=4, alpha=2, seed=epoch, scale=0.5)
    tmp = out_dir.parent / f"bench-{epoch:06d}.safetensors"
    save_file(tensors, str(tmp), metadata={"ss_epoch": str(epoch), "ss_output_name": "bench"})
    final = out_dir / f"bench-{epoch:06d}.safetensors"
    os.rename(tmp, final)
    return time.time()


def wait_published(db: Path, epoch: int, run: str = RUN, timeout: float = 120) -> float:
    """Until the epoch is committed and the daemon is back to idle (the next file then
    measures detection latency, not the queueing behind the previous epoch's publishing);
    returns the time its evaluation started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if db.exists():
            with Store(db) as s:
                done = any(e.epoch == epoch and e.git_commit for e in s.evaluations(run))
                if done and s.daemon_state(run) == "idle":
                    ck = next(c for c in s.checkpoints(run) if c.epoch == epoch)
                    row = s.conn.execute("SELECT started_at FROM checkpoints WHERE id=?", (ck.id,))
                    return float(row.fetchone()[0])
        time.sleep(0.05)
    raise TimeoutError(f"epoch {epoch} was never published")


def measure_daemon(epochs: int = 20, idle_s: float = 30.0) -> dict[str, Any]:
    from watcher.tinymodel import build_tiny_model

    root = Path(tempfile.mkdtemp(prefix="epochwatch-bench-"))
    model = build_tiny_model(Path("bench/out/tiny-sd"))
    config = _config(root, model.resolve())
    out_dir = root / "output"
    out_dir.mkdir()
    db = root / "state" / "state.db"
    log = open(root / "daemon.log", "ab")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "watcher", "watch", "--config", str(config)],
                              stdout=log, stderr=subprocess.STDOUT)
    proc = psutil.Process(daemon.pid)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:  # ready = daemon row says idle
            if daemon.poll() is not None:
                raise RuntimeError(f"daemon exited: {(root / 'daemon.log').read_text()[-500:]}")
            if db.exists():
                with Store(db) as s:
                    if s.daemon_state(RUN) == "idle":
                        break
            time.sleep(0.1)
        latencies, rss = [], []
        for epoch in range(1, epochs + 1):
            t_complete = _write_epoch(model, out_dir, epoch)
            wait_published(db, epoch)
            with Store(db) as s:
                ck = next(c for c in s.checkpoints(RUN) if c.epoch == epoch)
                started = s.conn.execute("SELECT started_at FROM checkpoints WHERE id=?", (ck.id,)).fetchone()[0]
            latencies.append(started - t_complete)
            rss.append(proc.memory_info().rss / 2**20)
        time.sleep(min(3.0, idle_s))  # let the last commit and outbox settle
        cpu0 = proc.cpu_times()
        t0 = time.time()
        time.sleep(idle_s)
        cpu1 = proc.cpu_times()
        idle_cpu = 100 * ((cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)) / (time.time() - t0)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
    warm = np.arange(2, epochs)
    slope = float(np.polyfit(warm, np.array(rss[2:]), 1)[0]) if epochs > 4 else float("nan")
    return {
        "detect_latency_p50_s": round(statistics.median(latencies), 3),
        "detect_latency_max_s": round(max(latencies), 3),
        "rss_growth_mb_per_epoch": round(slope, 2),
        "rss_mb_first_last": [round(rss[0], 1), round(rss[-1], 1)],
        "idle_cpu_percent": round(idle_cpu, 3),
        "epochs": epochs,
    }


if __name__ == "__main__":
    print(json.dumps(measure_daemon()))
