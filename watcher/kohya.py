"""kohya-ss (sd-scripts) file formats: the one module that knows them (the sample-prompt
format is `watcher.prompts`). The training `--config_file` (`load_kohya`: sections flattened as
sd-scripts does, `kohya_network_arg`), and the LoRA file (`networks.lora`):

Key rules (used by settle to accept a file, by the pipeline to load it, by simtrain to write
one): `<module>.lora_down.weight`, `<module>.lora_up.weight`, `<module>.alpha`, where
`<module>` is `lora_unet_*` or a text encoder's `lora_te_*` (SD 1.x/2.x) / `lora_te1_*`,
`lora_te2_*` (SDXL's two encoders). `split_lora_key` is the parser.

The layout for SD 1.x models:

kohya wraps every Linear and 1x1 Conv2d inside the UNet's `Transformer2DModel` blocks and
inside the CLIP text encoder's attention and MLP blocks; with `conv_dim` in network_args also
the Linear, 1x1 and 3x3 convs of the UNet's ResNet, down- and upsampling blocks. A wrapped module's name is its module
path with dots replaced by underscores, prefixed `lora_unet_` or `lora_te_`; each has
`.lora_down.weight` (rank x in), `.lora_up.weight` (out x rank) and a scalar `.alpha`.
SDXL: the same wrapping, under kohya's SGM UNet names and `lora_te1_` / `lora_te2_`
(`watcher.kohya_sdxl`).

This module derives those names and shapes from a model's configs (models are built on the
`meta` device: no weights are read) and makes random state dicts in that layout for the
stand-in trainer and the tests. torch / diffusers / transformers are imported inside functions.
"""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.family import family_of_keys
from watcher.kohya_sdxl import (
    SDXL_TEXT_2_CONFIG,
    SDXL_TEXT_CONFIG,
    SDXL_UNET_CONFIG,
    sgm_module_path,
)
from watcher.tomllines import KeyLines, read_toml

if TYPE_CHECKING:
    import torch

UNET_PREFIX = "lora_unet_"
TE_PREFIX = "lora_te_"  # SD 1.x / 2.x: one text encoder
SDXL_TE_PREFIXES = ("lora_te1_", "lora_te2_")  # SDXL names its two encoders te1, te2
TE_PREFIXES = (TE_PREFIX, *SDXL_TE_PREFIXES)
LORA_KEY = re.compile(
    r"^(?P<module>lora_(?:unet|te\d?)_[A-Za-z0-9_]+)\.(?P<part>lora_down\.weight|lora_up\.weight|alpha)$"
)
# LyCORIS / DoRA families that look like kohya keys but are not LoRA: recognised, refused.
UNSUPPORTED_PARTS = {
    "hada_": "LoHa (hada_*)",
    "lokr_": "LoKr (lokr_*)",
    "dora_scale": "DoRA (dora_scale)",
    "oft_": "OFT (oft_*)",
    "diff": "full-weight diff",
}


def split_lora_key(key: str) -> tuple[str, str] | None:
    """`lora_te1_x.lora_up.weight` -> ("lora_te1_x", "lora_up.weight"); None if not a
    kohya LoRA key."""
    match = LORA_KEY.match(key)
    return (match["module"], match["part"]) if match else None


def unsupported_family(key: str) -> str | None:
    """The network family of a key that is kohya-named but not LoRA (LoHa, LoKr, ...)."""
    if key.startswith("lora_"):
        for marker, family in UNSUPPORTED_PARTS.items():
            if f".{marker}" in key:
                return family
    return None


def is_text_encoder_module(module: str) -> bool:
    return module.startswith(TE_PREFIXES)

UNET_TARGET_CLASSES = frozenset({"Transformer2DModel"})
# wrapped too when kohya's network_args set conv_dim (LoCon-style 3x3 conv LoRA)
UNET_CONV_TARGET_CLASSES = frozenset({"ResnetBlock2D", "Downsample2D", "Upsample2D"})
TE_TARGET_CLASSES = frozenset(
    {"CLIPAttention", "CLIPSdpaAttention", "CLIPFlashAttention2", "CLIPMLP"}
)
SUFFIXES = (".lora_down.weight", ".lora_up.weight", ".alpha")

# A target's shape: (in_features, out_features) for Linear, (in, out, kh, kw) for Conv2d.
Shape = tuple[int, ...]

