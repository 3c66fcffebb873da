"""One image's score: grid, background, colour accuracy, style, issues and 1-10 auto scores.

Auto scores (q = style_quality / 100, n = unique colours, s = subject share: cells farther
than the background threshold from the background colour):

- style_score  = 1 + 9 q
- visual_score = 1 + 9 (0.6 q + 0.2 palette_fit + 0.2 composition), where
  palette_fit = ramp(n, 2, 4) x (1 - ramp(n, 32, 96)) and
  composition = ramp(s, 0.03, 0.15) x (1 - ramp(s, 0.85, 0.97))
- prompt_score = 1 + 9 (color_accuracy / 100) x (0.5 if the background does not match
  else 1); None when the prompt has no hex codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluators.accuracy import ColorMatch, color_accuracy
from evaluators.background import MATCH_DELTA_E, estimate_background, judge_background
from evaluators.color import delta_e, merge_palette, to_lab
from evaluators.grid import GridResult, recover_grid
from evaluators.prompt import ParsedPrompt, parse_prompt
from evaluators.style import StyleComponents, ramp, style_quality

NOT_PIXEL_ART_BELOW = 50.0
OFF_PALETTE_DELTA_E = 10.0
MISSING_DELTA_E = 20.0
TOO_MANY_COLORS = 48
# Fixed order of the issue names, so lists compare and read the same every time.
ISSUE_ORDER = ("wrong_background", "uneven_background", "missing_colors", "off_palette",
               "not_pixel_art", "blurry", "anti_aliasing", "too_many_colors", "too_few_colors",
               "empty_image")


@dataclass(frozen=True)
class ImageScore:
    cells: np.ndarray                      # (N, N, 3) uint8, the recovered image
    grid: GridResult
    background_hex: str
    background_delta_e: float | None
    background_match: bool | None
    background_coverage: dict[str, float] | None
    color_accuracy: float | None
    per_color: tuple[ColorMatch, ...]
    style_quality: float
    style: StyleComponents
    unique_colors: int
    subject_share: float
    issues: tuple[str, ...]
    visual_score: float
    style_score: float
    prompt_score: float | None
    prompt_colors: tuple[dict[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        def r(v: float | None, nd: int = 3) -> float | None:
            return None if v is None else round(float(v), nd)
        return {
            "background_hex": self.background_hex,
            "background_delta_e": r(self.background_delta_e),
            "background_match": self.background_match,
            "color_accuracy": r(self.color_accuracy, 2),
            "style_quality": r(self.style_quality, 2),
            "unique_colors": int(self.unique_colors),
            "grid": self.grid.to_dict(),
            "issues": list(self.issues),
            "visual_score": r(self.visual_score, 2),
            "style_score": r(self.style_score, 2),
            "prompt_score": r(self.prompt_score, 2),
            "per_color": [m.to_dict() for m in self.per_color],
            "background_coverage": None if self.background_coverage is None else
            {k: round(v, 3) for k, v in self.background_coverage.items()},
            "subject_share": round(self.subject_share, 3),
            "style_components": self.style.to_dict(),
        }


def _issues(bg_match: bool | None, uneven: bool, matches: tuple[ColorMatch, ...],
            style: StyleComponents, unique: int, subject: float) -> tuple[str, ...]:
    found: set[str] = set()
    if bg_match is False:
        found.add("wrong_background")
    if uneven:
        found.add("uneven_background")
    for m in matches:
        if m.role == "background" or m.delta_e is None:
            continue
        if m.delta_e >= MISSING_DELTA_E:
            found.add("missing_colors")
        elif m.delta_e >= OFF_PALETTE_DELTA_E:
            found.add("off_palette")
    if style.quality < NOT_PIXEL_ART_BELOW:
        found.add("not_pixel_art")
    if style.sharpness is not None and style.grid is not None and style.grid >= 0.5 and style.sharpness < 0.3:
        found.add("blurry")
    if style.no_antialiasing < 0.5:
        found.add("anti_aliasing")
    if unique > TOO_MANY_COLORS:
        found.add("too_many_colors")
    if unique <= 2:
        found.add("too_few_colors")
    if subject < 0.03:
        found.add("empty_image")
    return tuple(name for name in ISSUE_ORDER if name in found)


def score_image(rgb: np.ndarray, prompt: str | ParsedPrompt, cells: int = 24) -> ImageScore:
    """Score one (H, W, 3) uint8 image against a prompt (see module docstring)."""
    parsed = prompt if isinstance(prompt, ParsedPrompt) else parse_prompt(prompt)
    grid = recover_grid(rgb, cells)
    lab = to_lab(grid.cells)
    palette = merge_palette(grid.cells, lab)
    unique = len(palette)
    background = estimate_background(grid.cells, lab)
    subject = float((delta_e(lab, background.lab[None, None, :]) >= MATCH_DELTA_E).mean())

    bg_delta: float | None = None
    bg_match: bool | None = None
    coverage: dict[str, float] | None = None
    uneven = False
    if parsed.background is not None:
        target = to_lab(np.array(parsed.background.rgb, dtype=np.uint8))
        judgement = judge_background(background, lab, target)
        bg_delta, bg_match, coverage, uneven = (judgement.delta_e, judgement.match,
                                                judgement.coverage, judgement.uneven)
    accuracy = color_accuracy(parsed, palette, background)
    style = style_quality(grid, lab, unique)

    q = style.quality / 100.0
    palette_fit = ramp(unique, 2, 4) * (1.0 - ramp(unique, 32, 96))
    composition = ramp(subject, 0.03, 0.15) * (1.0 - ramp(subject, 0.85, 0.97))
    visual = 1.0 + 9.0 * (0.6 * q + 0.2 * palette_fit + 0.2 * composition)
    prompt_score = None
    if accuracy.score is not None:
        prompt_score = 1.0 + 9.0 * accuracy.score / 100.0 * (0.5 if bg_match is False else 1.0)

    return ImageScore(
        cells=grid.cells, grid=grid,
        background_hex=background.hex, background_delta_e=bg_delta, background_match=bg_match,
        background_coverage=coverage,
        color_accuracy=accuracy.score, per_color=accuracy.matches,
        style_quality=style.quality, style=style, unique_colors=unique, subject_share=subject,
        issues=_issues(bg_match, uneven, accuracy.matches, style, unique, subject),
        visual_score=visual, style_score=1.0 + 9.0 * q, prompt_score=prompt_score,
        prompt_colors=tuple(c.to_dict() for c in parsed.colors),
    )
