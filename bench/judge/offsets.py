"""Registration of grids offset by 0.3-0.5 of a cell: no whole-cell shifts.

    .venv/bin/python -m bench.judge.offsets [--seed 3]

Each of the 96 DiceBear avatars, padded to 24 cells (bench.degrade placements), is drawn at
512 px (bench.degrade: pitch 512/24 x U(0.97, 1.03), jitter, blur, noise, JPEG) with its grid
offset from centred by 0.3-0.5 of a cell on both axes (random signs). Prints the share of
recovered cells within CIEDE2000 5 of the truth (all, and the harder half of the images) and
the share of images shifted (under 95% of cells right), then one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from bench.degrade import load_avatars, pad_sprite, placements, random_params, render
from evaluators import recover_grid
from evaluators.color import delta_e, hex_to_rgb, to_lab


def run(seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    spots = placements(16, 24)
    shares = []
    for i, sprite in enumerate(load_avatars()):
        _, x, y = spots[i % len(spots)]
        truth = pad_sprite(sprite.rgb, 24, hex_to_rgb(sprite.background), x, y)
        params = random_params(rng, 24)
        fx, fy = rng.uniform(0.3, 0.5, 2) * rng.choice([-1, 1], 2)
        params = dataclasses.replace(
            params, origin_x=(512 - 24 * params.pitch_x) / 2 + fx * params.pitch_x,
            origin_y=(512 - 24 * params.pitch_y) / 2 + fy * params.pitch_y)
        got = recover_grid(render(truth, params, rng), 24).cells
        shares.append(float((delta_e(to_lab(got), to_lab(truth)) < 5.0).mean()))
    ordered = sorted(shares)
    return {"cells_within_de5": round(float(np.mean(shares)), 4),
            "harder_half": round(float(np.mean(ordered[: len(ordered) // 2])), 4),
            "images_shifted": round(float(np.mean([s < 0.95 for s in shares])), 4),
            "n_images": len(shares), "seed": seed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    out = run(args.seed)
    print(f"cells within CIEDE2000 5: {out['cells_within_de5']} (harder half {out['harder_half']}); "
          f"images shifted by a cell: {out['images_shifted']} of {out['n_images']}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