# Stable Diffusion 1.5's component configs, for single-file checkpoints that carry none.
SD15_UNET_CONFIG: dict[str, Any] = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "layers_per_block": 2,
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": 49408,
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
}


def _wrapped_children(block: Any, any_conv: bool = False) -> Iterable[tuple[str, Shape]]:
    import torch

    for child_name, child in block.named_modules():
        if isinstance(child, torch.nn.Linear):
            yield child_name, (child.in_features, child.out_features)
        elif isinstance(child, torch.nn.Conv2d) and (any_conv or tuple(child.kernel_size) == (1, 1)):
            yield child_name, (child.in_channels, child.out_channels, *child.kernel_size)


def is_conv3x3(shape: Shape) -> bool:
    """A target that only exists with kohya's conv_dim (rank conv_dim, not network_dim)."""
    return len(shape) == 4 and tuple(shape[2:]) != (1, 1)


def kohya_targets(unet: Any | None, text_encoder: Any | None, conv: bool = False,
                  text_encoder_2: Any | None = None) -> dict[str, Shape]:
    """kohya module name -> shape for live (or meta) UNet / CLIP text encoder modules.

    conv=True adds the targets kohya wraps when network_args has conv_dim. Call it before any
    adapter is injected: peft's wrappers add Linear layers of their own. With text_encoder_2
    the model is SDXL: encoders `lora_te1_` / `lora_te2_`, UNet blocks by their SGM names.
    """
    sdxl = text_encoder_2 is not None
    targets: dict[str, Shape] = {}
    classes = UNET_TARGET_CLASSES | (UNET_CONV_TARGET_CLASSES if conv else frozenset())
    if unet is not None:
        for path, module in unet.named_modules():
            if type(module).__name__ in classes:
                is_resnet_like = type(module).__name__ in UNET_CONV_TARGET_CLASSES
                for child, shape in _wrapped_children(module, any_conv=is_resnet_like):
                    full = sgm_module_path(path, child, unet.config) if sdxl else f"{path}.{child}"
                    targets[UNET_PREFIX + full.replace(".", "_")] = shape
    encoders = ((SDXL_TE_PREFIXES[0], text_encoder), (SDXL_TE_PREFIXES[1], text_encoder_2)) \
        if sdxl else ((TE_PREFIX, text_encoder),)
    for prefix, encoder in encoders:
        if encoder is None:
            continue
        for path, module in encoder.named_modules():
            if type(module).__name__ in TE_TARGET_CLASSES:
                # transformers 5 dropped CLIPTextModel's `text_model.` level; kohya files
                # (written under transformers 4) always carry it.
                full = path if path.startswith("text_model.") else f"text_model.{path}"
                for child, shape in _wrapped_children(module):
                    targets[prefix + f"{full}.{child}".replace(".", "_")] = shape
    return targets


def _targets_from_configs(configs: Mapping[str, Mapping[str, Any]], conv: bool = False) -> dict[str, Shape]:
    import torch
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(dict(configs["unet"]))
        text_encoder = CLIPTextModel(CLIPTextConfig(**dict(configs["text_encoder"])))
        te2_config = configs.get("text_encoder_2")
        text_encoder_2 = (CLIPTextModelWithProjection(CLIPTextConfig(**dict(te2_config)))
                          if te2_config is not None else None)
    return kohya_targets(unet, text_encoder, conv=conv, text_encoder_2=text_encoder_2)


def _read_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def _single_file_configs(path: Path) -> dict[str, dict[str, Any]]:
    """SD 1.x or SDXL configs for a single-file checkpoint, checked against its tensor shapes."""
    from safetensors import safe_open

    probe = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        if family_of_keys(keys) == "sdxl":
            return {"unet": dict(SDXL_UNET_CONFIG), "text_encoder": dict(SDXL_TEXT_CONFIG),
                    "text_encoder_2": dict(SDXL_TEXT_2_CONFIG)}
        if probe not in keys:
            raise ValueError(f"{path}: not a Stable Diffusion 1.x or XL single-file checkpoint (no {probe})")
        width = f.get_slice(probe).get_shape()[1]
    if width != SD15_TEXT_CONFIG["hidden_size"]:
        raise ValueError(f"{path}: text encoder width {width}, SD 1.x has 768 (SD 2.x is not supported)")
    return {"unet": dict(SD15_UNET_CONFIG), "text_encoder": dict(SD15_TEXT_CONFIG)}


