"""Is the background the prompt's? Colour(s) all around, and the structure asked for.

Colour: the ring cells meeting each background target (category or exact, see
evaluators.accuracy.meets). One target: it must cover at least MIN_TOP of the top row,
MIN_SIDE of each side column and MIN_RING of the ring. Several targets ("blue to purple
gradient", "black and white checkered"): together they must cover that, and each at least
MIN_EACH of the weighted ring (a two-colour gradient: the tones between them count, and each
shows on MIN_EACH_RAMP). Structure: "solid X" needs a solid background, "X gradient"
a gradient, "checkered" a checker, "two-tone" two tones (evaluators.structure).
A colour that is right but not all around adds `uneven_background`.

Outcome: `match`; `partly` when the asked colours are all around but not as asked (a solid
X where "X gradient" or "X and Y checkered" was asked, one colour of "X to Y gradient"
missing, a gradient where "solid X" was asked): not a match (background_match false) and
not a miss (half the visual penalty, counted apart in background_partly_rate); `miss`
when the asked colours are not all around.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.accuracy import ColorMatch, meets, target_lab
from evaluators.background import MIN_RING, MIN_SIDE, MIN_TOP, Background, ring_weights
from evaluators.color import delta_e, rgb_to_hex
from evaluators.colornames import accepted, categories_of, primary
from evaluators.prompt import PromptColor
from evaluators.structure import Structure, ring_masks_hw

MIN_EACH = 0.15
MIN_EACH_RAMP = 0.05


@dataclass(frozen=True)
class BackgroundVerdict:
    match: bool
    outcome: str          # match | partly | miss (see the module docstring)
    colour_ok: bool
    structure_ok: bool
    uneven: bool
    delta_e: float
    coverage: dict[str, float]
    matches: tuple[ColorMatch, ...]


def _lab_to_hex(lab: np.ndarray) -> str:
    from skimage.color import lab2rgb

    return rgb_to_hex(np.clip(lab2rgb(np.asarray(lab, dtype=float)[None, None, :])[0, 0] * 255, 0, 255))


def judge(targets: tuple[PromptColor, ...], requested: str | None, structure: Structure,
          background: Background, cells_lab: np.ndarray, cell_categories: np.ndarray,
          mode: str, threshold: float) -> BackgroundVerdict:
    h, w = cells_lab.shape[:2]
    masks = ring_masks_hw(h, w)
    weights = ring_weights(h, w)
    each = [meets(t, cells_lab, cell_categories, mode, threshold) for t in targets]
    colours = np.logical_or.reduce(each)
    ramp = len(targets) > 1 and requested == "gradient" and structure.kind == "gradient"
    # "X to Y gradient": the tones between X and Y are the gradient too (black to white
    # passes through grey), and Y may sit low, behind the portrait
    union = colours | structure.mask if ramp else colours

    def around(cells: np.ndarray) -> tuple[bool, dict[str, float]]:
        cover = {side: float(cells[m].mean()) for side, m in masks.items()}
        return (cover["top"] >= MIN_TOP and cover["left"] >= MIN_SIDE and cover["right"] >= MIN_SIDE
                and cover["ring"] >= MIN_RING), cover

    all_around, coverage = around(union)
    shares = [float((weights * e).sum() / weights.sum()) for e in each]
    least = MIN_EACH_RAMP if ramp else MIN_EACH
    enough_each = len(targets) == 1 or min(shares) >= least
    colour_ok = all_around and enough_each
    structure_ok = requested is None or structure.kind == requested or (
        requested == "two_tone" and structure.kind == "gradient" and len(targets) > 1)
    first_meets = bool(meets(targets[0], background.lab, categories_of(background.lab)[0], mode, threshold))
    matches = []
    for t, share in zip(targets, shares, strict=True):
        ref = target_lab(t)
        # What the ring shows for this target: the structure colour closest to it.
        seen = min(structure.colors_lab, key=lambda c: float(delta_e(c, ref)))
        seen_cat = categories_of(seen)[0]
        ok = colour_ok and structure_ok and (len(targets) == 1 or share >= least)
        matches.append(ColorMatch(t.hex, t.role, t.phrase, _lab_to_hex(seen), float(delta_e(seen, ref)),
                                  t.category, primary(seen_cat), accepted(seen_cat, t.accept) if t.accept else None,
                                  ok, t.source))
    match = colour_ok and structure_ok
    return BackgroundVerdict(
        match=match, outcome="match" if match else "partly" if around(colours)[0] else "miss",
        colour_ok=colour_ok, structure_ok=structure_ok,
        uneven=first_meets and not all_around,
        delta_e=float(delta_e(background.lab, target_lab(targets[0]))),
        coverage=coverage, matches=tuple(matches))
