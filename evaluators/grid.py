"""Grid recovery: find the logical N x N pixel grid of a "fake pixel art" image.

Each axis is solved on its own from the edge-energy projection (sum of absolute colour
differences between neighbouring columns, or rows): the pitch is the frequency near W/N
where that profile is most periodic, the phase comes from the same Fourier coefficient,
and both are refined by a weighted straight-line fit of the edge peaks to their grid
indices. Of the border cells, those the image shows mostly are kept; near half a cell, a
border cell whose pixels merely continue its neighbour (filler) is dropped before one set
off from it (content), then the grid most centred on the fitted pitch and phase wins. Each
cell's colour is the per-channel median of its inner area (the middle half, away from
blurred boundaries); where blur still reaches in (fine grids), the share of each neighbour
it mixes in is measured from the cells themselves and undone (`leakage`, `unblur`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
from scipy.linalg import solve_banded
from scipy.ndimage import median_filter

# Pitch search range around W/N: wide enough for SDXL-like outputs whose cells are 19-26 px
# where 21.3 px is expected, narrow enough (ratio under 2) that no harmonic of the pitch fits.
PITCH_LOW, PITCH_HIGH = 0.72, 1.38
PITCH_STEPS = 321
# A grid line snaps to an edge peak within this share of a pitch of where it is predicted
# (uneven cells); lines with no peak near keep the running pitch.
SNAP = 0.3
# A border cell counts when at least this much of it is in the image; near a half cell the
# count closest to the expected one wins.
BORDER_VISIBLE = 0.5
BORDER_TIE = 0.35
PEAK_SHARE = 0.12
# A border cell continues its neighbour when no run of most of a cell differs from it by
# more than this (RGB levels, largest channel) above the image's noise and JPEG floor.
CONTINUE_LEVELS = 9
# Share of a cell kept away from its boundaries on each side when sampling its colour.
INNER_MARGIN = 0.25
MAX_SAMPLES_PER_AXIS = 12
# Blur leakage (see leakage): runs of LEAK_FLAT-equal cells before a jump over LEAK_JUMP RGB
# levels, the cell before the jump within LEAK_NEAR of it; undone from LEAK_MIN (below it
# there is nothing to gain, only noise) to LEAK_MAX, measured on LEAK_MIN_RUNS runs.
LEAK_FLAT, LEAK_JUMP, LEAK_NEAR = 4.0, 60.0, 0.2
LEAK_MIN, LEAK_MAX, LEAK_MIN_RUNS = 0.008, 0.08, 64
# Below this many pixels per cell there is no sub-cell structure to measure.
MIN_SEARCH_PITCH = 3.0


@dataclass(frozen=True)
class AxisGrid:
    pitch: float
    offset: float     # coordinate of cell 0's leading edge (px, may be negative)
    strength: float   # 0-1: edge energy periodic at `pitch` (first harmonic), per unit energy
    sharpness: float  # 0-1: the same at the second harmonic; blur and smooth ramps kill it
    lines: np.ndarray | None = None   # (n + 1,) measured cell boundaries (px), n = cells seen
    tracked: np.ndarray | None = None # every tracked line, from before the image to after it
    model: np.ndarray | None = None   # where the fitted pitch and phase put each tracked line


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
    inner_deviation: np.ndarray  # (rows, cols) mean |pixel - cell colour| in the inner area, RGB levels
    seen_cells: np.ndarray | None = None   # (cells_y, cells_x, 3): the grid the image shows

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
    removed: np.ndarray = np.clip(profile - median_filter(profile, size=size, mode="nearest"), 0.0, None)
    return removed


def _fourier(profile: np.ndarray, pitches: np.ndarray) -> np.ndarray:
    """Fourier coefficient of the profile at frequency 1/pitch, boundary b at coordinate b+1."""
    coords = np.arange(1, profile.shape[0] + 1, dtype=float)
    angles = (-2.0 * np.pi / pitches)[:, None] * coords[None, :]
    coefficients: np.ndarray = (np.cos(angles) @ profile) + 1j * (np.sin(angles) @ profile)
    return coefficients


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


def fit_axis(profile: np.ndarray, length: int, cells: int,
             rgb: np.ndarray | None = None, axis: int = 1) -> AxisGrid:
    """Pitch, measured cell boundaries and periodic strength of one axis from its edge profile;
    with the image (`rgb`, `axis` as in edge_profile), border cells that merely continue their
    neighbour are told from content by their pixels, not only by the edge profile."""
    nominal = length / cells
    if nominal < MIN_SEARCH_PITCH or profile.size < 3:
        # A pixel or two per cell: no sub-cell structure, the grid cannot be judged.
        return AxisGrid(pitch=nominal, offset=0.0, strength=float("nan"), sharpness=float("nan"),
                        lines=np.arange(cells + 1) * nominal)
    clean = _floor_removed(profile, nominal)
    total = clean.sum()
    if total <= 0:
        return AxisGrid(pitch=nominal, offset=0.0, strength=0.0, sharpness=0.0,
                        lines=np.arange(cells + 1) * nominal)
    lo, hi = nominal * PITCH_LOW, nominal * PITCH_HIGH
    pitches = np.linspace(lo, hi, PITCH_STEPS)
    coeffs = _fourier(clean, pitches)
    best = int(np.argmax(np.abs(coeffs)))
    pitch = float(pitches[best])
    phase = float((-np.angle(coeffs[best]) * pitch / (2 * np.pi)) % pitch)
    peaks, weights = _edge_peaks(clean)
    if peaks.size:
        pitch, phase = _refine(peaks, weights, pitch, phase, lo, hi)
    lines, edged = _track_lines(peaks, weights, pitch, phase, length)
    continues = None if rgb is None else (lambda outer, inner: _continues(rgb, axis, outer, inner, pitch))
    # Centring is judged on the grid fitted to every edge peak (pitch, phase): the walked
    # lines at a plain border carry one edge's jitter, about as much as a near half-cell tie.
    mid = len(lines) // 2
    model = phase + (np.rint((lines[mid] - phase) / pitch) + np.arange(len(lines)) - mid) * pitch
    kept = _visible_cells(lines, edged, length, cells, continues, model)
    strength, sharpness = _periodicity(profile, kept)
    return AxisGrid(pitch=float(np.diff(kept).mean()), offset=float(kept[0]), strength=strength,
                    sharpness=sharpness, lines=kept, tracked=lines, model=model)


def fixed_lines(axis: AxisGrid, length: int, cells: int) -> np.ndarray:
    """Exactly `cells` cells on the tracked lines, for the fixed-size outputs when the
    measured size differs from the expected one: the windows showing the most whole cells'
    worth of themselves inside the image, then the most centred on the fitted grid."""
    lines = axis.tracked if axis.tracked is not None else axis.lines
    assert lines is not None
    centres = axis.model if axis.model is not None and len(axis.model) == len(lines) else lines
    if len(lines) < cells + 1:
        step = float(np.diff(lines).mean()) if len(lines) > 1 else length / cells
        extra = cells + 1 - len(lines)
        before = lines[0] - step * np.arange(extra // 2 + extra % 2, 0, -1)
        after = lines[-1] + step * np.arange(1, extra // 2 + 1)
        lines = np.concatenate([before, lines, after])
        centres = np.concatenate([centres[0] - (lines[0] - before), centres, centres[-1] + (after - lines[-1])])
    starts, ends = lines[:-1], lines[1:]
    visible = np.clip(np.minimum(ends, length) - np.maximum(starts, 0.0), 0.0, None)
    sums = np.convolve(visible / np.maximum(ends - starts, 1e-9), np.ones(cells), mode="valid")
    centre = np.abs(centres[: len(sums)] + centres[cells: cells + len(sums)] - length)
    best = int(np.lexsort((centre, -np.rint(sums)))[0])
    return lines[best: best + cells + 1]


def _track_lines(peaks: np.ndarray, weights: np.ndarray, pitch: float, phase: float,
                 length: int) -> tuple[np.ndarray, np.ndarray]:
    """Grid lines from before the image to after it: each predicted one pitch after the
    previous line, snapped to the strongest edge peak within SNAP pitch (uneven cells)."""
    # Weak peaks are noise or JPEG block edges (every 8 px), not cell boundaries.
    strong = weights >= PEAK_SHARE * weights.max() if weights.size else np.zeros(0, dtype=bool)
    peaks, weights = peaks[strong], weights[strong]
    anchor = phase
    if peaks.size:
        k = np.rint((peaks - phase) / pitch)
        near = np.abs(peaks - (phase + k * pitch)) < SNAP * pitch
        if near.any():
            anchor = float(peaks[near][np.argmax(weights[near])])

    def walk(step: float) -> list[tuple[float, bool]]:
        out, pos = [], anchor
        while -pitch <= pos <= length + pitch:
            pos += step
            snapped = False
            if peaks.size:
                close = np.abs(peaks - pos) < SNAP * pitch
                if close.any():
                    pos, snapped = float(peaks[close][np.argmax(weights[close])]), True
            out.append((pos, snapped))
        return out

    found = sorted([*walk(-pitch), (anchor, bool(peaks.size)), *walk(pitch)])
    return np.array([p for p, _ in found]), np.array([e for _, e in found], dtype=bool)


def _visible_cells(lines: np.ndarray, edged: np.ndarray, length: int, cells: int,
                   continues: Callable[[int, int], bool] | None = None,
                   model: np.ndarray | None = None) -> np.ndarray:
    """Boundaries of the cells the image shows: intervals at least BORDER_VISIBLE inside it;
    a border cell 15-85% visible is kept or dropped to come closest to `cells`. Between
    choices of that size, border cells set off from their neighbour (content) are kept
    rather than ones that merely continue it (image filler), then the most centred wins."""
    starts, ends = lines[:-1], lines[1:]
    visible = (np.minimum(ends, length) - np.maximum(starts, 0.0)) / np.maximum(ends - starts, 1e-9)
    keep = visible >= BORDER_VISIBLE
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        return np.array([0.0, float(length)])
    first, last = int(idx[0]), int(idx[-1])
    near_half = np.abs(visible - BORDER_VISIBLE) <= BORDER_TIE
    firsts, lasts = [first], [last]
    if first > 0 and near_half[first - 1]:
        firsts.append(first - 1)
    if near_half[first] and first < last:
        firsts.append(first + 1)
    if last + 1 < len(starts) and near_half[last + 1]:
        lasts.append(last + 1)
    if near_half[last] and last > first:
        lasts.append(last - 1)
    middle = (first + last) / 2
    doubtful = {c for c in (first - 1, first, last, last + 1) if 0 <= c < len(starts) and near_half[c]}

    @cache
    def content(c: int) -> bool:
        """Whether border cell c is set off from its inner neighbour: filler beyond the drawn
        grid continues its neighbour, content does not."""
        left = c <= middle
        if continues is None:
            return bool(edged[c + 1] if left else edged[c])
        width = ends[c] - starts[c]
        # the cell's pixel furthest from its inner neighbour (blur mixes the near ones)
        outer = max(starts[c] + INNER_MARGIN * width, 0.0) if left else min(ends[c] - INNER_MARGIN * width, length - 1e-6)
        inner = c + 1 if left else c - 1
        centre = (starts[inner] + ends[inner]) / 2
        return not continues(int(np.clip(outer, 0, length - 1)), int(np.clip(centre, 0, length - 1)))

    # A border cell that merely continues its neighbour (no edge on its inner line; with the
    # image, no run of its pixels differs) may be filler: it may be dropped when that comes
    # closer to `cells`, whatever its share.
    if first < last and not content(first):
        firsts.append(first + 1)
        doubtful.add(first)
    if first < last and not content(last):
        lasts.append(last - 1)
        doubtful.add(last)

    edge = {c: content(c) for c in doubtful}
    centres = lines if model is None else model

    def key(fg: tuple[int, int]) -> tuple[int, int, float]:
        f, g = fg
        evidence = sum((1 if f <= c <= g else -1) * int(edge[c]) for c in doubtful)
        return abs(g - f + 1 - cells), -evidence, abs(centres[f] + centres[g + 1] - length)

    f, g = min(((f, g) for f in firsts for g in lasts if f <= g), key=key)
    return lines[f: g + 2]


def _continues(rgb: np.ndarray, axis: int, outer: int, inner: int, pitch: float) -> bool:
    """Whether the pixel line at `outer` (a column for axis 1, a row for axis 0) repeats the
    one at `inner` all along: differences shorter than most of a cell are blur and jitter of
    the crossing edges, longer ones are content when they stand CONTINUE_LEVELS above the
    image's own floor (the inner line against its next neighbours, same cell: noise, JPEG)."""
    run = max(5, int(round(0.75 * pitch)) | 1)
    centre = np.take(rgb, inner, axis=axis).astype(np.int16)

    def longest(other: int) -> float:
        line = np.take(rgb, int(np.clip(other, 0, rgb.shape[axis] - 1)), axis=axis).astype(np.int16)
        return float(median_filter(np.abs(line - centre).max(axis=1), size=run, mode="nearest").max())

    floor = max(longest(inner - 1), longest(inner + 1))
    return longest(outer) - floor <= CONTINUE_LEVELS


