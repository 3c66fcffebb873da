"""Background: the dominant colour of the recovered image's border ring, and whether it is
the prompt's background colour all around.

Portraits touch the bottom (shoulders) and often a side (hair), so the ring is weighted
towards the top: top row 1, upper halves of the side columns 1, their lower halves 0.5,
bottom row 0.25. The background colour is the ring colour with the most weighted support
(ring cells within MATCH_DELTA_E of it), averaged over that support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.color import delta_e, rgb_to_hex

# A background is the prompt's colour when closer than this (CIEDE2000); near-miss greens
# and teals sit at 15 or more.
MATCH_DELTA_E = 10.0
# Share of each part of the ring that must show the prompt's background colour.
MIN_TOP = 0.5
MIN_SIDE = 0.4
MIN_RING = 0.6


@dataclass(frozen=True)
class Background:
    rgb: np.ndarray          # (3,) uint8
    lab: np.ndarray          # (3,)
    ring_share: float        # weighted share of the ring within MATCH_DELTA_E of it

    @property
    def hex(self) -> str:
        return rgb_to_hex(self.rgb)


@dataclass(frozen=True)
class BackgroundJudgement:
    delta_e: float                  # estimated background vs the prompt's colour
    coverage: dict[str, float]      # top / left / right / bottom / ring: share showing the prompt's colour
    match: bool
    uneven: bool                    # the colour is right but it is not there all around


def ring_masks(cells: int, width: int | None = None) -> dict[str, np.ndarray]:
    """Boolean (rows, cols) masks of the ring's sides (square unless `width` is given)."""
    rows, cols = np.meshgrid(np.arange(cells), np.arange(cells if width is None else width), indexing="ij")
    last_r, last_c = rows.shape[0] - 1, rows.shape[1] - 1
    return {
        "top": rows == 0, "bottom": rows == last_r, "left": cols == 0, "right": cols == last_c,
        "ring": (rows == 0) | (rows == last_r) | (cols == 0) | (cols == last_c),
    }


def ring_weights(rows_n: int, cols_n: int) -> np.ndarray:
    masks = ring_masks(rows_n, cols_n)
    rows = np.arange(rows_n)[:, None] * np.ones((1, cols_n))
    weights = np.zeros((rows_n, cols_n))
    sides = masks["left"] | masks["right"]
    weights[sides] = np.where(rows[sides] < rows_n / 2, 1.0, 0.5)
    weights[masks["bottom"]] = 0.25
    weights[masks["top"]] = 1.0
    return weights


def estimate_background(cells_rgb: np.ndarray, cells_lab: np.ndarray) -> Background:
    """Dominant colour of the border ring (see module docstring)."""
    weights = ring_weights(*cells_rgb.shape[:2])
    ring = weights > 0
    lab, rgb, w = cells_lab[ring], cells_rgb[ring].astype(float), weights[ring]
    close = delta_e(lab[:, None, :], lab[None, :, :]) < MATCH_DELTA_E     # (R, R)
    support = close.astype(float) @ w
    members = close[int(np.argmax(support))]
    mw = w[members]
    centre_rgb = (rgb[members] * mw[:, None]).sum(0) / mw.sum()
    centre_lab = (lab[members] * mw[:, None]).sum(0) / mw.sum()
    return Background(
        rgb=np.clip(np.rint(centre_rgb), 0, 255).astype(np.uint8),
        lab=centre_lab,
        ring_share=float(mw.sum() / w.sum()),
    )


def judge_background(background: Background, cells_lab: np.ndarray,
                     target_lab: np.ndarray) -> BackgroundJudgement:
    """Is the background the prompt's colour, and is it that colour all around?"""
    near = delta_e(cells_lab, np.asarray(target_lab)[None, None, :]) < MATCH_DELTA_E
    coverage = {side: float(near[mask].mean()) for side, mask in ring_masks(*cells_lab.shape[:2]).items()}
    distance = float(delta_e(background.lab, target_lab))
    colour_ok = distance < MATCH_DELTA_E
    all_around = (coverage["top"] >= MIN_TOP and coverage["left"] >= MIN_SIDE
                  and coverage["right"] >= MIN_SIDE and coverage["ring"] >= MIN_RING)
    return BackgroundJudgement(
        delta_e=distance, coverage=coverage, match=colour_ok and all_around,
        uneven=colour_ok and not all_around,
    )
