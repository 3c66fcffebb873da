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

Other tools on the same images: `--export DIR` writes them (and their truths), a tool
downscales DIR/*.png into OUT/, `--export DIR --score-dir OUT` scores what it wrote.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections import defaultdict
from pathlib import Path

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


def export(seed: int, per_group: int, folder: Path) -> int:
    """The same images as PNGs (`folder/NNN_group_mode.png`) and their truths
    (`folder/truth.npz`), for other tools to downscale (see --score-dir)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, np.ndarray] = {}
    for i, (group, cells_rgb) in enumerate(truths(rng, per_group)):
        for mode in ("any", "offset"):
            name = f"{i:03d}_{group}_{mode}"
            image = render(cells_rgb, _offset_params(rng, cells_rgb.shape[0], mode == "offset"), rng)
            Image.fromarray(image).save(folder / f"{name}.png")
            truth[name] = cells_rgb
    np.savez_compressed(folder / "truth.npz", **truth)
    return len(truth)


def score_dir(folder: Path, outputs: Path) -> dict[str, object]:
    """Another tool's downscaled `outputs/<name>.png` against the exported truths: the share
    of images of the right size, cells right on those, and cells right when an output one
    or two cells too large is cut to the N x N window that fits best."""
    truth = np.load(folder / "truth.npz")
    sized, right, cut, missing = [], [], [], 0
    for name in truth.files:
        want = truth[name]
        n = want.shape[0]
        path = outputs / f"{name}.png"
        if not path.is_file():
            missing += 1
            sized.append(False)
            continue
        with Image.open(path) as im:
            got = np.asarray(im.convert("RGB"))
        sized.append(got.shape[:2] == (n, n))
        if got.shape[:2] == (n, n):
            right.append(float((delta_e(to_lab(got), to_lab(want)) < RIGHT_DELTA_E).mean()))
            cut.append(right[-1])
        elif n <= got.shape[0] <= n + 2 and n <= got.shape[1] <= n + 2:
            cut.append(max(float((delta_e(to_lab(got[y: y + n, x: x + n]), to_lab(want)) < RIGHT_DELTA_E).mean())
                           for y in range(got.shape[0] - n + 1) for x in range(got.shape[1] - n + 1)))
    return {"n_images": len(truth.files), "missing": missing, "size_right": round(float(np.mean(sized)), 4),
            "cells_right_where_sized": round(float(np.mean(right)), 4) if right else None,
            "n_cut": len(cut), "cells_right_cut_to_n": round(float(np.mean(cut)), 4) if cut else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="4 images per group instead of 12")
    parser.add_argument("--export", type=Path, metavar="DIR", help="write the images and truths to DIR")
    parser.add_argument("--score-dir", type=Path, metavar="OUT",
                        help="score another tool's OUT/<name>.png against the truths in --export DIR")
    args = parser.parse_args(argv)
    if args.score_dir:
        if not args.export:
            parser.error("--score-dir needs --export DIR (where the truths are)")
        print(json.dumps(score_dir(args.export, args.score_dir)))
        return 0
    if args.export:
        print(f"{export(args.seed, 4 if args.quick else 12, args.export)} images -> {args.export}")
        return 0
    out = run(args.seed, 4 if args.quick else 12)
    print(f"cells right (CIEDE2000 < 5): {out['cells_right']} of {out['n_images']} images "
          f"(offset anywhere {out['cells_right_any_offset']}, 0.3-0.5 cell off {out['cells_right_offset']}, "
          f"harder half {out['harder_half']}); images shifted: {out['images_shifted']}; "
          f"grid size right: {out['size_right']}; {out['seconds_per_image']} s per image")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
