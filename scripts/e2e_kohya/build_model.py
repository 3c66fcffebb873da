"""Builds the e2e test model: SD 1.5's UNet shape with random weights, a small CLIP text
encoder and a small VAE, as a diffusers folder both kohya and epochwatch can load.

Run with kohya's own venv (transformers 4.x), never the project's:
    KOHYA_VENV/bin/python scripts/e2e_kohya/build_model.py OUT_DIR TOKENIZER_CACHE_DIR

Why this shape (ARCHITECTURE.md, field notes 5):
- kohya rebuilds the SD 1.5 UNet with fixed widths (320/640/1280/1280) and copies the
  weights in, so the UNet must be SD 1.5's (860M parameters; random weights are fine);
  only its cross-attention width (768) ties it to the text encoder.
- a text encoder saved by transformers 5 lacks the `text_model.` key prefix and loads as
  random weights in kohya's transformers 4.x with only a warning: so it is saved here, by
  kohya's transformers; the project's transformers 5 reads the 4.x layout fine.
- kohya loads its tokenizer from `{tokenizer_cache_dir}/openai_clip-vit-large-patch14`
  before trying the hub; a byte-level vocabulary written offline is enough.
Idempotent: a folder holding the marker with the same build version is kept as is.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

BUILD_VERSION = "sd15-unet-random-v1"  # bump when anything below changes the model
MARKER = ".epochwatch-e2e-model"
TOKENIZER_ID = "openai_clip-vit-large-patch14"  # kohya's cache name for the SD 1.x tokenizer
CROSS_ATTENTION = 768  # SD 1.5's; the text encoder's width must match it
MAX_TOKENS = 77
SD15_SCHEDULER: dict[str, object] = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
    "steps_offset": 1,
}


def is_built(out: Path) -> bool:
    marker = out / MARKER
    return marker.is_file() and json.loads(marker.read_text()).get("version") == BUILD_VERSION


def make_tokenizer(folder: Path):  # noqa: ANN201 - transformers type, imported lazily
    """A CLIP tokenizer from a byte-level vocabulary: every byte alone and as a word end."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=MAX_TOKENS)


def build(out: Path, seed: int = 0) -> None:
    import torch
    import transformers
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        tokenizer = make_tokenizer(staging / "_vocab")
        torch.manual_seed(seed)
        # diffusers' defaults are SD 1.x's UNet (4 blocks 320/640/1280/1280, 2 layers each,
        # 8 heads); only the cross-attention width and sample size differ.
        unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=CROSS_ATTENTION)
        torch.manual_seed(seed + 1)
        vae = AutoencoderKL(  # four blocks keep SD's scale factor 8
            block_out_channels=(8, 16, 32, 32), down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, layers_per_block=1,
            norm_num_groups=8, sample_size=512, mid_block_add_attention=False,
        )
        torch.manual_seed(seed + 2)
        text_encoder = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tokenizer), hidden_size=CROSS_ATTENTION, intermediate_size=1024,
            num_hidden_layers=2, num_attention_heads=12, max_position_embeddings=MAX_TOKENS,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, projection_dim=CROSS_ATTENTION,
        ))
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
            scheduler=PNDMScheduler(**SD15_SCHEDULER), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False,
        )
        pipe.save_pretrained(str(staging), safe_serialization=True)
        shutil.rmtree(staging / "_vocab")
        params = sum(p.numel() for p in unet.parameters())
        (staging / MARKER).write_text(json.dumps({
            "version": BUILD_VERSION, "seed": seed, "unet_parameters": params,
            "transformers": transformers.__version__, "torch": torch.__version__,
        }) + "\n")
        if out.exists():
            shutil.rmtree(out)  # an older build version
        os.replace(staging, out)
        print(f"model: {out} (UNet {params / 1e6:.0f}M parameters, random weights)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main() -> int:
    out, tok_cache = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not is_built(out):
        build(out)
    else:
        print(f"model: {out} (cached)")
    tok_dir = tok_cache / TOKENIZER_ID
    if not (tok_dir / "vocab.json").is_file():
        from transformers import CLIPTokenizer

        CLIPTokenizer.from_pretrained(str(out / "tokenizer")).save_pretrained(str(tok_dir))
    print(f"tokenizer cache: {tok_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
