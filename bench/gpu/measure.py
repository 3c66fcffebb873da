"""Timings on the daemon's warm `SamplePipeline`: one epoch's evaluation, the bare denoising
loop, one image at a time, the pause a kohya in-training sampler costs, the optimisation
variants and the offload round trip.

Every timing synchronises the accelerator before the clock is read. torch is imported inside
functions only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

GIB = 2**30


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed(device: str, fn: Callable[[], Any]) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: str) -> float | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return round(torch.cuda.max_memory_allocated(device) / GIB, 3)


def images_finite(images: Sequence[Any]) -> bool:
    """False when an image came out all black, the mark of NaNs in fp16 (diffusers turns
    them into zeros)."""
    import numpy as np

    return all(np.asarray(img.convert("RGB")).any() for img in images)


def evaluate_epoch(sp: Any, lora: Path, prompts: Sequence[Any], batch_size: int,
                   cells: int = 24, score: bool = True) -> dict[str, Any]:
    """What the daemon does per epoch on its warm pipeline: swap the LoRA in, render the
    prompts in batches, score every image with the pure evaluators."""
    import numpy as np

    from evaluators import score_image

    swap_s, _ = timed(sp.device, lambda: sp.apply_lora(lora))
    generate_s, images = timed(sp.device, lambda: sp.generate(prompts, batch_size))
    t0 = time.perf_counter()
    if score:
        for prompt, image in zip(prompts, images, strict=True):
            score_image(np.asarray(image.convert("RGB")), prompt.text, cells)
    score_s = time.perf_counter() - t0
    return {"swap_s": swap_s, "generate_s": generate_s, "score_s": score_s,
            "total_s": swap_s + generate_s + score_s, "images": images}


def median_of(rows: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(r[key] for r in rows))


def unet_only(sp: Any, prompts: Sequence[Any], repeats: int = 1) -> list[float]:
    """The generation's denoising loop with nothing around it: same UNet (LoRA applied),
    scheduler, batch, steps and CFG as `generate`, but text embeddings computed beforehand
    and no VAE decode or image conversion. Seconds per run."""
    import torch

    pipe, device = sp.pipe, sp.device
    p0 = prompts[0]
    steps, cfg = int(p0.steps), float(p0.cfg)
    unet = pipe.unet
    with torch.inference_mode():
        cond, uncond = pipe.encode_prompt([p.text for p in prompts], device, 1, True,
                                          negative_prompt=[p.negative or "" for p in prompts])
        context = torch.cat([uncond, cond])
        shape = (len(prompts), unet.config.in_channels, int(p0.height) // pipe.vae_scale_factor,
                 int(p0.width) // pipe.vae_scale_factor)
        start = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(0)).to(device, unet.dtype)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)

    def loop() -> None:
        with torch.inference_mode():
            scheduler.set_timesteps(steps, device=device)
            latents = start * scheduler.init_noise_sigma
            for t in scheduler.timesteps:
                model_in = scheduler.scale_model_input(torch.cat([latents, latents]), t)
                noise = unet(model_in, t, encoder_hidden_states=context, return_dict=False)[0]
                uncond_noise, cond_noise = noise.chunk(2)
                noise = uncond_noise + cfg * (cond_noise - uncond_noise)
                latents = scheduler.step(noise, t, latents, return_dict=False)[0]

    return [timed(device, loop)[0] for _ in range(repeats)]


def kohya_pause_extras(sp: Any) -> dict[str, float]:
    """What kohya's in-training sampler does around its renders, timed on our components:
    build a scheduler and a pipeline object from the already-loaded modules, bring the VAE
    from the CPU (cache_latents = true keeps it there while training) and back, and empty
    the CUDA cache afterwards. Its renders themselves are timed as `sequential`."""
    import torch
    from diffusers import StableDiffusionPipeline

    from watcher.pipeline import make_scheduler

    pipe, device = sp.pipe, sp.device

    def build() -> Any:
        return StableDiffusionPipeline(
            vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
            scheduler=make_scheduler("euler_a", pipe.scheduler.config), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)

    build_s, built = timed(device, build)
    del built
    vae_out_s, _ = timed(device, lambda: pipe.vae.to("cpu"))
    vae_in_s, _ = timed(device, lambda: pipe.vae.to(device))

    def clean() -> None:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    clean_s, _ = timed(device, clean)
    return {"pipeline_build_s": build_s, "vae_to_gpu_and_back_s": vae_out_s + vae_in_s,
            "empty_cache_s": clean_s, "total_s": build_s + vae_out_s + vae_in_s + clean_s}


# -- optimisation variants: each is a context manager that changes the warm pipeline and
#    restores it on exit -------------------------------------------------------------------
@contextmanager
def baseline(pipe: Any) -> Iterator[None]:
    """The pipeline as the daemon runs it, timed the same way as the variants beside it."""
    yield


@contextmanager
def sdpa_off(pipe: Any) -> Iterator[None]:
    """The pre-SDPA attention (explicit softmax(QK^T)V): "slower" here means SDPA pays."""
    from diffusers.models.attention_processor import AttnProcessor

    saved = {m: m.attn_processors for m in (pipe.unet, pipe.vae)}
    for module in saved:
        module.set_attn_processor(AttnProcessor())
    try:
        yield
    finally:
        for module, processors in saved.items():
            module.set_attn_processor(processors)


@contextmanager
def channels_last(pipe: Any) -> Iterator[None]:
    import torch

    for module in (pipe.unet, pipe.vae):
        module.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        for module in (pipe.unet, pipe.vae):
            module.to(memory_format=torch.contiguous_format)


@contextmanager
def _vae_mode(pipe: Any, mode: str) -> Iterator[None]:
    """The VAE's enable_<mode>() for the block, disable_<mode>() after (slicing, tiling)."""
    getattr(pipe.vae, f"enable_{mode}")()
    try:
        yield
    finally:
        getattr(pipe.vae, f"disable_{mode}")()


