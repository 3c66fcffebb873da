"""A LoRA training loop of SD 1.5 size, run as a second process beside the daemon.

`python -m bench.gpu.trainer_worker --steps-file F --go-file G --stop-file S [...]`

What it models is kohya's train_network.py step for this plan: frozen fp16 UNet with a rank-32
LoRA (alpha 16) on every Linear and 1x1 Conv2d inside the transformer blocks (kohya's
`lora_unet_*` targets), fp32 LoRA weights under fp16 autocast with a gradient scaler, AdamW,
batch 1 at 64 x 64 latents (512 px), gradient accumulation 4, the text context of
max_token_length 225 (3 x 75 tokens + BOS/EOS = 227), and `loss.item()` every step as kohya
logs it. Cached latents and a frozen text-encoder output are stood in by random tensors (the
real run also trains the text encoder's LoRA, a smaller network: the step here is a lower
bound).

Protocol (JSON lines appended to the steps file, flushed each line):
  {"event": "initialized", ...}  model built, waiting for the go file
  {"event": "ready"}             warm-up steps done, timed steps follow
  {"s": t0, "e": t1}             one step (forward + backward [+ optimizer]) in time.monotonic()
  {"event": "stopped", "steps": n}
It stops when the stop file appears, after --max-s seconds, or when its parent process dies.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO


def _emit(out: TextIO, record: dict[str, Any]) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def add_lora(unet: Any, rank: int, alpha: float, device: str) -> list[Any]:
    """Wrap kohya's UNet targets in LoRA adapters (up initialised to zero as kohya does);
    returns the trainable parameters."""
    import torch
    from torch import nn

    class LoraWrapped(nn.Module):
        def __init__(self, base: nn.Module) -> None:
            super().__init__()
            self.base = base
            if isinstance(base, nn.Linear):
                self.down: nn.Module = nn.Linear(base.in_features, rank, bias=False)
                self.up: nn.Module = nn.Linear(rank, base.out_features, bias=False)
            else:
                self.down = nn.Conv2d(base.in_channels, rank, 1, bias=False)
                self.up = nn.Conv2d(rank, base.out_channels, 1, bias=False)
            nn.init.kaiming_uniform_(self.down.weight, a=5**0.5)
            nn.init.zeros_(self.up.weight)
            self.scale = alpha / rank

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + self.up(self.down(x)) * self.scale

    targets = []
    for module in unet.modules():
        if type(module).__name__ != "Transformer2DModel":
            continue
        for name, child in module.named_modules():
            is_target = isinstance(child, nn.Linear) or (
                isinstance(child, nn.Conv2d) and tuple(child.kernel_size) == (1, 1))
            if name and is_target:
                targets.append((module, name, child))
    params: list[Any] = []
    for block, name, child in targets:
        parent_name, _, attr = name.rpartition(".")
        parent = block.get_submodule(parent_name) if parent_name else block
        wrapped = LoraWrapped(child).to(device)  # LoRA weights stay fp32 (kohya's default)
        setattr(parent, attr, wrapped)
        params += [wrapped.down.weight, wrapped.up.weight]
    return params


class Trainer:
    """One training step at a time on a randomly initialised UNet of the given shapes."""

    def __init__(self, shapes_name: str, device: str, rank: int, alpha: float, latent: int,
                 context_tokens: int, grad_accum: int) -> None:
        import torch
        from diffusers import DDPMScheduler, UNet2DConditionModel

        from bench.gpu.sd15 import SCHEDULER_CONFIG, SHAPES

        shapes = SHAPES[shapes_name]
        self.device, self.cuda = device, device.startswith("cuda")
        with torch.device(device):
            torch.manual_seed(0)
            unet = UNet2DConditionModel(**shapes.unet)
        if self.cuda:  # frozen base in fp16 as kohya holds it under mixed_precision = fp16
            unet = unet.half()
        unet.requires_grad_(False)
        self.params = add_lora(unet, rank, alpha, device)
        for p in self.params:
            p.requires_grad_(True)
        unet.train()
        self.unet = unet
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, fused=self.cuda)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.cuda)
        self.noise_scheduler = DDPMScheduler(**{k: v for k, v in SCHEDULER_CONFIG.items()
                                                if k in ("beta_start", "beta_end", "beta_schedule",
                                                         "num_train_timesteps")})
        self.latent_shape = (1, shapes.unet["in_channels"], latent, latent)
        self.context_shape = (1, context_tokens, shapes.cross_attention_dim)
        self.grad_accum = grad_accum
        self.micro = 0

    def step(self) -> float:
        import torch

        latents = torch.randn(self.latent_shape, device=self.device)
        noise = torch.randn_like(latents)
        t = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (1,), device=self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, t)
        context = torch.randn(self.context_shape, device=self.device)
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.cuda):
            pred = self.unet(noisy, t, encoder_hidden_states=context, return_dict=False)[0]
        loss = torch.nn.functional.mse_loss(pred.float(), noise.float()) / self.grad_accum
        self.scaler.scale(loss).backward()
        self.micro += 1
        if self.micro % self.grad_accum == 0:
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        return float(loss.item())  # kohya logs the loss every step: a sync point


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.gpu.trainer_worker", description=__doc__.splitlines()[0])
    p.add_argument("--steps-file", type=Path, required=True)
    p.add_argument("--go-file", type=Path, required=True)
    p.add_argument("--stop-file", type=Path, required=True)
    p.add_argument("--shapes", choices=("sd15", "smoke"), default="sd15")
    p.add_argument("--device", default="cuda")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--latent", type=int, default=64, help="latent side (64 = 512 px)")
    p.add_argument("--context-tokens", type=int, default=227)
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--warmup-steps", type=int, default=5)
    p.add_argument("--cpu-threads", type=int, default=None)
    p.add_argument("--max-s", type=float, default=600.0, help="give up after this long")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    parent = os.getppid()
    deadline = time.monotonic() + args.max_s

    def should_stop() -> bool:
        return args.stop_file.exists() or time.monotonic() > deadline or os.getppid() != parent

    if args.cpu_threads:
        import torch

        torch.set_num_threads(args.cpu_threads)
    with open(args.steps_file, "a", encoding="utf-8") as out:
        trainer = Trainer(args.shapes, args.device, args.rank, args.alpha, args.latent,
                          args.context_tokens, args.grad_accum)
        _emit(out, {"event": "initialized", "lora_params": sum(p.numel() for p in trainer.params),
                    "lora_tensors": len(trainer.params), "pid": os.getpid()})
        while not args.go_file.exists():
            if should_stop():
                _emit(out, {"event": "stopped", "steps": 0})
                return 0
            time.sleep(0.02)
        for _ in range(args.warmup_steps):
            trainer.step()
        _emit(out, {"event": "ready"})
        n = 0
        while not should_stop():
            t0 = time.monotonic()
            trainer.step()
            _emit(out, {"s": t0, "e": time.monotonic()})
            n += 1
        peak = None
        if trainer.cuda:
            import torch

            peak = round(torch.cuda.max_memory_allocated(args.device) / 2**30, 3)
        _emit(out, {"event": "stopped", "steps": n, "peak_vram_gib": peak})
    return 0


if __name__ == "__main__":
    sys.exit(main())
