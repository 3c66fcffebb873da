"""Style quality 0-100: how much an image is real pixel art.

Components, each 0-1 (ramp(x, a, b) = 0 at a, 1 at b, linear between):

- grid       G = ramp(strength, 0.15, 0.45): first-harmonic share of the edge energy at the
               recovered pitch (edges sit on one regular grid).
- sharpness  S = ramp(sharpness, 0.05, 0.30): second-harmonic share (edges are crisp, not
               blurred or smoothly interpolated).
- uniformity U = 1 - ramp(d90, 4, 12): d90 is the 90th percentile over cells of the mean
               |pixel - cell colour| inside the cell's inner area, in RGB levels.
- palette    P = 1 - ramp(unique colours, 32, 96).
- no_aa      A = 1 - ramp(soft, 0.3, 0.7): soft is the share of colour steps between
               neighbouring cells that are small (CIEDE2000 3-12, anti-aliasing / gradients)
               among all steps above 3.

style = 100 x grid_quality x content, grid_quality = (G + S) / 2 and
content = 0.4 U + 0.3 P + 0.3 A. With a pixel or two per cell (G and S unmeasurable)
style = 100 x content.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evaluators.color import delta_e
from evaluators.grid import GridResult

STEP_SAME = 3.0      # neighbouring cells closer than this are the same colour
STEP_SOFT = 12.0     # steps below this (and above STEP_SAME) are soft


def ramp(value: float, low: float, high: float) -> float:
    return float(np.clip((value - low) / (high - low), 0.0, 1.0))


@dataclass(frozen=True)
class StyleComponents:
    grid: float | None
    sharpness: float | None
    uniformity: float
    palette: float
    no_antialiasing: float
    quality: float           # 0-100

    def to_dict(self) -> dict[str, float | None]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 4)
        return {"grid": r(self.grid), "sharpness": r(self.sharpness),
                "uniformity": r(self.uniformity), "palette": r(self.palette),
                "no_antialiasing": r(self.no_antialiasing)}


def soft_step_share(cells_lab: np.ndarray) -> float:
    """Share of colour steps between 4-neighbours that are soft (see module docstring)."""
    steps = np.concatenate([
        delta_e(cells_lab[:, 1:], cells_lab[:, :-1]).ravel(),
        delta_e(cells_lab[1:], cells_lab[:-1]).ravel(),
    ])
    edges = steps > STEP_SAME
    if not edges.any():
        return 0.0
    return float((edges & (steps < STEP_SOFT)).sum() / edges.sum())


def _geo(a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b):
        return None
    return math.sqrt(max(a, 0.0) * max(b, 0.0))


def style_quality(grid: GridResult, cells_lab: np.ndarray, unique_colors: int) -> StyleComponents:
    strength = _geo(grid.strength_x, grid.strength_y)
    sharp = _geo(grid.sharpness_x, grid.sharpness_y)
    g = None if strength is None else ramp(strength, 0.15, 0.45)
    s = None if sharp is None else ramp(sharp, 0.05, 0.30)
    u = 1.0 - ramp(float(np.percentile(grid.inner_deviation, 90)), 4.0, 12.0)
    p = 1.0 - ramp(float(unique_colors), 32.0, 96.0)
    a = 1.0 - ramp(soft_step_share(cells_lab), 0.3, 0.7)
    content = 0.4 * u + 0.3 * p + 0.3 * a
    grid_quality = 1.0 if g is None or s is None else (g + s) / 2
    return StyleComponents(grid=g, sharpness=s, uniformity=u, palette=p, no_antialiasing=a,
                           quality=100.0 * grid_quality * content)