def looks_like_path(model: str | Path) -> bool:
    """True for anything that cannot be a hub id ("org/name"): absolute, ./, ~, deeper paths."""
    text = str(model)
    return text.startswith(("/", ".", "~")) or text.count("/") > 1 or "\\" in text


def component_configs(model: str | Path) -> dict[str, dict[str, Any]]:
    """The configs of a model's `unet`, `text_encoder` (and SDXL's `text_encoder_2`), from a
    diffusers folder, a single file or a cached hub id."""
    path = Path(model)
    if path.is_dir():
        unet_cfg, te_cfg = path / "unet" / "config.json", path / "text_encoder" / "config.json"
        if not unet_cfg.is_file() or not te_cfg.is_file():
            raise ValueError(f"{path}: not a diffusers model folder (needs unet/ and text_encoder/ configs)")
        configs = {"unet": _read_json(unet_cfg), "text_encoder": _read_json(te_cfg)}
        te2_cfg = path / "text_encoder_2" / "config.json"
        if te2_cfg.is_file():
            configs["text_encoder_2"] = _read_json(te2_cfg)
        return configs
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        return _single_file_configs(path)
    if looks_like_path(model):
        raise ValueError(f"{model}: no such model folder or file")
    # A hub id: read its configs from the local Hugging Face cache only (no download here).
    from huggingface_hub import hf_hub_download  # only for hub ids; settle never needs it

    configs = {}
    for part in ("unet", "text_encoder", "text_encoder_2"):
        try:
            configs[part] = _read_json(Path(hf_hub_download(str(model), f"{part}/config.json",
                                                              local_files_only=True)))
        except Exception as exc:  # the hub library raises many kinds; the message is what matters
            if part == "text_encoder_2":
                break  # SD 1.x has one text encoder
            raise ValueError(
                f"{model}: not a local model, and not in the Hugging Face cache ({type(exc).__name__})"
            ) from exc
    return configs


