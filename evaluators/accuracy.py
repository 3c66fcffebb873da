"""Colour accuracy 0-100: the prompt's colours against the image's palette.

The background colour is judged by its role: the prompt's background hex against the
estimated background (border ring). Every other prompt colour is matched one-to-one to a
palette colour (background cluster excluded) by optimal assignment on CIEDE2000 costs;
a prompt colour left over (more prompt colours than palette colours) takes its nearest
palette colour. Each colour scores 100 x max(0, 1 - dE / FULL_MISS_DELTA_E); the result is
their weighted mean, the background weighing BACKGROUND_WEIGHT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from evaluators.background import MATCH_DELTA_E, Background
from evaluators.color import Palette, delta_e, rgb_to_hex, to_lab
from evaluators.prompt import ParsedPrompt

FULL_MISS_DELTA_E = 40.0
BACKGROUND_WEIGHT = 2.0


@dataclass(frozen=True)
class ColorMatch:
    hex: str
    role: str
    phrase: str
    matched_hex: str | None
    delta_e: float | None

    @property
    def score(self) -> float:
        if self.delta_e is None:
            return 0.0
        return 100.0 * max(0.0, 1.0 - self.delta_e / FULL_MISS_DELTA_E)

    def to_dict(self) -> dict[str, str | float | None]:
        return {"hex": self.hex, "role": self.role, "phrase": self.phrase,
                "matched_hex": self.matched_hex,
                "delta_e": None if self.delta_e is None else round(self.delta_e, 3)}


@dataclass(frozen=True)
class ColorAccuracy:
    score: float | None          # 0-100, None when the prompt has no hex codes
    matches: tuple[ColorMatch, ...]


def color_accuracy(prompt: ParsedPrompt, palette: Palette, background: Background) -> ColorAccuracy:
    if not prompt.colors:
        return ColorAccuracy(score=None, matches=())
    bg_color = prompt.background
    matches: list[ColorMatch] = []
    weights: list[float] = []
    if bg_color is not None:
        d = float(delta_e(background.lab, to_lab(np.array(bg_color.rgb, dtype=np.uint8))))
        matches.append(ColorMatch(bg_color.hex, bg_color.role, bg_color.phrase, background.hex, d))
        weights.append(BACKGROUND_WEIGHT)
    foreground = prompt.foreground
    if foreground:
        # The background's own cluster cannot stand in for a foreground colour.
        keep = delta_e(palette.lab, background.lab[None, :]) >= MATCH_DELTA_E
        if not keep.any():
            keep[:] = True
        pal_lab, pal_rgb = palette.lab[keep], palette.rgb[keep]
        fg_lab = to_lab(np.array([c.rgb for c in foreground], dtype=np.uint8))
        cost = delta_e(fg_lab[:, None, :], pal_lab[None, :, :])             # (P, K)
        rows, cols = linear_sum_assignment(cost)
        chosen = dict(zip(rows.tolist(), cols.tolist(), strict=True))
        for i, colour in enumerate(foreground):
            j = chosen.get(i, int(np.argmin(cost[i])))
            matches.append(ColorMatch(colour.hex, colour.role, colour.phrase,
                                      rgb_to_hex(pal_rgb[j]), float(cost[i, j])))
            weights.append(1.0)
    scores = np.array([m.score for m in matches])
    total = float(np.dot(scores, weights) / np.sum(weights))
    return ColorAccuracy(score=total, matches=tuple(matches))
