"""A CPU check of `make bench-gpu`'s model at its real size, for a machine with no GPU.

The smoke run (`bench.run_gpu --smoke`) exercises the benchmark's code on tiny shapes. This
check builds the SD 1.5-sized random model itself (859,520,964 UNet parameters), writes the
two rank-32 kohya LoRA files, and runs the daemon's path on it at a small resolution: load,
apply the epoch-1 LoRA, render, swap to epoch 2 (the images must change), the bare
denoising loop, a hotswap swap as the compile phase does it, and the same render in fp16 so
overflow in the random weights (black or NaN images on a GPU) would show. It measures
nothing about GPUs: its timings are CPU timings and only say the path works.

    .venv/bin/python -m bench.gpu.full_size_check            # 64 px, 4 steps; fp16 20 steps
    .venv/bin/python -m bench.gpu.full_size_check --size 128 --fp16-steps 0

Prints one line per stage and a JSON object as its last line. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def _pixels(images: list[Any]) -> list[Any]:
    import numpy as np

    return [np.asarray(image.convert("RGB")) for image in images]


def check(work: Path, size: int, steps: int, fp16_steps: int, shapes: str = "sd15") -> dict[str, Any]:
    import numpy as np

    from bench.gpu import compile_phase
    from bench.gpu.measure import images_finite, unet_only
    from bench.gpu.sd15 import SHAPES, build_model, parameter_counts, write_loras
    from bench.run_gpu import PROMPTS_FILE, load_prompts
    from watcher.pipeline import SamplePipeline

    out: dict[str, Any] = {"shapes": shapes, "size_px": size, "steps": steps}

    def stage(name: str, **values: Any) -> None:
        out.update(values)
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()), flush=True)

    t0 = time.perf_counter()
    model_dir = build_model(work / "model", SHAPES[shapes], device="cpu")
    stage("build", build_s=round(time.perf_counter() - t0, 1), parameters=parameter_counts(model_dir))
    loras = write_loras(model_dir, work / "loras")
    stage("loras", lora_file_mib=round(loras[0].stat().st_size / 2**20, 2))
    prompts = [dataclasses.replace(p, width=size, height=size, steps=steps)
               for p in load_prompts(PROMPTS_FILE, 2, smoke=False)]

    sp = SamplePipeline(str(model_dir), device="cpu", dtype="float32", scheduler="dpmsolver++")
    t0 = time.perf_counter()
    sp.load()
    sp.apply_lora(loras[0])
    first = sp.generate(prompts, len(prompts))
    sp.apply_lora(loras[1])
    second = sp.generate(prompts, len(prompts))
    changed = any(not np.array_equal(a, b) for a, b in zip(_pixels(first), _pixels(second), strict=True))
    stage("daemon path fp32", seconds=round(time.perf_counter() - t0, 1),
          images_ok=images_finite(first + second), lora_swap_changed_images=changed,
          lora_epoch=sp.lora_info.get("epoch"))
    stage("bare loop fp32", unet_only_s=round(unet_only(sp, prompts, 1)[0], 2))
    sp.release(drop=True)

    sp = SamplePipeline(str(model_dir), device="cpu", dtype="float32", scheduler="dpmsolver++")
    sp.load()
    sp.pipe.enable_lora_hotswap(target_rank=32)
    sp.apply_lora(loras[0])
    before = sp.generate(prompts[:1], 1)
    t0 = time.perf_counter()
    compile_phase.hotswap_lora(sp, loras[1])
    swap_s = time.perf_counter() - t0
    after = sp.generate(prompts[:1], 1)
    stage("hotswap fp32", hotswap_s=round(swap_s, 3),
          hotswap_changed_images=not np.array_equal(_pixels(before)[0], _pixels(after)[0]))
    sp.release(drop=True)

    if fp16_steps:
        sp = SamplePipeline(str(model_dir), device="cpu", dtype="float32", scheduler="dpmsolver++")
        sp.dtype = "float16"  # refused on CPU for the daemon (slow); here only numerics count
        sp.load()
        sp.apply_lora(loras[0])
        t0 = time.perf_counter()
        images = sp.generate([dataclasses.replace(prompts[0], steps=fp16_steps)], 1)
        stage("fp16 numerics", fp16_steps=fp16_steps, fp16_seconds=round(time.perf_counter() - t0, 1),
              fp16_images_ok=images_finite(images), fp16_pixel_std=round(float(_pixels(images)[0].std()), 1))
        sp.release(drop=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu.full_size_check",
                                description=(__doc__ or "").splitlines()[0])
    p.add_argument("--size", type=int, default=64, help="image size in px (multiple of 8)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--fp16-steps", type=int, default=20, help="0 skips the fp16 render")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--shapes", choices=("sd15", "smoke"), default="sd15",
                   help="smoke: the tiny shapes, a quick check of this script itself")
    args = p.parse_args(argv)
    if args.size % 8 or args.size < 8:
        p.error("--size must be a positive multiple of 8")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-full-size-") as tmp:
        result = check(Path(tmp), args.size, args.steps, args.fp16_steps, args.shapes)
    ok = all(result.get(k, True) for k in ("images_ok", "lora_swap_changed_images",
                                            "hotswap_changed_images", "fp16_images_ok"))
    print(json.dumps({"ok": ok, **result}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
