"""torch.compile on the warm pipeline's UNet, with LoRA hotswap so a new epoch does not
recompile. Runs as a child process (`python -m bench.gpu.compile_phase SPEC.json`) so a slow
or failing compile cannot stall or poison the main benchmark; results are written to the
spec's out_file after every stage, so a child killed at its time limit still reports.

Hotswap: diffusers swaps a UNet LoRA in place (same tensors, no recompile) after
`enable_lora_hotswap(target_rank=...)` was called before the first LoRA was loaded; it cannot
hotswap the text encoder, which is not compiled here and is reloaded the ordinary way.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def hotswap_lora(sp: Any, path: Path) -> None:
    """Replace the epoch LoRA: UNet weights copied in place, text encoder adapter reloaded."""
    from diffusers.utils.peft_utils import delete_adapter_layers
    from safetensors.torch import load_file

    from watcher.pipeline import ADAPTER

    pipe = sp.pipe
    state_dict, alphas = pipe.lora_state_dict(load_file(str(path)))
    pipe.load_lora_into_unet(state_dict, alphas, unet=pipe.unet, adapter_name=ADAPTER,
                             _pipeline=pipe, hotswap=True)
    if any(key.startswith("text_encoder.") for key in state_dict):
        delete_adapter_layers(pipe.text_encoder, ADAPTER)
        pipe.load_lora_into_text_encoder(state_dict, alphas, text_encoder=pipe.text_encoder,
                                         adapter_name=ADAPTER, _pipeline=pipe)
    sp.lora_path = path


def graphs_compiled() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def run(spec: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch

    from bench.gpu.measure import images_finite, timed
    from watcher.config import SamplePrompt
    from watcher.pipeline import SamplePipeline

    if spec.get("cpu_threads"):
        torch.set_num_threads(int(spec["cpu_threads"]))
    out_file = Path(spec["out_file"])
    deadline = time.monotonic() + float(spec.get("time_limit_s", 600))
    result: dict[str, Any] = {"mode": spec["mode"], "backend": spec["backend"], "stage": "start"}

    def save(stage: str) -> None:
        result["stage"] = stage
        out_file.write_text(json.dumps(result), encoding="utf-8")

    prompts = [SamplePrompt(**p) for p in spec["prompts"]]
    batch = int(spec["batch_size"])
    lora_a, lora_b = (Path(p) for p in spec["loras"])
    sp = SamplePipeline(spec["model_dir"], device=spec["device"], dtype=spec["dtype"])
    result["load_s"], _ = timed(sp.device, sp.load)
    sp.pipe.enable_lora_hotswap(target_rank=int(spec["rank"]))
    sp.apply_lora(lora_a)
    sp.generate(prompts, batch)  # warm-up, uncompiled
    result["eager_generate_s"], _ = timed(sp.device, lambda: sp.generate(prompts, batch))
    save("eager")

    options: dict[str, Any] = {"backend": spec["backend"]}
    if spec["backend"] == "inductor":
        options["mode"] = spec["mode"]
    sp.pipe.unet.compile(**options)
    result["first_generate_with_compile_s"], _ = timed(sp.device, lambda: sp.generate(prompts, batch))
    save("compiled")
    times = []
    for _ in range(int(spec.get("repeats", 2))):
        seconds, before_swap = timed(sp.device, lambda: sp.generate(prompts, batch))
        times.append(seconds)
    result["compiled_generate_s"] = statistics.median(times)
    result["speedup_vs_eager"] = result["eager_generate_s"] / result["compiled_generate_s"]
    save("steady")

    graphs = graphs_compiled()
    result["hotswap_s"], _ = timed(sp.device, lambda: hotswap_lora(sp, lora_b))
    result["generate_after_hotswap_s"], after_swap = timed(sp.device, lambda: sp.generate(prompts, batch))
    result["recompiled_after_hotswap"] = graphs_compiled() != graphs
    result["graphs_compiled"] = graphs_compiled()
    result["hotswap_changed_images"] = any(
        not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(before_swap, after_swap, strict=True))
    result["images_ok"] = images_finite(after_swap)
    save("hotswapped")

    # control: the ordinary swap (delete + load, as SamplePipeline.apply_lora does) on the
    # compiled UNet, to show what hotswap avoids; only when time is left
    if time.monotonic() < deadline - float(spec.get("control_needs_s", 60)):
        graphs = graphs_compiled()
        try:
            result["ordinary_swap_s"], _ = timed(sp.device, lambda: sp.apply_lora(lora_a))
            result["generate_after_ordinary_swap_s"], _ = timed(sp.device, lambda: sp.generate(prompts, batch))
            result["recompiled_after_ordinary_swap"] = graphs_compiled() != graphs
        except Exception as exc:  # diffusers may refuse an ordinary load on a compiled model
            result["ordinary_swap_error"] = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
    if sp.device.startswith("cuda"):
        result["peak_vram_gib"] = round(torch.cuda.max_memory_allocated(sp.device) / 2**30, 3)
    save("done")
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.gpu.compile_phase SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    result = run(spec)
    result["child_wall_s"] = time.perf_counter() - t0
    Path(spec["out_file"]).write_text(json.dumps(result), encoding="utf-8")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
