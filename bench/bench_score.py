"""Speed of scoring one 512 x 512 image against the floor of decoding it and converting it
to CIELAB, measured in the same run (interleaved, so both see the same machine load).

    .venv/bin/python -m bench.bench_score [--repeats N]

Prints one JSON object; `score_vs_floor` is median(score) / median(decode + Lab)
(target <= 4).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from statistics import median
from typing import Any

import numpy as np
from PIL import Image
from skimage.color import rgb2lab

from bench.degrade import degrade, load_avatars, pad_sprite
from evaluators import recover_grid, score_image
from evaluators.color import hex_to_rgb

PROMPT = ("pixel art portrait, dark red hair (#611c17), red shirt (#ae0001), skin (#f6d4aa), "
          "lips (#d29985), solid green background (#00ff00)")


def sample_png(seed: int = 0) -> bytes:
    """A 512 x 512 degraded portrait (avatar_000 on a 24-cell canvas), PNG-encoded."""
    sprite = load_avatars()[0]
    canvas = pad_sprite(sprite.rgb, 24, hex_to_rgb(sprite.background), 4, 8)
    image, _ = degrade(canvas, np.random.default_rng(seed))
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("RGB"))


def measure_score_vs_floor(repeats: int = 30) -> dict[str, Any]:
    png = sample_png()
    rgb = _decode(png)
    score_image(rgb, PROMPT)           # warm caches and lazy imports
    rgb2lab(rgb)
    decode_s, lab_s, score_s, grid_s = [], [], [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        decoded = _decode(png)
        t1 = time.perf_counter()
        rgb2lab(decoded)
        t2 = time.perf_counter()
        score_image(decoded, PROMPT)
        t3 = time.perf_counter()
        recover_grid(decoded, 24)
        t4 = time.perf_counter()
        decode_s.append(t1 - t0)
        lab_s.append(t2 - t1)
        score_s.append(t3 - t2)
        grid_s.append(t4 - t3)
    floor = [d + lab for d, lab in zip(decode_s, lab_s, strict=True)]
    return {
        "image": "512x512 degraded avatar_000 (PNG)",
        "repeats": repeats,
        "decode_ms": round(1000 * median(decode_s), 3),
        "lab_ms": round(1000 * median(lab_s), 3),
        "floor_ms": round(1000 * median(floor), 3),
        "score_ms": round(1000 * median(score_s), 3),
        "recover_grid_ms": round(1000 * median(grid_s), 3),
        "score_vs_floor": round(median(score_s) / median(floor), 3),
        "score_vs_floor_best": round(min(score_s) / min(floor), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_score")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    print(json.dumps(measure_score_vs_floor(repeats=args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
