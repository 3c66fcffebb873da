"""Colour helpers: hex codes, CIELAB, CIEDE2000 and palette merging (pure, vectorised)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy and scikit-image are imported inside the functions that use them: together they cost
# about 0.23 s at start-up (python -X importtime), and every config load parses its prompts
# through this module (hex_to_rgb), so `status` would pay for them without scoring anything.

# Two colours closer than this (CIEDE2000) count as the same colour when palettes are built.
MERGE_DELTA_E = 4.0
PREFILTER_FACTOR = 8.0


def hex_to_rgb(code: str) -> tuple[int, int, int]:
    """'#0f0' / '#00FF00' / '00ff00' -> (0, 255, 0)."""
    text = code.strip().lstrip("#")
    if len(text) == 3:
        text = "".join(ch * 2 for ch in text)
    if len(text) != 6:
        raise ValueError(f"not a hex colour: {code!r}")
    value = int(text, 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def rgb_to_hex(rgb: np.ndarray | tuple[int, int, int] | list[int]) -> str:
    r, g, b = (int(round(float(v))) for v in np.clip(np.asarray(rgb, dtype=float), 0, 255))
    return f"#{r:02x}{g:02x}{b:02x}"


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (..., 3) -> CIELAB float64 (..., 3)."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    from skimage.color import rgb2lab

    lab: np.ndarray = rgb2lab(arr)
    return lab


def delta_e(lab1: np.ndarray, lab2: np.ndarray) -> np.ndarray:
    """CIEDE2000 between broadcastable Lab arrays (..., 3)."""
    from skimage.color import deltaE_ciede2000

    a, b = np.broadcast_arrays(np.asarray(lab1, dtype=float), np.asarray(lab2, dtype=float))
    return np.asarray(deltaE_ciede2000(a, b), dtype=float)


@dataclass(frozen=True)
class Palette:
    """Colours of an image after merging near-identical ones.

    `lab` (K, 3) and `rgb` (K, 3) are the cluster centres, `counts` (K,) how many pixels
    each holds (largest first), `labels` maps every input pixel to its cluster.
    """

    lab: np.ndarray
    rgb: np.ndarray
    counts: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.counts.shape[0])


PAIR_BUDGET = 1_000_000  # candidate pairs held at once (~100 MB with CIEDE2000's temporaries)


def _close_pairs(lab: np.ndarray, threshold: float, budget: int = PAIR_BUDGET) -> np.ndarray:
    """(M, 2) index pairs i < j with CIEDE2000 below `threshold`.

    Candidates come from a k-d tree in plain Lab, each colour searching a radius that grows
    with its chroma. CIEDE2000 shrinks chroma differences of saturated colours: over a million
    sampled sRGB pairs under 6 apart, the Lab distance was at most 1.8x CIEDE2000 below chroma
    20 and 7.2x at any chroma; the radius, threshold x min(PREFILTER_FACTOR, 2 + 0.15 C), stays
    above both. Colours are taken in chunks of about `budget` candidates, each filtered before
    the next: a noisy image has tens of thousands of colours and billions of candidates, which
    held at once took 20 GB."""
    from scipy.spatial import cKDTree

    chroma = np.hypot(lab[:, 1], lab[:, 2])
    radii = threshold * np.minimum(PREFILTER_FACTOR, 2.0 + 0.15 * chroma)
    tree = cKDTree(lab)
    ends = np.cumsum(tree.query_ball_point(lab, r=radii, return_length=True))
    kept: list[np.ndarray] = []
    start = 0
    while start < len(lab):
        done = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, done + budget, side="right")))
        found = tree.query_ball_point(lab[start:stop], r=radii[start:stop])
        lengths = np.fromiter((len(f) for f in found), dtype=np.int64, count=len(found))
        if lengths.sum():
            first = np.repeat(np.arange(start, stop), lengths)
            second = np.concatenate([np.asarray(f, dtype=np.int64) for f in found])
            keep = first < second
            first, second = first[keep], second[keep]
            close = delta_e(lab[first], lab[second]) < threshold
            kept.append(np.stack([first[close], second[close]], axis=1))
        start = stop
    return np.concatenate(kept) if kept else np.empty((0, 2), dtype=np.int64)


def merge_palette(rgb_pixels: np.ndarray, lab_pixels: np.ndarray,
                  threshold: float = MERGE_DELTA_E) -> Palette:
    """Leader clustering in CIEDE2000: the most frequent remaining colour absorbs every
    remaining colour within `threshold` of it.

    CIEDE2000 is computed once, for the candidate pairs of `_close_pairs`."""
    from scipy.sparse import csr_matrix

    rgb_flat = np.asarray(rgb_pixels, dtype=np.uint8).reshape(-1, 3)
    lab_flat = np.asarray(lab_pixels, dtype=float).reshape(-1, 3)
    uniq, first, inverse, counts = np.unique(
        rgb_flat, axis=0, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    uniq_lab = lab_flat[first]
    n = len(uniq)
    pairs = _close_pairs(uniq_lab, threshold)
    both = np.concatenate([pairs, pairs[:, ::-1]]) if len(pairs) else np.empty((0, 2), dtype=np.int64)
    adjacency = csr_matrix((np.ones(len(both), dtype=bool), (both[:, 0], both[:, 1])), shape=(n, n))
    cluster_of = np.full(n, -1, dtype=np.int64)
    centres_lab: list[np.ndarray] = []
    centres_rgb: list[np.ndarray] = []
    sizes: list[int] = []
    for leader in np.argsort(-counts, kind="stable"):
        if cluster_of[leader] >= 0:
            continue
        neighbours = adjacency.indices[adjacency.indptr[leader]: adjacency.indptr[leader + 1]]
        near = np.concatenate([[leader], neighbours[cluster_of[neighbours] < 0]])
        cluster_of[near] = len(sizes)
        weights = counts[near].astype(float)
        centres_lab.append((uniq_lab[near] * weights[:, None]).sum(0) / weights.sum())
        centres_rgb.append((uniq[near] * weights[:, None]).sum(0) / weights.sum())
        sizes.append(int(weights.sum()))
    # Largest cluster first (absorption can reorder them).
    size_arr = np.array(sizes, dtype=np.int64)
    perm = np.argsort(-size_arr, kind="stable")
    rank = np.empty_like(perm)
    rank[perm] = np.arange(len(perm))
    lab_arr = np.array(centres_lab, dtype=float).reshape(-1, 3)[perm]
    rgb_arr = np.array(centres_rgb, dtype=float).reshape(-1, 3)[perm]
    return Palette(
        lab=lab_arr,
        rgb=np.clip(np.rint(rgb_arr), 0, 255).astype(np.uint8),
        counts=size_arr[perm],
        labels=rank[cluster_of[inverse]],
    )
