"""Pure evaluators: arrays and prompts in, numbers out (no I/O).

`score_image(rgb, prompt, cells=24) -> ImageScore`, `aggregate_epoch(list_of_dicts) -> dict`,
`parse_prompt(text) -> ParsedPrompt`, `recover_grid(rgb, cells) -> GridResult`.
"""

from evaluators.aggregate import aggregate_epoch
from evaluators.grid import GridResult, recover_grid
from evaluators.prompt import ParsedPrompt, PromptColor, parse_prompt
from evaluators.score import ImageScore, score_image

__all__ = [
    "GridResult", "ImageScore", "ParsedPrompt", "PromptColor",
    "aggregate_epoch", "parse_prompt", "recover_grid", "score_image",
]
