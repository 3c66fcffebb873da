"""kohya's SDXL LoRA names (sd-scripts `networks/lora.py` on `library/sdxl_original_unet.py`).

For SDXL kohya trains its own copy of Stability's (SGM) UNet, not diffusers', so a LoRA's
UNet modules carry SGM block names: diffusers `down_blocks.1.attentions.0` is kohya's
`input_blocks.4.1` (with layers_per_block 2). Inside a block the names match diffusers
(`transformer_blocks.0.attn1.to_q`, `proj_in`, `ff.net.0.proj`), except a ResNet's layers
(`in_layers.2` = conv1, `emb_layers.1` = time_emb_proj, `out_layers.3` = conv2,
`skip_connection` = conv_shortcut) and a downsampler's conv (`op`). The two text encoders are
`lora_te1_` (CLIP ViT-L) and `lora_te2_` (OpenCLIP bigG), each named as in transformers 4
(`text_model.encoder.layers.N...`).

SGM block numbering, with L = layers_per_block: `input_blocks.0` is conv_in; down block b,
layer l is `input_blocks.{1 + b(L+1) + l}` (`.0` ResNet, `.1` attention); its downsampler
`input_blocks.{(b+1)(L+1)}.0`. `middle_block.0/1/2` = ResNet, attention, ResNet. Up block b,
layer l is `output_blocks.{b(L+1) + l}` (`.0` ResNet, `.1` attention, then the upsampler at
the next index of the last layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_RESNET_CHILDREN = {"conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                    "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}

# Stable Diffusion XL 1.0 base, for single-file checkpoints that carry no component configs.
SDXL_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280],
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "layers_per_block": 2,
    "transformer_layers_per_block": [1, 2, 10],
    "cross_attention_dim": 2048,
    "attention_head_dim": [5, 10, 20],
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_TEXT_CONFIG: dict[str, Any] = {  # CLIP ViT-L/14
    "vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
}
SDXL_TEXT_2_CONFIG: dict[str, Any] = {  # OpenCLIP ViT-bigG/14
    "vocab_size": 49408, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
    "num_attention_heads": 20, "max_position_embeddings": 77, "hidden_act": "gelu",
    "projection_dim": 1280,
}


def sgm_module_path(path: str, child: str, unet_config: Mapping[str, Any]) -> str:
    """kohya's SGM path of the diffusers UNet module `path` + `.child`.

    path is a wrapped block (`down_blocks.1.attentions.0`, `mid_block.resnets.1`,
    `up_blocks.0.upsamplers.0`); raises ValueError for anything else.
    """
    per = int(unet_config["layers_per_block"]) + 1
    parts = path.split(".")
    kind = parts[-2] if len(parts) >= 2 else ""
    if kind == "resnets":
        child = _resnet_child(child)
    if parts[0] == "mid_block" and len(parts) == 3:
        index = {("resnets", "0"): 0, ("attentions", "0"): 1, ("resnets", "1"): 2}.get((kind, parts[2]))
        if index is not None:
            return f"middle_block.{index}.{child}"
    elif parts[0] in ("down_blocks", "up_blocks") and len(parts) == 4:
        block, layer = int(parts[1]), int(parts[3])
        if parts[0] == "down_blocks":
            if kind == "downsamplers":
                return f"input_blocks.{(block + 1) * per}.0.{child.replace('conv', 'op', 1)}"
            return f"input_blocks.{1 + block * per + layer}.{_inner(kind)}.{child}"
        if kind == "upsamplers":
            has_attention = "CrossAttn" in str(unet_config["up_block_types"][block])
            return f"output_blocks.{block * per + per - 1}.{2 if has_attention else 1}.{child}"
        return f"output_blocks.{block * per + layer}.{_inner(kind)}.{child}"
    raise ValueError(f"{path}: not a UNet block kohya wraps")


def _inner(kind: str) -> int:
    return {"resnets": 0, "attentions": 1}[kind]


def _resnet_child(child: str) -> str:
    return _RESNET_CHILDREN.get(child, child)
