"""Pure evaluators: arrays and prompts in, numbers out (no I/O).

`score_image(rgb, prompt, cells=24) -> ImageScore`, `aggregate_epoch(list_of_dicts) -> dict`,
`parse_prompt(text) -> ParsedPrompt`, `recover_grid(rgb, cells) -> GridResult`.

The names are loaded on first use (PEP 562): loading a config only parses prompts, and must
not pay for scipy and scikit-image, which scoring needs (`status` waits on it).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from evaluators.aggregate import aggregate_epoch
    from evaluators.grid import GridResult, recover_grid
    from evaluators.prompt import ParsedPrompt, PromptColor, parse_prompt
    from evaluators.score import ImageScore, score_image

_HOME = {
    "aggregate_epoch": "evaluators.aggregate",
    "GridResult": "evaluators.grid", "recover_grid": "evaluators.grid",
    "ParsedPrompt": "evaluators.prompt", "PromptColor": "evaluators.prompt",
    "parse_prompt": "evaluators.prompt",
    "ImageScore": "evaluators.score", "score_image": "evaluators.score",
}
__all__ = [
    "GridResult", "ImageScore", "ParsedPrompt", "PromptColor",
    "aggregate_epoch", "parse_prompt", "recover_grid", "score_image",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'evaluators' has no attribute {name!r}")
    return getattr(import_module(_HOME[name]), name)
