"""Old home of the kohya LoRA format, now `watcher.kohya` (beside settle, which uses it);
re-exported so scripts written against this name keep working."""

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
