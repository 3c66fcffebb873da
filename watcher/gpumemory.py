"""Does the sampling pipeline fit beside the trainer? Checked before it comes to the GPU.

The daemon shares the GPU with kohya: a pipeline loaded into memory the trainer needs would
run the trainer out of memory, the one failure epochwatch must never cause. So before the
pipeline is loaded onto a CUDA device (and before each evaluation that brings an offloaded
pipeline back), the free memory (`torch.cuda.mem_get_info`) is compared with what the
pipeline needs: its weights at the dtype it runs in (counted from the safetensors headers,
no tensor read), the CLIP judge's when one is configured, plus a margin for a batch's
activations. When it does not fit, the config's `model.on_gpu_memory_short` says what
happens (see the daemon): "refuse" (exit 2, one line), "offload" (keep the pipeline off the
GPU; each evaluation waits until it fits) or "trainer_samples" (judge the trainer's own
samples; no pipeline at all).
"""

from __future__ import annotations

import math
from pathlib import Path

from watcher.epoch.settle import NotReady, Rejected, read_header

GIB = 2**30
# Activations of a 512 px batch of 8 in float16, the VAE decode and the allocator's slack
# (an SD 1.5 pipeline at batch 8 peaks about 1.3 GiB above its weights).
MARGIN_BYTES = int(1.5 * GIB)
BYTES_PER_PARAM = {"float16": 2, "bfloat16": 2, "float32": 4}


class GpuMemoryShort(Exception):
    """The pipeline does not fit in the free GPU memory; the message is one line."""


def weights_bytes(base: str | Path, dtype: str) -> int | None:
    """The pipeline's weights at `dtype`, from the safetensors headers of a local model (a
    diffusers folder or one file); None when unknown (a hub id, pickled weights)."""
    path = Path(base)
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors")) if path.is_dir() else []
    if not files or any(f.suffix != ".safetensors" for f in files):
        return None
    try:
        params = sum(math.prod(shape) for f in files for _, shape, _ in read_header(f).tensors.values())
    except (NotReady, Rejected, OSError):
        return None
    return params * BYTES_PER_PARAM.get(dtype, 4)


def shortfall(base: str | Path, device: str, dtype: str, clip_model: str | Path | None = None) -> str | None:
    """One line when the pipeline (and the CLIP judge, with [evaluation] clip_model: it runs
    on the same device, in float32) would not fit in the GPU's free memory now; None when it
    fits, the device is not CUDA, or the pipeline's need cannot be estimated."""
    if not str(device).startswith("cuda"):
        return None
    weights = weights_bytes(base, dtype)
    if weights is None:
        return None
    clip = (weights_bytes(clip_model, "float32") or 0) if clip_model is not None else 0
    import torch

    free, total = torch.cuda.mem_get_info(device)
    needed = weights + clip + MARGIN_BYTES
    if free >= needed:
        return None
    judge = f" + {clip / GIB:.1f} GiB of the CLIP judge" if clip else ""
    return (f"GPU memory short on {device}: {free / GIB:.1f} GiB free of {total / GIB:.1f} GiB, "
            f"the pipeline needs about {needed / GIB:.1f} GiB ({weights / GIB:.1f} GiB of "
            f"{dtype} weights{judge} + {MARGIN_BYTES / GIB:.1f} GiB margin)")
