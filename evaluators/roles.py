"""Where each role's colour is in a portrait, on the recovered cells.

The subject is every cell the background model does not claim; its bounding box gives the
regions (fractions of the box, rows from the top):

- hair: the top band (0-0.35) plus the side strips (outer 0.22 of the width) of the upper
  0.6, skin and background excluded: the most common colour there;
- skin: the face box (rows 0.25-0.7, columns 0.25-0.75): its most common colour;
- clothing: the bottom band (0.78-1) minus the side strips, skin excluded: most common;
- eyes, lips: the face box (lips its lower half) minus the skin colour: the colour there
  closest to the target (small features; any cell showing it counts);
- outline, accessory, other: the whole subject, closest to the target.

"Colour" is a cluster of the merged palette (evaluators.color.merge_palette).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluators.color import delta_e

DOMINANT_ROLES = ("hair", "skin", "clothing")
NEAR_BACKGROUND = 8.0   # CIEDE2000: a colour this close to the top row's background is background


@dataclass(frozen=True)
class Regions:
    subject: np.ndarray     # (H, W) bool
    hair: np.ndarray
    face: np.ndarray
    lower_face: np.ndarray
    clothing: np.ndarray


def regions(background: np.ndarray) -> Regions:
    subject = ~background
    h, w = subject.shape
    if not subject.any():
        empty = np.zeros_like(subject)
        return Regions(subject, empty, empty, empty, empty)
    rows, cols = np.flatnonzero(subject.any(1)), np.flatnonzero(subject.any(0))
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    bh, bw = r1 - r0, c1 - c0
    yy, xx = np.mgrid[0:h, 0:w]
    fy, fx = (yy - r0 + 0.5) / bh, (xx - c0 + 0.5) / bw
    inside = subject & (fy >= 0) & (fy <= 1) & (fx >= 0) & (fx <= 1)
    side = (fx < 0.22) | (fx > 0.78)
    hair = inside & ((fy < 0.35) | (side & (fy < 0.6)))
    face = inside & (fy >= 0.25) & (fy < 0.7) & (fx >= 0.25) & (fx < 0.75)
    lower_face = face & (fy >= 0.47)
    clothing = inside & (fy >= 0.78) & ~side
    return Regions(subject, hair, face, lower_face, clothing)


def _most_common(labels: np.ndarray, where: np.ndarray, exclude: set[int]) -> int | None:
    values = labels[where]
    values = values[~np.isin(values, list(exclude))] if exclude else values
    if not values.size:
        return None
    return int(np.bincount(values).argmax())


def seen_clusters(labels: np.ndarray, background: np.ndarray, palette_lab: np.ndarray,
                  cells_lab: np.ndarray) -> dict[str, int | None]:
    """Palette cluster seen for each dominant role (None when the region is empty)."""
    reg = regions(background)
    bg_labels = set(np.unique(labels[background]).tolist()) if background.any() else set()
    # A background cluster is only excluded where it really is background (>50% of its cells),
    # and so is any colour of the top row's background (gradients, checkers, noise).
    bg_labels = {k for k in bg_labels if (background & (labels == k)).sum() > 0.5 * (labels == k).sum()}
    top = cells_lab[0][background[0]]
    if len(top):
        near_top = delta_e(palette_lab[:, None, :], top[None, :, :]).min(axis=1) < NEAR_BACKGROUND
        bg_labels |= set(np.flatnonzero(near_top).tolist())
    skin = _most_common(labels, reg.face, bg_labels)
    no_skin = bg_labels | ({skin} if skin is not None else set())
    return {
        "skin": skin,
        "hair": _most_common(labels, reg.hair, no_skin),
        "clothing": _most_common(labels, reg.clothing, no_skin),
    }


def candidate_mask(role: str, background: np.ndarray) -> np.ndarray:
    """Cells whose colours may stand for a small-feature role."""
    reg = regions(background)
    if role == "eyes":
        return reg.face
    if role == "lips":
        return reg.lower_face
    return reg.subject
