"""An SD 1.5-shaped pipeline with random weights, and rank-32 kohya LoRA files for it.

Nothing is downloaded: the components are built from configs (as `watcher.tinymodel` builds
the tiny model), cast to fp16 and saved as a diffusers folder, so `SamplePipeline` loads
them the way it loads a real checkpoint. Full shapes are SD 1.5's (UNet 320/640/1280/1280
with cross-attention 768, VAE 128/256/512/512, CLIP text encoder 12 x 768 with a 49408-token
vocabulary); the smoke shapes are the tiny model's, for a CPU run of the same code path.

torch / diffusers / transformers are imported inside functions only.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.kohya_lora import SD15_TEXT_CONFIG, SD15_UNET_CONFIG
from watcher.tinymodel import SD15_SCHEDULER_CONFIG

CLIP_VOCAB_SIZE = 49408  # SD 1.5's tokenizer: BOS 49406, EOS 49407
MAX_TOKENS = 77
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
MARKER = ".epochwatch-bench-model"

SCHEDULER_CONFIG = SD15_SCHEDULER_CONFIG  # SD 1.5's noise schedule, shared with the tiny model


@dataclass(frozen=True)
class Shapes:
    """Component configs of one model size (text: CLIPTextConfig arguments, no token ids)."""

    name: str
    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any] = field(default_factory=dict)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet["cross_attention_dim"])


def _vae(block_out_channels: tuple[int, ...], layers_per_block: int, norm_num_groups: int) -> dict[str, Any]:
    """An SD-style AutoencoderKL config: 4 blocks, 4 latent channels, 512 px samples."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": block_out_channels,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "latent_channels": 4,
        "layers_per_block": layers_per_block,
        "norm_num_groups": norm_num_groups,
        "sample_size": 512,
    }


SD15 = Shapes(
    name="sd15",
    unet={**SD15_UNET_CONFIG, "norm_num_groups": 32},
    vae=_vae((128, 256, 512, 512), layers_per_block=2, norm_num_groups=32),
    text={k: v for k, v in SD15_TEXT_CONFIG.items() if k != "vocab_size"} | {"projection_dim": 768},
)

# The tiny model's shapes (watcher/tinymodel.py) with SD's full vocabulary.
SMOKE = Shapes(
    name="smoke",
    unet={
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    vae=_vae((8, 16, 32, 32), layers_per_block=1, norm_num_groups=8),
    text={
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "max_position_embeddings": MAX_TOKENS,
        "projection_dim": 32,
    },
)
SHAPES = {s.name: s for s in (SD15, SMOKE)}


def write_clip_vocab(folder: Path, vocab_size: int = CLIP_VOCAB_SIZE) -> tuple[Path, Path]:
    """CLIP tokenizer files with SD 1.5's vocabulary size and special-token ids.

    The byte-level vocabulary of the tiny model (watcher.tinymodel) is padded with synthetic
    tokens up to vocab_size, BOS/EOS last (49406/49407 as in SD 1.5). With no BPE merges the
    synthetic tokens can never be produced: they only give the embedding table its real size.
    """
    from watcher.tinymodel import _write_tokenizer_files

    vocab_file, merges_file = _write_tokenizer_files(folder)
    byte_level: dict[str, int] = json.loads(vocab_file.read_text(encoding="utf-8"))
    ordinary = [tok for tok in sorted(byte_level, key=byte_level.__getitem__) if tok not in SPECIAL_TOKENS]
    n_synthetic = vocab_size - len(ordinary) - len(SPECIAL_TOKENS)
    if n_synthetic < 0:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the byte-level vocabulary")
    tokens = ordinary + [f"<|synthetic_{i}|>" for i in range(n_synthetic)] + list(SPECIAL_TOKENS)
    vocab_file.write_text(json.dumps({tok: i for i, tok in enumerate(tokens)}, ensure_ascii=False),
                          encoding="utf-8")
    return vocab_file, merges_file


def is_built(model_dir: Path, shapes: Shapes) -> bool:
    marker = model_dir / MARKER
    if not marker.is_file() or not (model_dir / "model_index.json").is_file():
        return False
    return json.loads(marker.read_text(encoding="utf-8")).get("shapes") == shapes.name


def build_model(model_dir: Path, shapes: Shapes, device: str = "cpu", seed: int = 0) -> Path:
    """Build the random-weight pipeline (fp16 weights) as a diffusers folder at model_dir.

    Reuses a complete folder of the same shapes; refuses a non-empty folder it did not build.
    Weights are initialised on `device` (the
    SD 1.5 UNet initialises in seconds on a GPU, much longer on CPU) and saved as fp16.
    """
    model_dir = Path(model_dir)
    if is_built(model_dir, shapes):
        return model_dir
    if model_dir.exists() and (not model_dir.is_dir() or any(model_dir.iterdir())):
        if not (model_dir / MARKER).is_file():  # never delete what this code did not build
            raise FileExistsError(f"{model_dir} exists and is not a bench model; choose an empty folder")
        shutil.rmtree(model_dir)  # our own model, of other shapes
    from watcher import pipeline as sample_pipeline

    # the name lost its underscore in a later revision of watcher/pipeline.py
    quiet = getattr(sample_pipeline, "quiet_libraries", None) or sample_pipeline._quiet_libraries
    quiet()
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab_dir = model_dir.parent / f".{model_dir.name}-vocab"
    vocab_file, merges_file = write_clip_vocab(vocab_dir)
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=MAX_TOKENS)
    with torch.device(device):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**shapes.unet).half()
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(**shapes.vae).half()
        torch.manual_seed(seed + 2)
        text_config = CLIPTextConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **shapes.text,
        )
        text_encoder = CLIPTextModel(text_config).half()
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
        scheduler=PNDMScheduler(**SCHEDULER_CONFIG), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(str(model_dir), safe_serialization=True)
    shutil.rmtree(vocab_dir, ignore_errors=True)
    (model_dir / MARKER).write_text(json.dumps({"shapes": shapes.name, "seed": seed}) + "\n",
                                    encoding="utf-8")
    del pipe, unet, vae, text_encoder
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return model_dir


def parameter_counts(model_dir: Path) -> dict[str, int]:
    """Parameters per component, from the saved safetensors headers (no weights read)."""
    from safetensors import safe_open

    counts: dict[str, int] = {}
    for part in ("unet", "vae", "text_encoder"):
        total = 0
        for file in sorted((model_dir / part).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as f:
                for key in f.keys():
                    n = 1
                    for dim in f.get_slice(key).get_shape():
                        n *= int(dim)
                    total += n
        counts[part] = total
    return counts


def write_loras(model_dir: Path, out_dir: Path, epochs: tuple[int, ...] = (1, 2), rank: int = 32,
                alpha: float = 16.0) -> list[Path]:
    """kohya LoRA files (UNet + text encoder, fp16, the plan's rank 32 / alpha 16), one per
    epoch with different weights, named and tagged as train_network.py names them."""
    from safetensors.torch import save_file

    from launcher.kohya_lora import lora_target_names, make_lora_state_dict

    targets = lora_target_names(model_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for epoch in epochs:
        state = make_lora_state_dict(targets, rank, alpha, seed=epoch, scale=1.0, dtype="float16")
        path = out_dir / f"bench-{epoch:06d}.safetensors"
        save_file(state, str(path), metadata={
            "ss_epoch": str(epoch), "ss_output_name": "bench", "ss_network_module": "networks.lora",
            "ss_network_dim": str(rank), "ss_network_alpha": str(alpha),
        })
        files.append(path)
    return files
