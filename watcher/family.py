"""Which Stable Diffusion family a run trains: "sd15" (SD 1.x, `train_network.py`) or "sdxl"
(`sdxl_train_network.py`). No torch here: config loading and settle use it.

Evidence, strongest first: the trainer script named in `[trainer] command`, the base model's
own files (a diffusers folder's `model_index.json`, a single file's key layout), a LoRA's
metadata (`ss_base_model_version`) and key names (`lora_te1_` / `lora_te2_`, SGM UNet blocks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

FAMILIES = ("sd15", "sdxl")
# Native resolution: what kohya trains at and what each pipeline renders best.
NATIVE_SIZE = {"sd15": 512, "sdxl": 1024}
# kohya's scripts that train an SDXL network (sd-scripts names them sdxl_*.py).
SDXL_SCRIPTS = ("sdxl_train_network.py", "sdxl_train.py", "sdxl_train_textual_inversion.py")
SD15_SCRIPTS = ("train_network.py", "train_db.py", "fine_tune.py", "train_textual_inversion.py")
# A single-file SDXL checkpoint keeps its two text encoders under conditioner.embedders.
SDXL_SINGLE_FILE_PREFIX = "conditioner.embedders."
SD1_SINGLE_FILE_PREFIX = "cond_stage_model."


def family_of_command(command: Iterable[str]) -> str | None:
    """The family a trainer command line trains, from its kohya script name (None: unknown)."""
    for arg in command:
        name = Path(str(arg)).name
        if name in SDXL_SCRIPTS:
            return "sdxl"
        if name in SD15_SCRIPTS:
            return "sd15"
    return None


def family_of_keys(keys: Iterable[str]) -> str | None:
    """A single-file checkpoint's family from its tensor names (None: neither layout)."""
    sd1 = False
    for key in keys:
        if key.startswith(SDXL_SINGLE_FILE_PREFIX):
            return "sdxl"
        sd1 = sd1 or key.startswith(SD1_SINGLE_FILE_PREFIX)
    return "sd15" if sd1 else None


def family_of_model(model: str | Path) -> str | None:
    """A local base model's family from its own files (None: not local or not recognised)."""
    path = Path(model).expanduser()
    if path.is_dir():
        index = path / "model_index.json"
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        name = str(data.get("_class_name", "")) if isinstance(data, dict) else ""
        if "XL" in name or (path / "text_encoder_2").is_dir():
            return "sdxl"
        return "sd15" if name else None
    if path.is_file() and path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                return family_of_keys(f.keys())
        except Exception:  # an unreadable file is reported by whoever loads it
            return None
    return None


def family_of_lora(metadata: Mapping[str, str], keys: Iterable[str]) -> str | None:
    """A LoRA file's family: kohya's ss_base_model_version, else its key names."""
    version = str(metadata.get("ss_base_model_version", ""))
    if version.startswith("sdxl"):
        return "sdxl"
    if version.startswith(("sd_v1", "sd_v2")):
        return "sd15" if version.startswith("sd_v1") else None
    for key in keys:
        if key.startswith(("lora_te1_", "lora_te2_", "lora_unet_input_blocks_",
                           "lora_unet_middle_block_", "lora_unet_output_blocks_")):
            return "sdxl"
    return None
