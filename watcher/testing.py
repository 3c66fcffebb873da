"""Test support shipped with the package (as structlog ships `structlog.testing`).

- `FakePipeline`: renders without torch, from real pixel-art sprites (the DiceBear avatars in
  tests/fixtures/pixelart, CC0), each on the background colour the test chooses, so decide,
  publish and act run in-process in a fraction of a second through the real `EpochPath`.
- `write_watch_config`: a small but complete watcher config (the one copy; tests and chaos
  rigs use it); `lora_bytes`: a small kohya-format LoRA file that settles (no torch).
- `KEEP_TOKENS_3_DEMO_PARAMS`: SD15_KEEP_TOKENS_3_EXPERIMENT's "Parameters to Track" (NEXT_TRAINING_RUN_PLAN.md),
  a fixture for tests and the demo; never a default for a user's run.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from safetensors.numpy import save

from watcher.prompts import SamplePrompt

REPO_ROOT = Path(__file__).resolve().parent.parent
AVATARS = REPO_ROOT / "tests" / "fixtures" / "pixelart" / "avatars"

KEEP_TOKENS_3_DEMO_PARAMS: dict[str, Any] = {  # NEXT_TRAINING_RUN_PLAN.md, "Parameters to Track"
    "run_name": "SD15_KEEP_TOKENS_3_EXPERIMENT",
    "architecture": {"network_dim": 32, "network_alpha": 16, "conv_dim": 0},
    "hyperparameters": {"learning_rate": 1e-4, "lr_scheduler": "cosine_with_restarts",
                        "max_train_epochs": 10, "optimizer_type": "AdamW8bit"},
    "data": {"num_images": 203, "caption_version": "final_corrected_lips_12hex_v1",
             "keep_tokens": 3, "caption_dropout_rate": 0.05},
    "augmentation": {"noise_offset": 0.05},
}

E2E_PROMPTS = [
    "pixel art portrait, pink hair (#ff66cc), lips (#cc6666), solid green background (#00ff00)",
    "pixel art portrait, blue shirt (#1e90ff), solid green background (#00ff00)",
]


def _rgb(hex_code: str) -> tuple[int, int, int]:
    h = hex_code.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


class FakePipeline:
    """Stands in for `watcher.pipeline.SamplePipeline` in the evaluate stage.

    Each prompt gets one avatar sprite (in prompt order), its own background replaced by
    `background` and padded to `cells` x `cells`, then scaled up to the prompt's size with
    nearest-neighbour: a crisp pixel-art portrait. Set `background` between epochs to make the
    background rule pass or fail. `loaded` lists the LoRA paths applied.
    """

    def __init__(self, background: str = "#00ff00", cells: int = 24,
                 avatars: Path = AVATARS) -> None:
        self.background = background
        self.cells = cells
        meta = json.loads((avatars / "avatars.json").read_text())
        self._sprites: list[tuple[np.ndarray, tuple[int, int, int]]] = []
        for entry in meta[:16]:
            with Image.open(avatars / entry["image"]) as im:
                self._sprites.append((np.asarray(im.convert("RGB")), _rgb(entry["background"])))
        self.loaded: list[str] = []

    device = "cpu"

    def load(self) -> FakePipeline:
        return self

    def apply_lora(self, path: str | Path) -> None:
        self.loaded.append(str(path))

    def portrait(self, index: int) -> np.ndarray:
        """The logical cells x cells image of sprite `index` on the current background."""
        sprite, own_bg = self._sprites[index % len(self._sprites)]
        canvas = np.empty((self.cells, self.cells, 3), dtype=np.uint8)
        canvas[:] = _rgb(self.background)
        h, w = sprite.shape[:2]
        x, y = (self.cells - w) // 2, self.cells - h  # centred, standing on the bottom edge
        body = np.where(np.all(sprite == own_bg, axis=-1, keepdims=True),
                        canvas[y:y + h, x:x + w], sprite)
        canvas[y:y + h, x:x + w] = body
        return canvas

    def generate(self, prompts: Sequence[SamplePrompt], batch_size: int) -> list[Image.Image]:
        return [Image.fromarray(self.portrait(i)).resize((p.width, p.height), Image.Resampling.NEAREST)
                for i, p in enumerate(prompts)]

    def memory_bytes(self) -> int:
        return 0

    def release(self) -> None:
        pass


def lora_bytes(epoch: int, output_name: str, seed: int = 0) -> bytes:
    """A one-module kohya LoRA (fp16, rank 4) with the identity metadata settle reads."""
    rng = np.random.default_rng(seed)
    module = "lora_unet_mid_block_attentions_0_proj_in"
    tensors = {
        f"{module}.lora_down.weight": rng.standard_normal((4, 64)).astype(np.float16),
        f"{module}.lora_up.weight": rng.standard_normal((64, 4)).astype(np.float16),
        f"{module}.alpha": np.array(2.0, np.float16),
    }
    return save(tensors, metadata={"ss_epoch": str(epoch), "ss_output_name": output_name})


def run_table(name: str, output_name: str, epochs: int, *extra: str) -> str:
    """A test config's [run] table (output in "output", state in "state"); `extra` adds keys."""
    return "\n".join(["[run]", f'name = "{name}"', 'output_dir = "output"',
                      f'output_name = "{output_name}"', f"max_train_epochs = {epochs}",
                      'state_dir = "state"', *extra])


def write_watch_config(root: Path, model_dir: Path, *, name: str = "E2E_RUN", epochs: int = 10,
                       size: int = 128, steps: int = 2, interval: float = 0.5,
                       criteria: str = "", extra_trainer: str = "") -> Path:
    """A small but complete watcher config for end-to-end tests (real model, real files)."""
    config = root / "config.toml"
    prompts = ",\n".join(f'  {{ text = "{p}" }}' for p in E2E_PROMPTS)
    trainer = [sys.executable, "-m", "watcher", "simtrain", "--config", str(config),
               "--interval", str(interval)]
    config.write_text(f"""
{run_table(name, "e2e_lora", epochs, "save_every_n_epochs = 1", "expected_epoch_minutes = 1.0")}

[model]
base = "{model_dir}"
device = "cpu"
dtype = "float32"
steps = {steps}
width = {size}
height = {size}
batch_size = 2

[sampling]
seeds = [7]
prompts = [
{prompts}
]

[results]
repo = "results"
dir = "runs"

[daemon]
rescan_interval_s = 1.0
settle_interval_s = 0.2

[trainer]
command = [{", ".join(repr(c).replace("'", '"') for c in trainer)}]
log_file = "logs/trainer.log"
stop_grace_s = 3.0
{extra_trainer}
{criteria}
""")
    return config


def write_trainer_source_config(root: Path, prompts: Path, *, name: str, epochs: int = 10,
                                run: str = "", sampling: str = "", tables: str = "") -> Path:
    """A watcher config that judges the trainer's own samples (`[sampling] source = "trainer"`,
    the demo set's output_name): `run` and `sampling` add keys to those tables, `tables` adds
    whole tables ([trainer], [daemon], [alerts], ...)."""
    config = root / "config.toml"
    config.write_text(f"""
{run_table(name, "demo_lora", epochs, run)}

[sampling]
source = "trainer"
prompts_file = "{prompts}"
{sampling}

[results]
repo = "results"
dir = "runs"

{tables}
""")
    return config
