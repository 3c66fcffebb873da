"""Grid recovery: find the logical N x N pixel grid of a "fake pixel art" image.

Each axis is solved on its own from the edge-energy projection (sum of absolute colour
differences between neighbouring columns, or rows): the pitch is the frequency near W/N
where that profile is most periodic, the phase comes from the same Fourier coefficient,
and both are refined by a weighted straight-line fit of the edge peaks to their grid
indices. The N cells are the ones centred on the image. Each cell's colour is the
per-channel median of its inner area (the middle half, away from blurred boundaries).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import median_filter

# Pitch search range around W/N (the generator drifts by up to 3%).
PITCH_RANGE = 0.06
PITCH_STEPS = 241
# Share of a cell kept away from its boundaries on each side when sampling its colour.
INNER_MARGIN = 0.25
MAX_SAMPLES_PER_AXIS = 12
# Below this many pixels per cell there is no sub-cell structure to measure.
MIN_SEARCH_PITCH = 3.0


@dataclass(frozen=True)
class AxisGrid:
    pitch: float
    offset: float     # coordinate of cell 0's leading edge (px, may be negative)
    strength: float   # 0-1: edge energy periodic at `pitch` (first harmonic), per unit energy
    sharpness: float  # 0-1: the same at the second harmonic; blur and smooth ramps kill it


@dataclass(frozen=True)
class GridResult:
    cells: np.ndarray            # (N, N, 3) uint8, the recovered image
    cells_x: int
    cells_y: int
    pitch_x: float
    pitch_y: float
    offset_x: float
    offset_y: float
    strength_x: float
    strength_y: float
    sharpness_x: float
    sharpness_y: float
    inner_deviation: np.ndarray  # (N, N) mean |pixel - cell colour| in the inner area, RGB levels

    def to_dict(self) -> dict[str, float | int]:
        return {
            "cells_x": self.cells_x, "cells_y": self.cells_y,
            "pitch_x": round(self.pitch_x, 4), "pitch_y": round(self.pitch_y, 4),
            "offset_x": round(self.offset_x, 3), "offset_y": round(self.offset_y, 3),
        }


def edge_profile(rgb: np.ndarray, axis: int) -> np.ndarray:
    """Edge energy at each internal boundary along `axis` (1: columns, 0: rows), with the
    local noise / texture floor (running median) removed."""
    length = rgb.shape[axis] - 1
    profile = np.zeros(max(length, 0), dtype=np.int64)
    for channel in range(3):   # one channel at a time keeps big images' temporaries small
        plane = rgb[..., channel].astype(np.int16)
        diff = np.diff(plane, axis=axis)
        np.abs(diff, out=diff)
        profile += diff.sum(axis=1 - axis, dtype=np.int64)
    return profile.astype(float)


def _floor_removed(profile: np.ndarray, pitch: float) -> np.ndarray:
    size = max(3, int(round(pitch)) | 1)
    return np.clip(profile - median_filter(profile, size=size, mode="nearest"), 0.0, None)


def _fourier(profile: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Fourier coefficient of the profile at frequency 1/pitch, boundary b at coordinate b+1."""
    coords = np.arange(1, profile.shape[0] + 1, dtype=float)
    angles = (-2.0 * np.pi / pitches)[:, None] * coords[None, :]
    return (np.cos(angles) @ profile) + 1j * (np.sin(angles) @ profile)


def _edge_peaks(profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel positions and weights of the profile's local maxima."""
    if profile.size < 3 or profile.max() <= 0:
        return np.empty(0), np.empty(0)
    p = profile
    is_peak = (p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:]) & (p[1:-1] > 0.05 * p.max())
    idx = np.flatnonzero(is_peak) + 1
    window = np.arange(-2, 3)
    cols = np.clip(idx[:, None] + window[None, :], 0, p.size - 1)
    vals = p[cols]
    weight = vals.sum(axis=1)
    centre = (cols * vals).sum(axis=1) / np.maximum(weight, 1e-12)
    return centre + 1.0, weight  # boundary after sample i sits at coordinate i + 1


def _refine(peaks: np.ndarray, weights: np.ndarray, pitch: float, phase: float,
            lo: float, hi: float) -> tuple[float, float]:
    """Weighted least squares of peak = phase + k * pitch over the peaks' grid indices."""
    for _ in range(3):
        k = np.rint((peaks - phase) / pitch)
        resid = peaks - (phase + k * pitch)
        keep = np.abs(resid) < 0.3 * pitch
        if keep.sum() < 3 or np.unique(k[keep]).size < 2:
            break
        w, kk, y = weights[keep], k[keep], peaks[keep]
        design = np.stack([np.ones_like(kk), kk], axis=1) * np.sqrt(w)[:, None]
        (new_phase, new_pitch), *_ = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)
        if not lo <= new_pitch <= hi:
            break
        phase, pitch = float(new_phase), float(new_pitch)
    return pitch, phase


