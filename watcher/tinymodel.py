"""A tiny Stable Diffusion 1.5- or XL-shaped model, built offline from configs with random weights.

The demo and the tests use it instead of a 4 GB download. It keeps everything a LoRA and the
evaluator care about: SD's component layout, the VAE scale factor 8 (so a 512 px image is a
64 x 64 latent, as in SD 1.5), cross-attention blocks in the UNet (kohya's `lora_unet_*`
targets) and a CLIP text encoder (the `lora_te_*` targets). Output images are noise-like,
since nothing was trained. The SDXL shape (`sdxl=True`) adds what kohya's SDXL LoRAs and
diffusers' SDXL pipeline need: a second text encoder with a projection (`lora_te2_*`), a UNet
with linear projections, cross-attention over both encoders and SDXL's size/crop
micro-conditioning (`text_time` embedding).

torch / diffusers / transformers are imported inside functions only (see INTERFACES.md).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from watcher.family import family_of_model
from watcher.pipeline import quiet_libraries

# Written last: its presence means every component was saved completely.
COMPLETE_MARKER = ".epochwatch-tiny-model"

# SD 1.5's noise schedule, so schedulers behave as they would on the real model.
SD15_SCHEDULER_CONFIG: dict[str, object] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
}

TEXT_HIDDEN = 32  # CLIP width; also the UNet's cross-attention width (SDXL: twice, two encoders)
SDXL_TIME_EMBED = 8  # per size/crop number in SDXL's text_time embedding (SDXL 1.0: 256)
MAX_TOKENS = 77


def is_complete(model_dir: Path) -> bool:
    """True when model_dir holds a finished tiny model (marker and model_index.json)."""
    return (model_dir / COMPLETE_MARKER).is_file() and (model_dir / "model_index.json").is_file()


def _write_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    """A byte-level CLIP vocabulary: each byte alone and as a word end, plus BOS/EOS."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.json"
    merges_file = folder / "merges.txt"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    merges_file.write_text("#version: 0.2\n", encoding="utf-8")
    return vocab_file, merges_file


def _text_config(tokenizer: Any, projection: bool) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_HIDDEN,
        hidden_act="gelu" if projection else "quick_gelu",  # OpenCLIP bigG / CLIP ViT-L
    )


def _vae(sample_size: int) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        # four blocks keep SD's scale factor 8: 512 px <-> 64 x 64 latent
        block_out_channels=(8, 16, 32, 32),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=sample_size,
        mid_block_add_attention=False,  # same reason: a 4096-token attention in every decode
    )


def _unet(sdxl: bool) -> Any:
    from diffusers import UNet2DConditionModel

    # Attention only at the lower resolution: at 512 px the full-resolution latent has
    # 4096 tokens, and self-attention there made CPU renders ~20x slower (measured).
    common: dict[str, Any] = {
        "in_channels": 4, "out_channels": 4, "block_out_channels": (32, 64),
        "layers_per_block": 1, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "attention_head_dim": 8,
        "norm_num_groups": 32,
    }
    if not sdxl:
        return UNet2DConditionModel(sample_size=64, cross_attention_dim=TEXT_HIDDEN, **common)
    # SDXL: attends to both encoders' hidden states side by side, linear proj_in/out, and
    # adds the pooled text embedding + 6 size/crop numbers (text_time) to the time embedding.
    return UNet2DConditionModel(
        sample_size=128, cross_attention_dim=2 * TEXT_HIDDEN, use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=SDXL_TIME_EMBED,
        projection_class_embeddings_input_dim=TEXT_HIDDEN + 6 * SDXL_TIME_EMBED, **common,
    )


def _build_into(folder: Path, seed: int, sdxl: bool = False) -> None:

    quiet_libraries()  # before diffusers' pipeline imports, which warn about torchvision
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    vocab_file, merges_file = _write_tokenizer_files(folder / "_vocab")
    tokenizer = CLIPTokenizer(str(vocab_file), str(merges_file), model_max_length=MAX_TOKENS)

    # Separate seeds per component so changing one config leaves the others' weights alone.
    torch.manual_seed(seed)
    unet = _unet(sdxl)
    torch.manual_seed(seed + 1)
    vae = _vae(1024 if sdxl else 512)
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_text_config(tokenizer, projection=False))
    scheduler = PNDMScheduler(**SD15_SCHEDULER_CONFIG)  # SDXL keeps SD 1.5's noise schedule

    pipe: Any
    if sdxl:
        torch.manual_seed(seed + 3)
        text_encoder_2 = CLIPTextModelWithProjection(_text_config(tokenizer, projection=True))
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=text_encoder, text_encoder_2=text_encoder_2, tokenizer=tokenizer,
            tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
        )
    else:
        pipe = StableDiffusionPipeline(
            vae=vae,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            unet=unet,
            scheduler=scheduler,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    pipe.save_pretrained(str(folder), safe_serialization=True)
    shutil.rmtree(folder / "_vocab")
    (folder / COMPLETE_MARKER).write_text(json.dumps({"seed": seed, "sdxl": sdxl}) + "\n",
                                          encoding="utf-8")


def build_tiny_model(out_dir: Path, seed: int = 0, sdxl: bool = False) -> Path:
    """Build the tiny model (SDXL-shaped with sdxl=True) as a diffusers folder at out_dir and
    return out_dir.

    Idempotent: a complete model already at out_dir is returned as is. The model is built in a
    temporary sibling folder and renamed into place, so concurrent builders (parallel test
    processes) never see a half-written model. An existing, non-empty folder that is not a
    complete tiny model is refused rather than overwritten.
    """
    out_dir = Path(out_dir)
    if is_complete(out_dir):
        held = family_of_model(out_dir)
        if held != ("sdxl" if sdxl else "sd15"):
            raise FileExistsError(f"{out_dir} holds the tiny {held} model; choose another folder")
        return out_dir
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not a complete tiny model; choose an empty folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model folder is not
    try:
        _build_into(staging, seed, sdxl)
        try:
            # rename over a missing or empty folder is atomic on POSIX
            os.replace(staging, out_dir)
        except OSError:
            if not is_complete(out_dir):  # lost a race to a builder that failed: report it
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out_dir
