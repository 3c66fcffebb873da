"""Old home of the kohya LoRA format, now `watcher.kohya` (beside settle, which uses it);
re-exported so scripts written against this name keep working. Also what an SDXL LoRA's
header says differently from an SD 1.5 one (`family_metadata`, used by simtrain)."""

from pathlib import Path

from watcher.family import NATIVE_SIZE, family_of_model
from watcher.kohya import *  # noqa: F403
from watcher.kohya import (  # noqa: F401 - the names callers use
    SD15_TEXT_CONFIG,
    SD15_UNET_CONFIG,
    TE_PREFIX,
    UNET_PREFIX,
    Shape,
    check_fits,
    kohya_targets,
    looks_like_path,
    lora_target_names,
    make_lora_state_dict,
)

# sd-scripts: sdxl_model_util.MODEL_VERSION_SDXL_BASE_V1_0, sai_model_spec.ARCH_SD_XL_V1_BASE
SDXL_BASE_MODEL_VERSION = "sdxl_base_v1-0"
SDXL_ARCHITECTURE = "stable-diffusion-xl-v1-base/lora"


def family_metadata(model: str | Path) -> dict[str, str]:
    """The header fields sdxl_train_network.py writes differently from train_network.py, for
    the model's family ({} for SD 1.5: kohya_metadata's defaults are SD 1.5's)."""
    if family_of_model(model) != "sdxl":
        return {}
    size = NATIVE_SIZE["sdxl"]
    return {
        "ss_base_model_version": SDXL_BASE_MODEL_VERSION,
        "modelspec.architecture": SDXL_ARCHITECTURE,
        "modelspec.resolution": f"{size}x{size}",
        "ss_resolution": f"({size}, {size})",
    }