def vae_slicing(pipe: Any) -> AbstractContextManager[None]:
    return _vae_mode(pipe, "slicing")


def vae_tiling(pipe: Any) -> AbstractContextManager[None]:
    return _vae_mode(pipe, "tiling")


@contextmanager
def cudnn_benchmark(pipe: Any) -> Iterator[None]:
    import torch

    saved = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = saved


@contextmanager
def fused_lora(pipe: Any) -> Iterator[float]:
    """The LoRA merged into the base weights (no extra matmuls per step); yields the fuse
    time. Unfused on exit, so the adapter can be swapped again."""
    t0 = time.perf_counter()
    pipe.fuse_lora(lora_scale=1.0)
    fuse_s = time.perf_counter() - t0
    try:
        yield fuse_s
    finally:
        pipe.unfuse_lora()


VARIANTS: dict[str, Callable[[Any], Any]] = {
    "baseline": baseline,
    "sdpa_off": sdpa_off,
    "channels_last": channels_last,
    "vae_slicing": vae_slicing,
    "vae_tiling": vae_tiling,
    "cudnn_benchmark": cudnn_benchmark,
    "fused_lora": fused_lora,
}
NOT_ON_CPU = frozenset({"cudnn_benchmark"})


def measure_variant(sp: Any, name: str, prompts: Sequence[Any], batch_size: int,
                    repeats: int) -> dict[str, Any]:
    """Generation time and peak memory with one variant on (one untimed warm-up first)."""
    device = sp.device
    with VARIANTS[name](sp.pipe) as extra:
        sp.generate(prompts, batch_size)
        reset_peak(device)
        times = [timed(device, lambda: sp.generate(prompts, batch_size))[0] for _ in range(repeats)]
        row: dict[str, Any] = {"generate_s": statistics.median(times), "peak_vram_gib": peak_gib(device)}
        if isinstance(extra, float):
            row["setup_s"] = extra
    return row


def offload_round_trip(sp: Any, prompts: Sequence[Any], batch_size: int) -> dict[str, Any]:
    """offload_between_epochs: memory freed by release(), and what bringing it back costs,
    both for the move to host memory and for a drop and reload from disk."""
    device = sp.device
    held = sp.memory_bytes()
    release_s, _ = timed(device, lambda: sp.release())
    after = sp.memory_bytes()
    reload_s, _ = timed(device, sp.load)
    drop_s, _ = timed(device, lambda: sp.release(drop=True))
    disk_reload_s, _ = timed(device, sp.load)  # also re-applies the current LoRA
    check_s, images = timed(device, lambda: sp.generate(prompts, batch_size))
    return {
        "vram_held_gib": round(held / GIB, 3),
        "vram_after_release_gib": round(after / GIB, 3),
        "release_to_host_s": release_s,
        "reload_from_host_s": reload_s,
        "drop_s": drop_s,
        "reload_from_disk_s": disk_reload_s,
        "generate_after_reload_s": check_s,
        "lora_after_reload": sp.lora_info.get("epoch"),
        "images_ok": images_finite(images),
    }