def fit_axis(profile: np.ndarray, length: int, cells: int) -> AxisGrid:
    """Pitch, offset and periodic strength of one axis from its edge profile."""
    nominal = length / cells
    if nominal < MIN_SEARCH_PITCH or profile.size < 3:
        # A pixel or two per cell: no sub-cell structure, the grid cannot be judged.
        return AxisGrid(pitch=nominal, offset=0.0, strength=float("nan"), sharpness=float("nan"))
    clean = _floor_removed(profile, nominal)
    total = clean.sum()
    if total <= 0:
        return AxisGrid(pitch=nominal, offset=0.0, strength=0.0, sharpness=0.0)
    lo, hi = nominal * (1 - PITCH_RANGE), nominal * (1 + PITCH_RANGE)
    pitches = np.linspace(lo, hi, PITCH_STEPS)
    coeffs = _fourier(clean, pitches)
    best = int(np.argmax(np.abs(coeffs)))
    pitch = float(pitches[best])
    phase = float((-np.angle(coeffs[best]) * pitch / (2 * np.pi)) % pitch)
    peaks, weights = _edge_peaks(clean)
    if peaks.size:
        pitch, phase = _refine(peaks, weights, pitch, phase, lo, hi)
    strength, sharpness = _periodicity(profile, pitch)
    offset = _choose_offset(clean, pitch, phase, length, cells)
    return AxisGrid(pitch=pitch, offset=offset, strength=strength, sharpness=sharpness)


def _periodicity(profile: np.ndarray, pitch: float) -> tuple[float, float]:
    """First- and second-harmonic share of the edge energy at `pitch`. Only the global
    noise floor is removed here (a running median would sharpen blurred edges)."""
    above_floor = np.clip(profile - np.percentile(profile, 10), 0.0, None)
    total = above_floor.sum()
    if total <= 0:
        return 0.0, 0.0
    first, second = np.abs(_fourier(above_floor, np.array([pitch, pitch / 2]))) / total
    return min(float(first), 1.0), min(float(second), 1.0)


def _choose_offset(clean: np.ndarray, pitch: float, phase: float, length: int, cells: int) -> float:
    """Which N of the grid's cells are the image: the centred ones, unless the other
    near-centred choice leaves clearly less edge energy on or beyond its outer lines
    (content at the image border tells where the grid really ends)."""
    centring = (phase + cells * pitch / 2 - length / 2) / pitch
    nearest = float(np.rint(centring))
    other = nearest + (1.0 if centring > nearest else -1.0)
    coords = np.arange(1, clean.size + 1, dtype=float)
    total = clean.sum()

    def outside_energy(shift: float) -> float:
        start = phase - shift * pitch
        end = start + cells * pitch
        outside = (coords <= start + pitch / 4) | (coords >= end - pitch / 4)
        return float(clean[outside].sum())

    e_nearest, e_other = outside_energy(nearest), outside_energy(other)
    shift = other if e_nearest - e_other > 0.02 * total else nearest
    return float(phase - shift * pitch)


def _sample_positions(axis: AxisGrid, cells: int, length: int) -> np.ndarray:
    """(cells, k) pixel indices inside each cell's inner area, clipped to the image."""
    starts = axis.offset + np.arange(cells) * axis.pitch
    ends = starts + axis.pitch
    margin = INNER_MARGIN * axis.pitch
    # The image border is not a colour boundary, so no margin is kept against it.
    lo = np.maximum(starts + margin, 0.0)
    hi = np.minimum(ends - margin, float(length))
    thin = hi - lo < 1.0
    visible_mid = (np.maximum(starts, 0.0) + np.minimum(ends, float(length))) / 2
    lo = np.where(thin, visible_mid - 0.5, lo)
    hi = np.where(thin, visible_mid + 0.5, hi)
    k = int(np.clip(round((1 - 2 * INNER_MARGIN) * axis.pitch), 1, MAX_SAMPLES_PER_AXIS))
    frac = (np.arange(k) + 0.5) / k
    coords = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
    return np.clip(np.floor(coords).astype(np.int64), 0, length - 1)


def sample_cells(rgb: np.ndarray, grid_x: AxisGrid, grid_y: AxisGrid,
                 cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Robust colour (median) and inner deviation of every cell."""
    height, width = rgb.shape[:2]
    xs = _sample_positions(grid_x, cells, width)
    ys = _sample_positions(grid_y, cells, height)
    block = rgb[ys[:, None, :, None], xs[None, :, None, :]]          # (N, N, ky, kx, 3)
    block = block.reshape(cells, cells, -1, 3).transpose(0, 1, 3, 2)  # (N, N, 3, S)
    colour = np.median(block, axis=-1)
    deviation = np.abs(block - colour[..., None]).mean(axis=(-1, -2))
    return np.clip(np.rint(colour), 0, 255).astype(np.uint8), deviation


def recover_grid(rgb: np.ndarray, cells: int = 24) -> GridResult:
    """The image's logical N x N pixels (always exactly `cells` x `cells`)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError("expected an (H, W, 3) uint8 RGB array")
    if cells < 1:
        raise ValueError("cells must be at least 1")
    height, width = arr.shape[:2]
    if min(height, width) < cells:
        raise ValueError(f"image is {width}x{height} px, smaller than the {cells}-cell grid")
    grid_x = fit_axis(edge_profile(arr, axis=1), width, cells)
    grid_y = fit_axis(edge_profile(arr, axis=0), height, cells)
    colour, deviation = sample_cells(arr, grid_x, grid_y, cells)
    return GridResult(
        cells=colour, cells_x=cells, cells_y=cells,
        pitch_x=grid_x.pitch, pitch_y=grid_y.pitch,
        offset_x=grid_x.offset, offset_y=grid_y.offset,
        strength_x=grid_x.strength, strength_y=grid_y.strength,
        sharpness_x=grid_x.sharpness, sharpness_y=grid_y.sharpness,
        inner_deviation=deviation,
    )
