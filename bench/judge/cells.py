"""Cells read right on degraded real sprites, at several grid sizes and grid offsets.

    .venv/bin/python -m bench.judge.cells [--seed 7] [--quick]

Real sprites (tests/fixtures/pixelart: DiceBear avatars CC0, Pyxel assets MIT) are drawn at
512 px by bench.degrade (pitch 512/N x U(0.97, 1.03), line and block jitter, blur sigma 0-2,
noise, JPEG 70-90) at N = 16 to 64 cells: avatars as they are (16) and padded onto 24 and
32 cell canvases, crops of the Pyxel sprite sheet (16-48) and of the Pyxel town map (24-64).
Each is drawn twice: grid offset anywhere in +-0.5 cell ("any"), and 0.3-0.5 cell off
centre on both axes ("offset", the hard case). A cell is right within CIEDE2000 5 of the
sprite's colour; an image is "shifted" under 95% right; "size right" when the measured grid
is N x N. Prints a summary, then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict

import numpy as np
from PIL import Image

from bench.degrade import (
    FIXTURES,
    DegradeParams,
    load_avatars,
    pad_sprite,
    placements,
    random_params,
    render,
)
from evaluators import recover_grid
from evaluators.color import delta_e, hex_to_rgb, to_lab

RIGHT_DELTA_E = 5.0
SHIFTED_BELOW = 0.95


def _sheet(name: str) -> np.ndarray:
    with Image.open(FIXTURES / "pyxel" / name) as im:
        return np.asarray(im.convert("RGB"))


def _crops(sheet: np.ndarray, cells: int, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for _ in range(count):
        y = int(rng.integers(0, sheet.shape[0] - cells + 1))
        x = int(rng.integers(0, sheet.shape[1] - cells + 1))
        out.append(sheet[y: y + cells, x: x + cells])
    return out


def truths(rng: np.random.Generator, per_group: int) -> list[tuple[str, np.ndarray]]:
    """(group, logical image) pairs; every group has `per_group` images."""
    avatars = load_avatars()
    picks = rng.permutation(len(avatars))
    cases: list[tuple[str, np.ndarray]] = [("avatars_16", avatars[i].rgb) for i in picks[:per_group]]
    for cells in (24, 32):
        spots = placements(16, cells)
        for k, i in enumerate(rng.permutation(len(avatars))[:per_group]):
            _, x, y = spots[k % len(spots)]
            background = hex_to_rgb(avatars[i].background)
            cases.append((f"avatars_{cells}", pad_sprite(avatars[i].rgb, cells, background, x, y)))
    noguchi, town = _sheet("noguchi_128x128.png"), _sheet("urban_rpg.png")
    for cells in (16, 24, 32, 48):
        cases += [(f"sheet_{cells}", c) for c in _crops(noguchi, cells, per_group, rng)]
    for cells in (24, 32, 48, 64):
        cases += [(f"town_{cells}", c) for c in _crops(town, cells, per_group, rng)]
    return cases


def _offset_params(rng: np.random.Generator, cells: int, hard: bool) -> DegradeParams:
    params = random_params(rng, cells)
    if not hard:
        return params
    fx, fy = rng.uniform(0.3, 0.5, 2) * rng.choice([-1, 1], 2)
    return dataclasses.replace(
        params, origin_x=(512 - cells * params.pitch_x) / 2 + fx * params.pitch_x,
        origin_y=(512 - cells * params.pitch_y) / 2 + fy * params.pitch_y)


def run(seed: int, per_group: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    right: dict[str, list[float]] = defaultdict(list)
    sized: list[bool] = []
    seconds = 0.0
    for group, truth in truths(rng, per_group):
        cells = truth.shape[0]
        for mode in ("any", "offset"):
            image = render(truth, _offset_params(rng, cells, mode == "offset"), rng)
            start = time.perf_counter()
            grid = recover_grid(image, cells)
            seconds += time.perf_counter() - start
            share = float((delta_e(to_lab(grid.cells), to_lab(truth)) < RIGHT_DELTA_E).mean())
            for key in (group, mode, "all"):
                right[key].append(share)
            sized.append((grid.cells_x, grid.cells_y) == (cells, cells))
    everything = right["all"]
    ordered = sorted(everything)
    return {
        "cells_right": round(float(np.mean(everything)), 4),
        "cells_right_any_offset": round(float(np.mean(right["any"])), 4),
        "cells_right_offset": round(float(np.mean(right["offset"])), 4),
        "harder_half": round(float(np.mean(ordered[: len(ordered) // 2])), 4),
        "images_shifted": round(float(np.mean([s < SHIFTED_BELOW for s in everything])), 4),
        "size_right": round(float(np.mean(sized)), 4),
        "by_group": {k: round(float(np.mean(v)), 4) for k, v in sorted(right.items())
                     if k not in ("all", "any", "offset")},
        "n_images": len(everything), "seconds_per_image": round(seconds / len(everything), 4),
        "seed": seed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="4 images per group instead of 12")
    args = parser.parse_args(argv)
    out = run(args.seed, 4 if args.quick else 12)
    print(f"cells right (CIEDE2000 < 5): {out['cells_right']} of {out['n_images']} images "
          f"(offset anywhere {out['cells_right_any_offset']}, 0.3-0.5 cell off {out['cells_right_offset']}, "
          f"harder half {out['harder_half']}); images shifted: {out['images_shifted']}; "
          f"grid size right: {out['size_right']}; {out['seconds_per_image']} s per image")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