def model_configs(model: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(unet config, first text encoder config): see component_configs."""
    configs = component_configs(model)
    return configs["unet"], configs["text_encoder"]


def lora_target_names(model_dir: str | Path, conv: bool = False) -> dict[str, Shape]:
    """kohya module name -> (in, out) or (in, out, kh, kw), from the model's configs only.
    conv=True: as kohya with conv_dim set (adds the ResNet/sampler blocks' layers)."""
    return _targets_from_configs(component_configs(model_dir), conv=conv)


def _seed_for(seed: int, name: str) -> int:
    # per-module seeds: a UNet-only dict holds the same UNet weights as a full one
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63)


def make_lora_state_dict(
    targets: Mapping[str, Shape],
    rank: int,
    alpha: float,
    seed: int,
    scale: float,
    unet: bool = True,
    text_encoder: bool = True,
    dtype: str = "float32",
    conv_rank: int | None = None,
    conv_alpha: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Random kohya-layout LoRA weights for targets (as from lora_target_names).

    `scale` sets the size of the weight change: each module's delta W = up @ down * alpha/rank
    has entries of roughly scale * alpha / (rank * sqrt(in_features)). Unlike a fresh kohya
    network (up = 0) these are "trained": loading them changes the model's output. 3x3 conv
    targets get rank conv_rank and alpha conv_alpha (kohya's conv_dim / conv_alpha), or are
    left out when conv_rank is None.
    """
    import torch

    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    torch_dtype = getattr(torch, dtype)
    out: dict[str, torch.Tensor] = {}
    for name in sorted(targets):
        if name.startswith(UNET_PREFIX) and not unet:
            continue
        if is_text_encoder_module(name) and not text_encoder:
            continue
        shape = targets[name]
        module_rank, module_alpha = rank, alpha
        if is_conv3x3(shape):
            if conv_rank is None:
                continue
            module_rank, module_alpha = conv_rank, conv_alpha
        n_in, n_out, kernel = shape[0], shape[1], tuple(shape[2:])
        fan_in = n_in * math.prod(kernel)
        gen = torch.Generator().manual_seed(_seed_for(seed, name))
        down = torch.randn((module_rank, n_in, *kernel), generator=gen) / (fan_in**0.5)
        up = torch.randn((n_out, module_rank, *((1, 1) if kernel else ())), generator=gen)
        up = up * (scale / module_rank**0.5)
        out[f"{name}.lora_down.weight"] = down.to(torch_dtype).contiguous()
        out[f"{name}.lora_up.weight"] = up.to(torch_dtype).contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(module_alpha), dtype=torch_dtype)
    return out


def module_shapes(tensor_shapes: Mapping[str, Iterable[int]]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Group a file's tensor shapes by kohya module: name -> {suffix: shape}; raises on
    keys that are not kohya LoRA keys."""
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    stray: list[str] = []
    for key, shape in tensor_shapes.items():
        split = split_lora_key(key)
        if split is None:
            stray.append(key)
            continue
        module, part = split
        modules.setdefault(module, {})["." + part] = tuple(shape)
    if stray:
        raise ValueError(f"{len(stray)} keys are not kohya LoRA keys (e.g. {sorted(stray)[0]!r})")
    if not modules:
        raise ValueError("no kohya LoRA keys (lora_unet_* / lora_te_*)")
    return modules


def check_fits(tensor_shapes: Mapping[str, Iterable[int]], targets: Mapping[str, Shape]) -> dict[str, int]:
    """Check a kohya LoRA's tensor shapes against a model's targets.

    Returns {"unet": n, "text_encoder": n} module counts (and "text_encoder_2": n for an
    SDXL LoRA that has `lora_te2_` modules); raises ValueError with a one-line
    reason for foreign keys, unknown modules, missing halves or shape mismatches.
    """
    modules = module_shapes(tensor_shapes)
    unknown = sorted(name for name in modules if name not in targets)
    if unknown:
        raise ValueError(f"{len(unknown)} LoRA modules are not in this model (e.g. {unknown[0]})")
    for name, parts in sorted(modules.items()):
        down, up = parts.get(".lora_down.weight"), parts.get(".lora_up.weight")
        if down is None or up is None:
            raise ValueError(f"{name}: lora_down/lora_up pair incomplete")
        shape = targets[name]
        rank = down[0]
        kernel_ok = tuple(down[2:]) == tuple(shape[2:]) if len(shape) == 4 else len(down) == 2
        if len(down) < 2 or down[1] != shape[0] or up[0] != shape[1] or up[1] != rank or not kernel_ok:
            raise ValueError(
                f"{name}: LoRA shapes down {list(down)} / up {list(up)} do not fit the model's "
                f"{shape[0]} -> {shape[1]} layer"
            )
    counts = {
        "unet": sum(1 for n in modules if n.startswith(UNET_PREFIX)),
        "text_encoder": sum(1 for n in modules if n.startswith((TE_PREFIX, SDXL_TE_PREFIXES[0]))),
    }
    te2 = sum(1 for n in modules if n.startswith(SDXL_TE_PREFIXES[1]))
    if te2:  # SDXL's second encoder (diffusers' text_encoder_2)
        counts["text_encoder_2"] = te2
    return counts


# ----------------------------------------------------------------------------- training config


def load_kohya(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """A kohya `--config_file` flattened, and the line each option was set on."""
    data, text = read_toml(path, "kohya config")
    lines = KeyLines(text)
    flat: dict[str, Any] = {}
    where: dict[str, int] = {}
    # sd-scripts flattens exactly one level of sections; a later duplicate wins, as there.
    for section, value in data.items():
        if isinstance(value, dict):
            for key, item in value.items():
                flat[key] = item
                where[key] = lines.find((section, key)) or 0
        else:
            flat[section] = value
            where[section] = lines.find((section,)) or 0
    return flat, where


def load_kohya_config(path: Path | str) -> dict[str, Any]:
    """A kohya `--config_file` TOML as sd-scripts sees it: sections flattened to option names."""
    return load_kohya(Path(path))[0]


def kohya_network_arg(kohya: dict[str, Any], name: str) -> str | None:
    """Value of `name=value` in kohya's `network_args` list (e.g. conv_dim), or None."""
    args = kohya.get("network_args") or []
    for item in args if isinstance(args, list) else [args]:
        key, sep, value = str(item).partition("=")
        if sep and key.strip() == name:
            return value.strip()
    return None
