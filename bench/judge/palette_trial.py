"""Palette-aware cell reading, tried against the median (issue 25): measured, not adopted.

    .venv/bin/python -m bench.judge.palette_trial [--seed 7] [--quick]

On the images of bench.judge.cells, the grid fit is kept and only the cell colour changes
(evaluators.grid.read_cells swapped for the run). The palette is the image's cleanly read
cells (spread under CLEAN_SPREAD RGB levels or CLEAN_FACTOR x the image's median spread),
merged at CIEDE2000 4 (evaluators.color.merge_palette: its size is what the image shows);
every sampled pixel votes for its nearest entry (Lab). Readers:
- median: the per-channel median of the inner half (what evaluators.grid does);
- majority: the mean of the cell's own pixels that voted with the majority;
- snap: the majority entry itself;
- hybrid: the median, snapped to the majority entry when it is over 3 from every entry.
Per reader: cells within CIEDE2000 5 of the sprite, cells whose nearest sprite colour is the
right one, misses in images not shifted by a cell, seconds per image; one JSON line each.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

import evaluators.grid as grid_module
from bench.degrade import render
from bench.judge.cells import RIGHT_DELTA_E, SHIFTED_BELOW, _offset_params, truths
from evaluators import recover_grid
from evaluators.color import delta_e, merge_palette, to_lab

CLEAN_SPREAD = 8.0
CLEAN_FACTOR = 1.5
HYBRID_DELTA_E = 3.0
Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
MEDIAN: Reader = grid_module.read_cells


def palette_reader(kind: str) -> Reader:
    from scipy.spatial import cKDTree

    def read(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        median, spread = MEDIAN(samples)
        rows, cols, count = samples.shape[:3]
        clean = spread <= max(CLEAN_SPREAD, CLEAN_FACTOR * float(np.median(spread)))
        if not clean.any():
            return median, spread
        palette = merge_palette(median[clean], to_lab(median[clean]))
        tree = cKDTree(palette.lab)
        flat = samples.reshape(-1, 3)
        votes = tree.query(to_lab(flat.reshape(-1, 1, 3)).reshape(-1, 3))[1]
        k, cell = len(palette), np.repeat(np.arange(rows * cols), count)
        winner = np.bincount(cell * k + votes, minlength=rows * cols * k).reshape(-1, k).argmax(1)
        if kind == "snap":
            return palette.rgb[winner].reshape(rows, cols, 3), spread
        if kind == "hybrid":
            lab = to_lab(median).reshape(-1, 3)
            far = delta_e(lab, palette.lab[tree.query(lab)[1]]) > HYBRID_DELTA_E
            out = median.reshape(-1, 3).copy()
            out[far] = palette.rgb[winner][far]
            return out.reshape(rows, cols, 3), spread
        with_majority = votes == winner[cell]
        n = np.maximum(np.bincount(cell, weights=with_majority, minlength=rows * cols), 1)
        sums = np.stack([np.bincount(cell, weights=flat[:, c] * with_majority, minlength=rows * cols)
                         for c in range(3)], axis=1)
        return np.clip(np.rint(sums / n[:, None]), 0, 255).astype(np.uint8).reshape(rows, cols, 3), spread

    return read


def measure(reader: Reader, seed: int, per_group: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    right, sprite_right, edge_misses, seconds = [], [], 0, 0.0
    grid_module.read_cells = reader  # type: ignore[assignment]
    try:
        for _, truth in truths(rng, per_group):
            cells = truth.shape[0]
            colours = np.unique(truth.reshape(-1, 3), axis=0)
            for hard in (False, True):
                image = render(truth, _offset_params(rng, cells, hard), rng)
                start = time.perf_counter()
                got = recover_grid(image, cells).cells
                seconds += time.perf_counter() - start
                lab = to_lab(got)
                ok = delta_e(lab, to_lab(truth)) < RIGHT_DELTA_E
                nearest = delta_e(lab.reshape(-1, 1, 3), to_lab(colours[:, None, :])[:, 0][None]).argmin(-1)
                right.append(float(ok.mean()))
                sprite_right.append(float((colours[nearest] == truth.reshape(-1, 3)).all(-1).mean()))
                if ok.mean() >= SHIFTED_BELOW:
                    edge_misses += int((~ok).sum())
    finally:
        grid_module.read_cells = MEDIAN  # type: ignore[assignment]
    return {"cells_right": round(float(np.mean(right)), 4),
            "sprite_colour_right": round(float(np.mean(sprite_right)), 4),
            "misses_in_unshifted_images": edge_misses,
            "seconds_per_image": round(seconds / len(right), 4)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="4 images per group instead of 12")
    args = parser.parse_args(argv)
    per_group = 4 if args.quick else 12
    readers = {"median": MEDIAN, **{k: palette_reader(k) for k in ("majority", "snap", "hybrid")}}
    for name, reader in readers.items():
        print(json.dumps({"reader": name, **measure(reader, args.seed, per_group), "seed": args.seed}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
