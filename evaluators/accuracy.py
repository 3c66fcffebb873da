"""Colour accuracy 0-100: each prompt colour judged where its role is, the way a reviewer does.

A colour is *met* (colour_match = "category", the default) when what the image shows there
falls in a category the target accepts (evaluators.colornames: "green (#00ff00)" is met by any
green, not by teal or olive; a borderline colour, "olive|green", by either) and, for specific
targets (a light / dark modifier, a name such as navy or lavender, a bare hex code), its lightness is within LIGHTNESS_BAND of the
reference, or it is within `exact_threshold` of the reference (CIEDE2000: the same colour
on either side of a category border); with colour_match = "exact" it is met when CIEDE2000 to the reference is under
`exact_threshold`. Exactness (CIEDE2000) is reported either way.

Where the colour is looked for: background (the border ring, see evaluators.background),
hair / skin / clothing (the most common colour of their region, evaluators.roles), eyes /
lips / outline / accessory / other (the region's colour that best meets the target).

Per colour score: met -> MET_FLOOR + (100 - MET_FLOOR) x max(0, 1 - dE / FULL_MISS_DELTA_E);
missed -> MISS_CEILING x max(0, 1 - dE / (1.5 FULL_MISS_DELTA_E)). Accuracy is the weighted
mean, background weighing BACKGROUND_WEIGHT, skin SKIN_WEIGHT, the others 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.color import Palette, delta_e, rgb_to_hex, to_lab
from evaluators.colornames import LIGHTNESS_BAND, accepted, primary
from evaluators.prompt import PromptColor
from evaluators.roles import DOMINANT_ROLES, candidate_mask, seen_clusters

FULL_MISS_DELTA_E = 40.0
MET_FLOOR = 60.0
MISS_CEILING = 30.0
BACKGROUND_WEIGHT = 2.0
SKIN_WEIGHT = 1.5
EXACT_THRESHOLD = 10.0
COLOUR_MATCH_MODES = ("category", "exact")


@dataclass(frozen=True)
class ColorMatch:
    hex: str
    role: str
    phrase: str
    matched_hex: str | None
    delta_e: float | None
    category: str = ""
    seen_category: str | None = None
    category_match: bool | None = None
    match: bool | None = None
    source: str = "hex"

    @property
    def score(self) -> float:
        if self.delta_e is None or self.match is None:
            return 0.0
        if self.match:
            return MET_FLOOR + (100.0 - MET_FLOOR) * max(0.0, 1.0 - self.delta_e / FULL_MISS_DELTA_E)
        return MISS_CEILING * max(0.0, 1.0 - self.delta_e / (1.5 * FULL_MISS_DELTA_E))

    def to_dict(self) -> dict[str, str | float | bool | None]:
        return {"hex": self.hex, "role": self.role, "phrase": self.phrase,
                "matched_hex": self.matched_hex,
                "delta_e": None if self.delta_e is None else round(self.delta_e, 3),
                "target": self.hex, "category": self.category, "seen_category": self.seen_category,
                "category_match": self.category_match, "match": self.match, "source": self.source}


@dataclass(frozen=True)
class ColorAccuracy:
    score: float | None          # 0-100, None when the prompt names no colour
    matches: tuple[ColorMatch, ...]


def target_lab(colour: PromptColor) -> np.ndarray:
    return to_lab(np.array(colour.rgb, dtype=np.uint8))


def meets(colour: PromptColor, lab: np.ndarray, category: np.ndarray | str, mode: str,
          threshold: float) -> np.ndarray:
    """Does each Lab colour (..., 3) with its category meet the target? (bool array)"""
    ref = target_lab(colour)
    if mode == "exact":
        return np.asarray(delta_e(lab, ref) < threshold)
    cats = np.asarray(category)
    accept = colour.accept or frozenset({colour.category})
    ok = np.vectorize(lambda c: accepted(str(c), accept), otypes=[bool])(cats) if cats.size \
        else np.zeros(cats.shape, dtype=bool)
    if colour.specific:
        ok = ok & (np.abs(np.asarray(lab)[..., 0] - ref[0]) <= LIGHTNESS_BAND)
    # Within the exact threshold of the reference a reviewer sees the same colour, whatever
    # side of a category border both sit on.
    return np.asarray(ok | (delta_e(lab, ref) < threshold))


def weight_of(role: str) -> float:
    return BACKGROUND_WEIGHT if role == "background" else SKIN_WEIGHT if role == "skin" else 1.0


def judge_foreground(colours: tuple[PromptColor, ...], palette: Palette, categories: np.ndarray,
                     background_mask: np.ndarray, cells_lab: np.ndarray, mode: str,
                     threshold: float) -> list[ColorMatch]:
    """Each non-background prompt colour against what its region shows."""
    if not colours:
        return []
    n_rows, n_cols = background_mask.shape
    labels = palette.labels.reshape(n_rows, n_cols)
    dominant = seen_clusters(labels, background_mask, palette.lab, cells_lab)
    out: list[ColorMatch] = []
    for colour in colours:
        ref = target_lab(colour)
        cluster = dominant.get(colour.role) if colour.role in DOMINANT_ROLES else None
        if cluster is None:
            where = candidate_mask(colour.role, background_mask)
            pool = np.unique(labels[where]) if where.any() else np.arange(len(palette))
            ok = meets(colour, palette.lab[pool], categories[pool], mode, threshold)
            dist = delta_e(palette.lab[pool], ref[None, :])
            # Prefer a colour that meets the target; the nearest such, else the nearest.
            order = np.lexsort((dist, ~ok))
            cluster = int(pool[order[0]])
        lab = palette.lab[cluster]
        cat = str(categories[cluster])
        met = bool(meets(colour, lab, cat, mode, threshold))
        out.append(ColorMatch(colour.hex, colour.role, colour.phrase, rgb_to_hex(palette.rgb[cluster]),
                              float(delta_e(lab, ref)), colour.category, primary(cat),
                              accepted(cat, colour.accept) if colour.accept else None, met, colour.source))
    return out


def accuracy_of(matches: list[ColorMatch]) -> ColorAccuracy:
    if not matches:
        return ColorAccuracy(score=None, matches=())
    weights = np.array([weight_of(m.role) for m in matches])
    scores = np.array([m.score for m in matches])
    return ColorAccuracy(score=float(np.dot(scores, weights) / weights.sum()), matches=tuple(matches))
