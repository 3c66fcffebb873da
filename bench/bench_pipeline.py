"""Warm-pipeline figures, on the tiny model (or --base MODEL), with simtrain LoRA files:

- warm_vs_cold: per-epoch evaluation (swap LoRA, generate, score) on the warm pipeline,
  divided by a cold evaluation: a new Python process that imports, loads the pipeline, loads
  the LoRA, generates and scores, as the old per-epoch scripts did. Same model, prompts,
  seeds and LoRA files. Target: <= 0.2 (warm at least 5x faster).
- rss_growth_mb_per_epoch: process memory over 20 epochs of LoRA swaps (least-squares slope
  after the first epoch, which pays the one-time adapter-layer injection).

Run: .venv/bin/python -m bench.bench_pipeline [--width 128 --steps 4 --prompts 4]
The last line printed is one JSON object with both results.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PROMPT_TEXTS = [
    "pixel art portrait of a woman, pink hair (#ff66cc), gold crown (#ffd700), solid green background (#00ff00)",
    "pixel art portrait of a man, brown hair (#8b4513), blue shirt (#1e90ff), solid green background (#00ff00)",
    "pixel art portrait of a girl, purple hair (#9932cc), necklace (#c0c0c0), solid green background (#00ff00)",
    "pixel art portrait of a robot, grey metal (#808080), red eyes (#ff0000), solid green background (#00ff00)",
]


def _prompts(n: int, width: int, steps: int) -> list[dict[str, Any]]:
    return [
        {"text": PROMPT_TEXTS[i % len(PROMPT_TEXTS)], "negative": "", "seed": 1234 + i,
         "width": width, "height": width, "steps": steps, "cfg": 7.5}
        for i in range(n)
    ]


def _as_sample_prompts(raw: Sequence[dict[str, Any]]) -> list[Any]:
    from watcher.config import SamplePrompt

    return [SamplePrompt(**p) for p in raw]


def scorer() -> tuple[str, Callable[[Any, str, int], Any]]:
    """The evaluators' image score; the grid recovery alone if score_image is not there yet."""
    import evaluators

    if hasattr(evaluators, "score_image"):
        return "evaluators.score_image", evaluators.score_image
    from evaluators.grid import recover_grid

    return "evaluators.grid.recover_grid (score_image not available)", lambda rgb, _p, cells: recover_grid(rgb, cells)


def evaluate_epoch(pipe: Any, lora: Path, prompts: list[Any], batch_size: int, cells: int) -> dict[str, float]:
    """One epoch's evaluation on a loaded pipeline: swap, generate, score. Seconds per stage."""
    import numpy as np

    _, score = scorer()
    t0 = time.perf_counter()
    pipe.apply_lora(lora)
    t1 = time.perf_counter()
    images = pipe.generate(prompts, batch_size)
    t2 = time.perf_counter()
    for prompt, image in zip(prompts, images, strict=True):
        score(np.asarray(image.convert("RGB")), prompt.text, cells)
    t3 = time.perf_counter()
    return {"lora_s": t1 - t0, "generate_s": t2 - t1, "score_s": t3 - t2, "total_s": t3 - t0}


def _cold_child(spec: dict[str, Any]) -> dict[str, float]:
    """What an old per-epoch script did, in a fresh process: import, load, LoRA, generate, score."""
    t0 = time.perf_counter()
    from watcher.pipeline import SamplePipeline

    pipe = SamplePipeline(spec["base"], device=spec["device"], dtype=spec["dtype"],
                          cpu_threads=spec["cpu_threads"])
    t1 = time.perf_counter()
    pipe.load()
    t2 = time.perf_counter()
    stages = evaluate_epoch(pipe, Path(spec["lora"]), _as_sample_prompts(spec["prompts"]),
                            spec["batch_size"], spec["cells"])
    return {"import_s": t1 - t0, "load_s": t2 - t1, **stages}


def prepare(work: Path, base: str | None, epochs: int) -> tuple[str, list[Path]]:
    """The model (tiny unless base is given) and `epochs` simtrain LoRA files for it."""
    from launcher.simtrain import simulate_training
    from watcher.tinymodel import build_tiny_model

    model = base or str(build_tiny_model(work / "tiny-sd", seed=0))
    files = simulate_training(model, work / "output", "bench", epochs=epochs, interval_s=0.0,
                              network_dim=32, network_alpha=16, write_s=0.0, log=io.StringIO())
    return model, files


