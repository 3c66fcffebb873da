"""One image's score: grid, background, colour accuracy, style, issues and 1-10 auto scores.

Auto scores (q = style_quality / 100, n = unique colours, s = subject share: cells the
background model does not claim):

- style_score  = 1 + 9 q
- visual_score = 1 + 9 (0.6 q + 0.2 palette_fit + 0.2 composition) x miss_factor, where
  palette_fit = ramp(n, 2, 4) x (1 - ramp(n, 32, 96)),
  composition = ramp(s, 0.03, 0.15) x (1 - ramp(s, 0.85, 0.97)), and miss_factor is the
  product of (1 - MISS_PENALTY[role]) over the roles whose prompt colour is missed (a wrong
  background or a green face is a visual fault a reviewer sees at once; a background that is
  `partly` right, PARTLY_SHARE of its penalty);
- prompt_score = 1 + 9 color_accuracy / 100; None when the prompt names no colour;
- overall_score = mean of the three (of the two without prompt_score) less the points a
  reviewer takes off for each fault the image shows (evaluators.faults.FAULT_POINTS: wrong
  background, wrong structure, not pixel art, wrong face colour), at least 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluators import bgjudge
from evaluators.accuracy import (
    COLOUR_MATCH_MODES,
    EXACT_THRESHOLD,
    ColorMatch,
    accuracy_of,
    judge_foreground,
)
from evaluators.background import estimate_background
from evaluators.color import merge_palette, to_lab
from evaluators.colornames import categories_of
from evaluators.faults import reviewed_overall
from evaluators.grid import GridResult, recover_grid
from evaluators.prompt import ParsedPrompt, parse_prompt
from evaluators.structure import Structure, analyse
from evaluators.style import StyleComponents, ramp, style_quality

NOT_PIXEL_ART_BELOW = 50.0
OFF_PALETTE_DELTA_E = 10.0
MISSING_DELTA_E = 20.0
TOO_MANY_COLORS = 48
# Fixed order of the issue names, so lists compare and read the same every time.
ISSUE_ORDER = ("wrong_background", "wrong_background_structure", "uneven_background",
               "wrong_skin", "wrong_hair", "missing_colors", "off_palette", "not_pixel_art",
               "blurry", "anti_aliasing", "too_many_colors", "too_few_colors", "empty_image",
               "grid_size_mismatch")
# Share of the visual score a missed colour takes away, by role (fitted on bench/judge).
MISS_PENALTY = {"background": 0.55, "skin": 0.55, "hair": 0.5, "clothing": 0.1, "eyes": 0.05,
                "lips": 0.05}
OTHER_MISS_PENALTY = 0.05
# A background that is `partly` right (evaluators.bgjudge) costs this share of a miss.
PARTLY_SHARE = 0.5


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
    background_structure: Structure | None = None
    background_structure_wanted: str | None = None
    overall_score: float | None = None
    expected_cells: int = 24
    background_outcome: str | None = None  # match | partly | miss (evaluators.bgjudge)

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
            "background_structure": None if self.background_structure is None else {
                **self.background_structure.to_dict(), "wanted": self.background_structure_wanted},
            "overall_score": r(self.overall_score, 2),
            "background_outcome": self.background_outcome,
            "expected_cells": self.expected_cells,
        }


def _issues(bg: bgjudge.BackgroundVerdict | None, matches: tuple[ColorMatch, ...],
            style: StyleComponents, unique: int, subject: float, size_mismatch: bool) -> tuple[str, ...]:
    found: set[str] = set()
    if bg is not None:
        if not bg.colour_ok:
            found.add("wrong_background")
        if not bg.structure_ok:
            found.add("wrong_background_structure")
        if bg.uneven:
            found.add("uneven_background")
    for m in matches:
        if m.role == "background" or m.delta_e is None:
            continue
        if m.match is False and m.role in ("skin", "hair"):
            found.add(f"wrong_{m.role}")
        elif m.match is False:
            # missed but near (under MISSING_DELTA_E) is off the palette; far is missing
            found.add("off_palette" if m.delta_e < MISSING_DELTA_E else "missing_colors")
        elif m.source == "hex" and m.delta_e >= OFF_PALETTE_DELTA_E:
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
    if size_mismatch:
        found.add("grid_size_mismatch")
    return tuple(name for name in ISSUE_ORDER if name in found)


def miss_factor(matches: tuple[ColorMatch, ...], partly_background: bool = False) -> float:
    factor = 1.0
    for role in {m.role for m in matches if m.match is False}:
        penalty = MISS_PENALTY.get(role, OTHER_MISS_PENALTY)
        factor *= 1.0 - (penalty * PARTLY_SHARE if role == "background" and partly_background else penalty)
    return factor


def score_image(rgb: np.ndarray, prompt: str | ParsedPrompt, cells: int = 24, *,
                colour_match: str = "category", exact_threshold: float = EXACT_THRESHOLD) -> ImageScore:
    """Score one (H, W, 3) uint8 image against a prompt (see module docstring).

    `cells` is the expected grid size; `colour_match` "category" (a reviewer's judgement) or
    "exact" (CIEDE2000 to the reference under `exact_threshold`)."""
    if colour_match not in COLOUR_MATCH_MODES:
        raise ValueError(f"colour_match must be one of {COLOUR_MATCH_MODES}, got {colour_match!r}")
    parsed = prompt if isinstance(prompt, ParsedPrompt) else parse_prompt(prompt)
    grid = recover_grid(rgb, cells)
    seen = grid.seen_cells if grid.seen_cells is not None else grid.cells
    lab = to_lab(seen)
    palette = merge_palette(seen, lab)
    unique = len(palette)
    categories = np.array(categories_of(palette.lab))   # "olive|green" when borderline
    cell_categories = categories[palette.labels.reshape(seen.shape[:2])]
    background = estimate_background(seen, lab)
    structure = analyse(lab)
    subject = float((~structure.mask).mean())

    verdict = None
    if parsed.backgrounds:
        verdict = bgjudge.judge(parsed.backgrounds, parsed.background_structure, structure, background,
                                lab, cell_categories, colour_match, exact_threshold)
    matches = list(verdict.matches) if verdict else []
    matches += judge_foreground(parsed.foreground, palette, categories, structure.mask, lab,
                                colour_match, exact_threshold)
    accuracy = accuracy_of(matches)
    style = style_quality(grid, lab, unique)

    q = style.quality / 100.0
    palette_fit = ramp(unique, 2, 4) * (1.0 - ramp(unique, 32, 96))
    composition = ramp(subject, 0.03, 0.15) * (1.0 - ramp(subject, 0.85, 0.97))
    visual = 1.0 + 9.0 * (0.6 * q + 0.2 * palette_fit + 0.2 * composition) * miss_factor(
        accuracy.matches, partly_background=verdict is not None and verdict.outcome == "partly")
    style_score = 1.0 + 9.0 * q
    prompt_score = None if accuracy.score is None else 1.0 + 9.0 * accuracy.score / 100.0
    parts = [v for v in (visual, style_score, prompt_score) if v is not None]
    size_mismatch = (grid.cells_x, grid.cells_y) != (cells, cells)
    issues = _issues(verdict, accuracy.matches, style, unique, subject, size_mismatch)

    return ImageScore(
        cells=grid.cells, grid=grid,
        background_hex=background.hex,
        background_delta_e=None if verdict is None else verdict.delta_e,
        background_match=None if verdict is None else verdict.match,
        background_outcome=None if verdict is None else verdict.outcome,
        background_coverage=None if verdict is None else verdict.coverage,
        color_accuracy=accuracy.score, per_color=accuracy.matches,
        style_quality=style.quality, style=style, unique_colors=unique, subject_share=subject,
        issues=issues,
        visual_score=visual, style_score=style_score, prompt_score=prompt_score,
        prompt_colors=tuple(c.to_dict() for c in parsed.colors),
        background_structure=structure, background_structure_wanted=parsed.background_structure,
        overall_score=reviewed_overall(sum(parts) / len(parts), {i: 1.0 for i in issues}),
        expected_cells=cells,
    )