def _periodicity(profile: np.ndarray, lines: np.ndarray) -> tuple[float, float]:
    """First- and second-harmonic share of the edge energy, in the measured grid's own
    coordinate (position between its lines), so uneven cells stay periodic. Only the global
    noise floor is removed here (a running median would sharpen blurred edges)."""
    above_floor = np.clip(profile - np.percentile(profile, 10), 0.0, None)
    total = above_floor.sum()
    if total <= 0 or len(lines) < 2:
        return 0.0, 0.0
    coords = np.arange(1, profile.size + 1, dtype=float)
    step = float(np.diff(lines).mean())
    ext = np.concatenate([[lines[0] - 50 * step], lines, [lines[-1] + 50 * step]])
    phase = np.interp(coords, ext, np.concatenate([[-50.0], np.arange(len(lines), dtype=float),
                                                   [len(lines) - 1 + 50.0]]))
    first = abs(np.sum(above_floor * np.exp(2j * np.pi * phase))) / total
    second = abs(np.sum(above_floor * np.exp(4j * np.pi * phase))) / total
    return min(float(first), 1.0), min(float(second), 1.0)


def _sample_positions(lines: np.ndarray, length: int) -> np.ndarray:
    """(cells, k) pixel indices inside each cell's inner area, clipped to the image."""
    starts, ends = lines[:-1], lines[1:]
    width = ends - starts
    margin = INNER_MARGIN * width
    # The image border is not a colour boundary, so no margin is kept against it.
    lo = np.maximum(starts + margin, 0.0)
    hi = np.minimum(ends - margin, float(length))
    thin = hi - lo < 1.0
    visible_mid = (np.maximum(starts, 0.0) + np.minimum(ends, float(length))) / 2
    lo = np.where(thin, visible_mid - 0.5, lo)
    hi = np.where(thin, visible_mid + 0.5, hi)
    k = int(np.clip(round((1 - 2 * INNER_MARGIN) * float(width.mean())), 1, MAX_SAMPLES_PER_AXIS))
    frac = (np.arange(k) + 0.5) / k
    coords = lo[:, None] + (hi - lo)[:, None] * frac[None, :]
    indices: np.ndarray = np.clip(np.floor(coords).astype(np.int64), 0, length - 1)
    return indices


