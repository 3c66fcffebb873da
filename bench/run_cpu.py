"""`make bench`: the CPU benchmarks in one run. Prints a table, then one JSON object as the
last line. Every ratio is measured within this one run, on this machine.

    score_vs_floor           scoring one 512 px image / decoding it + converting it to Lab
    warm_vs_cold             warm per-epoch evaluation / cold evaluation in a new process
    detect_latency_p50_s     checkpoint complete -> evaluation started (real daemon)
    idle_cpu_percent         daemon with nothing to do, over 30 s
    rss_growth_mb_per_epoch  daemon memory over 20 epochs of LoRA swaps
    trainer_latency_p50_s    trainer source: last sample PNG complete -> evaluation started
    trainer_daemon_rss_mb    trainer source: the daemon's largest RSS (no model loaded)
    replay_images_per_s      `epochwatch replay` over 40 stand-in images, commits included
    score_peak_rss_mb_cells256  `epochwatch score` of a 512 px image at --cells 256 (the most it accepts)

`--short` runs every measurement with the fewest repetitions that still exercise it (tests/
test_bench_cpu.py runs it inside `make test`, so the benchmark cannot rot unnoticed); its
figures are not comparable with the full run's.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI sets it, before torch loads

from bench.bench_daemon import measure_daemon
from bench.bench_pipeline import measure_warm_vs_cold
from bench.bench_samples import measure_replay, measure_trainer_source
from bench.bench_score import measure_score_vs_floor
from bench.bench_score_memory import measure_score_memory
from watcher.tinymodel import build_tiny_model

KEYS = ("score_vs_floor", "warm_vs_cold", "detect_latency_p50_s", "idle_cpu_percent",
        "rss_growth_mb_per_epoch", "trainer_latency_p50_s", "trainer_daemon_rss_mb",
        "replay_images_per_s", "score_peak_rss_mb_cells256")


def main(short: bool = False) -> dict[str, Any]:
    t0 = time.time()
    figures: dict[str, Any] = {}
    score = measure_score_vs_floor(repeats=2 if short else 30)
    figures["score_vs_floor"] = score["score_vs_floor"]
    # the short form reuses the tiny model measure_daemon caches in bench/out/
    warm = (measure_warm_vs_cold(base=str(build_tiny_model(Path("bench/out/tiny-sd"))), n_prompts=1,
                                 width=64, steps=1, batch_size=1, warm_epochs=1, cold_epochs=1)
            if short else measure_warm_vs_cold())
    figures["warm_vs_cold"] = warm["warm_vs_cold"]
    daemon = measure_daemon(epochs=1, idle_s=0.5) if short else measure_daemon()
    figures.update({k: daemon[k] for k in ("detect_latency_p50_s", "idle_cpu_percent",
                                           "rss_growth_mb_per_epoch")})
    samples = {**measure_trainer_source(epochs=1 if short else 10), **(measure_replay(epochs=2) if short else measure_replay())}
    figures.update({k: samples[k] for k in ("trainer_latency_p50_s", "trainer_daemon_rss_mb",
                                           "replay_images_per_s")})
    memory = measure_score_memory(noise=not short)
    figures["score_peak_rss_mb_cells256"] = memory["score_peak_rss_mb_cells256"]
    details = {"score": score, "score_memory": memory, "warm_vs_cold": warm, "daemon": daemon, "samples": samples}
    print(f"{'figure':<28} {'value':>10}")
    for key in KEYS:
        print(f"{key:<28} {figures[key]:>10}")
    print("details: " + json.dumps(details, default=str))
    figures.update({
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
        "date": dt.date.today().isoformat(),
        "bench_s": round(time.time() - t0, 1),
        **({"short": True} if short else {}),
    })
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main(short="--short" in sys.argv[1:])
