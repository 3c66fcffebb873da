"""Background structure: solid / gradient / two_tone / checkered / noisy, from the border ring of
the recovered cells (weighted towards the top, as in evaluators.background: portraits touch
the bottom and the sides).

- gradient: Lab is a plane in (x, y) over the ring (weighted least squares), at least
  FIT_SHARE of the ring within FIT_DELTA_E of the plane, the plane spans GRADIENT_SPAN, and
  on those cells the plane's median error is under GRADIENT_GAIN x that of the one colour;
- solid: one colour (within MATCH_DELTA_E) covers at least SOLID_SHARE of the ring;
- checkered / two_tone: two colours cover TWO_SHARE of the ring, the second at least
  SECOND_SHARE; checkered when the colour flips with the parity of square blocks of 1-4
  cells (PARITY_AGREE of the ring agrees), two_tone otherwise;
- noisy: none of these.

`is_background(lab)` is the per-cell predicate of the chosen model; `coverage` is the share of
the ring it explains.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.background import MATCH_DELTA_E, ring_masks, ring_weights
from evaluators.color import delta_e

SOLID_SHARE = 0.8
FIT_DELTA_E = 6.0
FIT_SHARE = 0.65
GRADIENT_SPAN = 12.0
GRADIENT_GAIN = 0.5
EXEMPLAR_DELTA_E = 5.0
TWO_SHARE = 0.75
SECOND_SHARE = 0.15
PARITY_AGREE = 0.85
FALLBACK_SOLID = 0.55


@dataclass(frozen=True)
class Structure:
    kind: str                        # solid | gradient | two_tone | checkered | noisy
    coverage: float                  # weighted share of the ring the model explains
    colors_lab: tuple[np.ndarray, ...]   # the main colour(s): 1 for solid, 2 for the others
    mask: np.ndarray                 # (H, W) bool: cells the model calls background

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "coverage": round(self.coverage, 3)}


def ring_masks_hw(h: int, w: int) -> dict[str, np.ndarray]:
    return ring_masks(h, w)


def _dominant(lab: np.ndarray, w: np.ndarray, close: np.ndarray, allowed: np.ndarray) -> tuple[int, np.ndarray]:
    support = (close & allowed[None, :]).astype(float) @ (w * allowed)
    support[~allowed] = -1.0
    best = int(np.argmax(support))
    return best, close[best] & allowed


def _checker_agreement(pos: np.ndarray, second: np.ndarray, w: np.ndarray) -> float:
    """Best share of ring cells whose colour (first / second) follows a checker parity."""
    best = 0.0
    for size in (1, 2, 3, 4):
        for oy in range(size):
            for ox in range(size):
                parity = (((pos[:, 0] + oy) // size + (pos[:, 1] + ox) // size) % 2).astype(bool)
                agree = float((w * (parity == second)).sum() / w.sum())
                best = max(best, agree, 1.0 - agree)
    return best


def analyse(cells_lab: np.ndarray) -> Structure:
    h, w_ = cells_lab.shape[:2]
    weights = ring_weights(h, w_)
    ring = weights > 0
    lab, w = cells_lab[ring], weights[ring]
    pos = np.argwhere(ring)
    total = w.sum()
    close = delta_e(lab[:, None, :], lab[None, :, :]) < MATCH_DELTA_E
    everything = np.ones(len(lab), dtype=bool)
    first, members = _dominant(lab, w, close, everything)
    s1 = float(w[members].sum() / total)
    c1 = lab[members].mean(0)
    # Gradient: a plane in Lab over (x, y), fitted to the ring, explaining it clearly better
    # than one colour (a slow gradient keeps every step under the solid threshold).
    design = np.column_stack([np.ones(len(pos)), pos[:, 1] / max(w_ - 1, 1), pos[:, 0] / max(h - 1, 1)])
    sw = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * sw, lab * sw, rcond=None)
    resid = delta_e(lab, design @ coef)
    fit_share = float(w[resid < FIT_DELTA_E].sum() / total)
    flat = delta_e(lab, c1[None, :])
    corners = np.array([[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]], dtype=float) @ coef
    span = float(delta_e(corners[:, None, :], corners[None, :, :]).max())
    inliers = resid < FIT_DELTA_E
    better = inliers.any() and float(np.median(resid[inliers])) < GRADIENT_GAIN * float(np.median(flat[inliers]))
    if fit_share >= FIT_SHARE and span >= GRADIENT_SPAN and better:
        yy, xx = np.mgrid[0:h, 0:w_]
        plane = np.stack([np.ones_like(xx, dtype=float), xx / max(w_ - 1, 1), yy / max(h - 1, 1)], -1) @ coef
        mask = delta_e(cells_lab, plane) < FIT_DELTA_E * 1.5
        # A shading that is not quite planar in Lab: cells close to a ring cell the plane
        # explains are background too.
        exemplars = lab[inliers]
        near = delta_e(cells_lab[..., None, :], exemplars[None, None, :, :]).min(axis=-1) < EXEMPLAR_DELTA_E
        return Structure("gradient", fit_share, (corners[0], corners[3]), mask | near)
    if s1 >= SOLID_SHARE:
        return _solid(cells_lab, c1, s1)
    rest = ~members
    if rest.any():
        _, members2 = _dominant(lab, w, close, rest)
        s2 = float(w[members2].sum() / total)
        if s2 >= SECOND_SHARE and s1 + s2 >= TWO_SHARE:
            c2 = lab[members2].mean(0)
            both = members | members2
            agree = _checker_agreement(pos[both], members2[both], w[both])
            kind = "checkered" if agree >= PARITY_AGREE else "two_tone"
            mask = (delta_e(cells_lab, c1[None, None, :]) < MATCH_DELTA_E) | \
                   (delta_e(cells_lab, c2[None, None, :]) < MATCH_DELTA_E)
            return Structure(kind, s1 + s2, (c1, c2), mask)
    if s1 >= FALLBACK_SOLID:
        return _solid(cells_lab, c1, s1)
    return Structure("noisy", s1, (c1,), delta_e(cells_lab, c1[None, None, :]) < MATCH_DELTA_E)


def _solid(cells_lab: np.ndarray, colour: np.ndarray, share: float) -> Structure:
    return Structure("solid", share, (colour,), delta_e(cells_lab, colour[None, None, :]) < MATCH_DELTA_E)