def sample_cells(rgb: np.ndarray, grid_x: AxisGrid, grid_y: AxisGrid) -> tuple[np.ndarray, np.ndarray]:
    """Robust colour (median) and inner deviation of every measured cell."""
    height, width = rgb.shape[:2]
    if grid_x.lines is None or grid_y.lines is None:
        raise ValueError("sample_cells needs measured grid lines")
    xs = _sample_positions(grid_x.lines, width)
    ys = _sample_positions(grid_y.lines, height)
    rows, cols = len(ys), len(xs)
    block = rgb[ys[:, None, :, None], xs[None, :, None, :]]          # (R, C, ky, kx, 3)
    colour, deviation = read_cells(block.reshape(rows, cols, -1, 3))
    return unblur(colour), deviation


def read_cells(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, C, S, 3) pixel samples of each cell -> its colour, the per-channel median (a
    palette vote measured worse, docs/evaluators.md), and its mean deviation from it."""
    block = samples.transpose(0, 1, 3, 2)                            # (R, C, 3, S)
    colour = np.median(block, axis=-1)
    deviation = np.abs(block - colour[..., None]).mean(axis=(-1, -2))
    return np.clip(np.rint(colour), 0, 255).astype(np.uint8), deviation


def leakage(cells: np.ndarray, axis: int) -> float:
    """Share of a neighbour's colour in a cell's reading along `axis` (0: rows, 1: columns),
    where blur reaches into the inner area (fine grids). Measured where two equal cells are
    followed by one near them and then a very different one: c - b = leak x (d - b); the
    median over both directions, 0 where too few such runs say it."""
    step: np.ndarray = np.diff(np.moveaxis(cells, axis, 0).astype(np.int32), axis=0)  # run[i + 1] - run[i]
    size = np.abs(step).max(axis=-1)
    found = []
    # forwards a, b, c, d = run[i .. i + 3]: b - a = step[i], c - b = step[i + 1],
    # d - b = step[i + 1] + step[i + 2]; backwards the same read from the other end
    for flat, near, far in ((size[:-2], step[1:-1], step[2:]), (size[2:], -step[1:-1], -step[:-2])):
        jump = near + far
        energy = (jump ** 2).sum(axis=-1)
        pick = (flat < LEAK_FLAT) & (energy > LEAK_JUMP ** 2) & (
            np.abs(near).max(axis=-1) < LEAK_NEAR * np.abs(jump).max(axis=-1))
        found.append((near[pick] * jump[pick]).sum(axis=-1) / energy[pick])
    shares = np.concatenate(found)
    return float(np.median(shares)) if shares.size >= LEAK_MIN_RUNS else 0.0


def unblur(cells: np.ndarray) -> np.ndarray:
    """The cells with the measured leakage undone: each axis's reading is the tridiagonal
    mix (1 - 2 leak) x own + leak x each neighbour, solved for the own colours."""
    out = cells.astype(float)
    for axis in (0, 1):
        leak = leakage(cells, axis)
        n = cells.shape[axis]
        # over LEAK_MAX the cells are not flat colours under blur (a smooth image): left as read
        if not LEAK_MIN <= leak <= LEAK_MAX or n < 3:
            continue
        bands = np.zeros((3, n))
        bands[0, 1:], bands[2, :-1] = leak, leak
        bands[1] = 1 - 2 * leak
        bands[1, [0, -1]] = 1 - leak                   # a border cell has one neighbour
        moved = np.moveaxis(out, axis, 0)
        solved: np.ndarray = solve_banded((1, 1), bands, moved.reshape(n, -1))
        out = np.moveaxis(solved.reshape(moved.shape), 0, axis)
    result: np.ndarray = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return result


def _resample(cells: np.ndarray, n: int) -> np.ndarray:
    """The measured cells on an n x n grid (nearest cell), for the fixed-size outputs."""
    rows = np.minimum((np.arange(n) + 0.5) * cells.shape[0] / n, cells.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(n) + 0.5) * cells.shape[1] / n, cells.shape[1] - 1).astype(int)
    return np.ascontiguousarray(cells[rows][:, cols])


def recover_grid(rgb: np.ndarray, cells: int = 24) -> GridResult:
    """The image's logical pixels: `seen_cells` as measured (cells_y x cells_x), and `cells`,
    the same on the expected `cells` x `cells` grid (identical when the sizes agree)."""
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError("expected an (H, W, 3) uint8 RGB array")
    if cells < 1:
        raise ValueError("cells must be at least 1")
    height, width = arr.shape[:2]
    if min(height, width) < cells:
        raise ValueError(f"image is {width}x{height} px, smaller than the {cells}-cell grid")
    grid_x = fit_axis(edge_profile(arr, axis=1), width, cells, arr, axis=1)
    grid_y = fit_axis(edge_profile(arr, axis=0), height, cells, arr, axis=0)
    colour, deviation = sample_cells(arr, grid_x, grid_y)
    rows, cols = colour.shape[:2]
    fixed = colour
    if (rows, cols) != (cells, cells):
        if abs(rows - cells) <= 2 and abs(cols - cells) <= 2:
            # a border cell more or less: the N cells on the same tracked lines
            # (an axis that already shows `cells` keeps its lines and their border choice)
            fx = grid_x if cols == cells else AxisGrid(grid_x.pitch, grid_x.offset, 0.0, 0.0,
                                                         fixed_lines(grid_x, width, cells))
            fy = grid_y if rows == cells else AxisGrid(grid_y.pitch, grid_y.offset, 0.0, 0.0,
                                                         fixed_lines(grid_y, height, cells))
            fixed = sample_cells(arr, fx, fy)[0]
        else:
            fixed = _resample(colour, cells)
    return GridResult(
        cells=fixed, cells_x=cols, cells_y=rows,
        pitch_x=grid_x.pitch, pitch_y=grid_y.pitch,
        offset_x=grid_x.offset, offset_y=grid_y.offset,
        strength_x=grid_x.strength, strength_y=grid_y.strength,
        sharpness_x=grid_x.sharpness, sharpness_y=grid_y.sharpness,
        inner_deviation=deviation, seen_cells=colour,
    )