def measure_warm_vs_cold(
    base: str | None = None,
    n_prompts: int = 4,
    width: int = 128,
    steps: int = 4,
    batch_size: int = 4,
    warm_epochs: int = 4,
    cold_epochs: int = 2,
    device: str = "auto",
    dtype: str = "auto",
    cells: int = 24,
    cpu_threads: int | None = None,
) -> dict[str, Any]:
    from watcher.pipeline import SamplePipeline

    raw_prompts = _prompts(n_prompts, width, steps)
    prompts = _as_sample_prompts(raw_prompts)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        model, files = prepare(Path(tmp), base, max(warm_epochs, cold_epochs))
        pipe = SamplePipeline(model, device=device, dtype=dtype, cpu_threads=cpu_threads)
        t0 = time.perf_counter()
        pipe.load()
        warm_load_s = time.perf_counter() - t0
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
        warm: list[dict[str, float]] = []
        cold_wall: list[float] = []
        cold_stages: list[dict[str, float]] = []
        # interleaved, so that load from other processes on the machine hits both alike
        for index, lora in enumerate(files):
            if index < warm_epochs:
                warm.append(evaluate_epoch(pipe, lora, prompts, batch_size, cells))
            if index < cold_epochs:
                spec = {"base": model, "lora": str(lora), "prompts": raw_prompts, "device": device,
                        "dtype": dtype, "batch_size": batch_size, "cells": cells,
                        "cpu_threads": cpu_threads}
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "bench.bench_pipeline", "--cold-child",
                                       json.dumps(spec)], capture_output=True, text=True, env=env,
                                      cwd=REPO, timeout=600)
                cold_wall.append(time.perf_counter() - t0)
                if proc.returncode != 0:
                    raise RuntimeError(f"cold child failed: {proc.stderr.strip().splitlines()[-1:]}")
                cold_stages.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        device_used, dtype_used = pipe.device, pipe.dtype
        pipe.release(drop=True)

    warm_mean = statistics.mean(e["total_s"] for e in warm)
    cold_mean = statistics.mean(cold_wall)

    def mean_of(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.mean(r[key] for r in rows), 3)

    return {
        "warm_vs_cold": round(warm_mean / cold_mean, 4),
        "warm_epoch_s": round(warm_mean, 3),
        "warm_first_epoch_s": round(warm[0]["total_s"], 3),
        "warm_stages_s": {k: mean_of(warm, k) for k in ("lora_s", "generate_s", "score_s")},
        "warm_load_once_s": round(warm_load_s, 3),
        "cold_epoch_s": round(cold_mean, 3),
        "cold_stages_s": {k: mean_of(cold_stages, k)
                          for k in ("import_s", "load_s", "lora_s", "generate_s", "score_s")},
        "model": "tiny-sd (random, SD1.5-shaped)" if base is None else base,
        "images_per_epoch": n_prompts, "size_px": width, "steps": steps, "batch_size": batch_size,
        "warm_epochs": warm_epochs, "cold_epochs": cold_epochs,
        "device": device_used, "dtype": dtype_used, "scorer": scorer()[0],
        "cpu_threads": cpu_threads or "torch default",
        "load_average_1m_end": round(os.getloadavg()[0], 2),
    }


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _slope(ys: Sequence[float]) -> float:
    xs = range(len(ys))
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def measure_rss_growth(epochs: int = 20, base: str | None = None, device: str = "auto",
                       width: int = 64, steps: int = 2,
                       cpu_threads: int | None = None) -> dict[str, Any]:
    """RSS (and accelerator memory) after each of `epochs` LoRA swaps with a small render."""
    from watcher.pipeline import SamplePipeline

    prompts = _as_sample_prompts(_prompts(2, width, steps))
    with tempfile.TemporaryDirectory(prefix="bench-rss-") as tmp:
        model, files = prepare(Path(tmp), base, epochs)
        pipe = SamplePipeline(model, device=device, cpu_threads=cpu_threads)
        pipe.load()
        rss, gpu = [], []
        for lora in files:
            pipe.apply_lora(lora)
            pipe.generate(prompts, 2)
            rss.append(_rss_mb())
            gpu.append(pipe.memory_bytes() / 2**20)
        adapters = pipe.adapter_count()
        pipe.release(drop=True)
    after_first = rss[1:] if len(rss) > 2 else rss
    return {
        "rss_growth_mb_per_epoch": round(_slope(after_first), 3),
        "rss_mb_first_last": [round(rss[0], 1), round(rss[-1], 1)],
        "gpu_growth_mb_per_epoch": round(_slope(gpu[1:] if len(gpu) > 2 else gpu), 3),
        "epochs": epochs, "adapters_held_at_end": adapters,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_pipeline")
    parser.add_argument("--cold-child", help=argparse.SUPPRESS)
    parser.add_argument("--base", help="model to use instead of the tiny model")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--rss-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for warm and cold alike (default: torch's)")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cold_child:
        print(json.dumps(_cold_child(json.loads(args.cold_child))))
        return 0
    t0 = time.perf_counter()
    warm = measure_warm_vs_cold(base=args.base, n_prompts=args.prompts, width=args.width,
                                steps=args.steps, batch_size=args.batch_size, device=args.device,
                                dtype=args.dtype, cpu_threads=args.threads)
    print(json.dumps({"warm_vs_cold": warm}), flush=True)
    rss = measure_rss_growth(args.rss_epochs, base=args.base, device=args.device,
                             cpu_threads=args.threads)
    print(json.dumps({"rss": rss}), flush=True)
    print(json.dumps({**warm, **rss, "bench_s": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
