"""Accuracy of the evaluators on degraded inputs built from real sprites.

    .venv/bin/python -m bench.evaluator_accuracy [--seed S] [--quick]

Prints four figures (and a breakdown), then one JSON line:
1. share of recovered cells within CIEDE2000 5 of the truth (target >= 0.98);
2. background decision accuracy with colour_match="exact", near-miss greens / teals and
   half-wrong backgrounds included (target >= 0.99);
3. ROC AUC of style_quality, pixel art against photographs and smooth / blurred upscales
   (target >= 0.98);
4. Spearman rank correlation of color_accuracy with colour drift (target <= -0.7).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict

import numpy as np
from PIL import Image
from scipy.stats import rankdata, spearmanr

from bench.degrade import (
    FIXTURES,
    Sprite,
    degrade,
    drift_colors,
    load_avatars,
    near_miss_colors,
    pad_sprite,
    photographs,
    placements,
    replace_background,
    smooth_upscale,
)
from evaluators import score_image
from evaluators.color import delta_e, hex_to_rgb, rgb_to_hex, to_lab

GREEN = (0, 255, 0)
GREEN_PROMPT = "pixel art portrait, solid green background (#00ff00)"
WRONG_HALF_COLORS = [(255, 102, 204), (155, 89, 182), (192, 128, 255), (106, 61, 154)]


def _padded(sprite: Sprite, rng: np.random.Generator, cells: int = 24) -> tuple[str, np.ndarray]:
    options = placements(sprite.rgb.shape[0], cells)
    name, x, y = options[int(rng.integers(0, len(options)))]
    return name, pad_sprite(sprite.rgb, cells, hex_to_rgb(sprite.background), x, y)


def _noguchi_crops(rng: np.random.Generator, count: int, cells: int = 24) -> list[np.ndarray]:
    with Image.open(FIXTURES / "pyxel" / "noguchi_128x128.png") as im:
        sheet = np.asarray(im.convert("RGB"))
    out = []
    for _ in range(count):
        y, x = rng.integers(0, sheet.shape[0] - cells + 1, size=2)
        out.append(sheet[y: y + cells, x: x + cells])
    return out


def cell_recovery(sprites: list[Sprite], rng: np.random.Generator, per_sprite: int,
                  pixel_art_scores: list[float]) -> dict[str, float]:
    """Figure 1; also collects the style scores of these pixel-art renders (positives)."""
    within: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def run(truth: np.ndarray, group: str) -> None:
        image, _ = degrade(truth, rng)
        score = score_image(image, "", cells=truth.shape[0])
        ok = delta_e(to_lab(score.cells), to_lab(truth)) < 5.0
        within[group][0] += int(ok.sum())
        within[group][1] += ok.size
        pixel_art_scores.append(score.style_quality)

    for sprite in sprites:
        for _ in range(per_sprite):
            run(_padded(sprite, rng)[1], "avatars_24")
        run(sprite.rgb, "avatars_16")
    for crop in _noguchi_crops(rng, max(8, len(sprites) // 4)):
        run(crop, "pyxel_24")
    with Image.open(FIXTURES / "pyxel" / "cat_16x16.png") as im:
        cat = np.asarray(im.convert("RGB"))
    for _ in range(4):
        run(cat, "pyxel_16")
    ok = sum(v[0] for v in within.values())
    total = sum(v[1] for v in within.values())
    out = {f"{k}": v[0] / v[1] for k, v in sorted(within.items())}
    out["all"] = ok / total
    out["cells"] = total
    return out


def background_decisions(sprites: list[Sprite], rng: np.random.Generator) -> dict[str, float]:
    """Figure 2: is background_match the right decision? Judged with colour_match="exact"
    (CIEDE2000 under 10): near-miss greens 15-30 away are "wrong" only by that rule; the
    category judgement a reviewer makes is measured by bench.judge.agreement."""
    results: dict[str, list[bool]] = defaultdict(list)
    greens = [s for s in sprites if s.background == "#00ff00"]
    others = [s for s in sprites if s.background != "#00ff00"]
    near = near_miss_colors(GREEN, rng, len(greens))

    def decide(canvas: np.ndarray, prompt: str, expected: bool, group: str) -> None:
        image, _ = degrade(canvas, rng)
        results[group].append(score_image(image, prompt, colour_match="exact").background_match is expected)

    for i, sprite in enumerate(greens):
        _, canvas = _padded(sprite, rng)
        decide(canvas, GREEN_PROMPT, True, "green_on_green")
        decide(replace_background(canvas, GREEN, near[i]), GREEN_PROMPT, False, "near_miss_green")
        region = ("left", "top", "diagonal")[i % 3]
        other = WRONG_HALF_COLORS[i % len(WRONG_HALF_COLORS)]
        decide(replace_background(canvas, GREEN, other, region), GREEN_PROMPT, False, f"half_pink_{region}")
        region = ("top", "diagonal", "left")[i % 3]
        decide(replace_background(canvas, GREEN, near[-1 - i], region), GREEN_PROMPT, False,
               "half_near_miss_green")
    for sprite in others:
        _, canvas = _padded(sprite, rng)
        own = f"pixel art portrait, solid background ({sprite.background})"
        decide(canvas, own, True, "other_on_own_colour")
        decide(canvas, GREEN_PROMPT, False, "pink_purple_vs_green")
    per_group = {k: float(np.mean(v)) for k, v in sorted(results.items())}
    every = [x for v in results.values() for x in v]
    per_group["all"] = float(np.mean(every))
    per_group["images"] = len(every)
    return per_group


def style_separation(sprites: list[Sprite], rng: np.random.Generator,
                     pixel_art_scores: list[float]) -> dict[str, float]:
    """Figure 3: ROC AUC of style_quality, pixel art (positives) against the rest."""
    smooth = [score_image(smooth_upscale(_padded(s, rng)[1], rng), "").style_quality for s in sprites]
    photos = [score_image(img, "").style_quality for _, img in photographs(rng, per_photo=3)]
    negatives = np.array(smooth + photos)
    positives = np.array(pixel_art_scores)
    ranks = rankdata(np.concatenate([positives, negatives]))
    auc = (ranks[: len(positives)].sum() - len(positives) * (len(positives) + 1) / 2) / (
        len(positives) * len(negatives))
    return {
        "auc": float(auc),
        "pixel_art_median": float(np.median(positives)), "pixel_art_min": float(positives.min()),
        "smooth_median": float(np.median(smooth)), "smooth_max": float(np.max(smooth)),
        "photo_median": float(np.median(photos)), "photo_max": float(np.max(photos)),
        "positives": len(positives), "negatives": len(negatives),
    }


def drift_correlation(sprites: list[Sprite], rng: np.random.Generator) -> dict[str, float]:
    """Figure 4: every colour of a sprite drifts by a random amount; does accuracy follow?
    Drift is the mean CIEDE2000 between the prompt's colours and where they moved."""
    drifts, accuracies = [], []
    for sprite in sprites:
        _, truth = _padded(sprite, rng)
        colours = np.unique(truth.reshape(-1, 3), axis=0)
        prompt = ", ".join(f"colour {i} ({rgb_to_hex(c)})" for i, c in enumerate(colours)
                           if rgb_to_hex(c) != sprite.background)
        prompt += f", solid background ({sprite.background})"
        moved = drift_colors(truth, float(rng.uniform(0.0, 60.0)), rng)
        moved_colours = np.array([moved[np.all(truth == c, axis=-1)][0] for c in colours])
        drifts.append(float(np.mean(delta_e(to_lab(colours), to_lab(moved_colours)))))
        image, _ = degrade(moved, rng)
        accuracies.append(score_image(image, prompt).color_accuracy)
    rho = spearmanr(drifts, accuracies).statistic
    d, a = np.array(drifts), np.array(accuracies)
    bins = {}
    for lo, hi in ((0, 5), (5, 10), (10, 20), (20, 30), (30, 100)):
        sel = (d >= lo) & (d < hi)
        bins[f"{lo}-{hi}"] = (float(a[sel].mean()) if sel.any() else float("nan"), int(sel.sum()))
    return {"spearman": float(rho), "images": len(drifts), "bins": bins}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.evaluator_accuracy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a quarter of the sprites")
    args = parser.parse_args(argv)
    sprites = load_avatars()
    if args.quick:
        sprites = sprites[::4]
    started = time.perf_counter()
    pixel_art: list[float] = []
    recovery = cell_recovery(sprites, np.random.default_rng(args.seed), 2, pixel_art)
    background = background_decisions(sprites, np.random.default_rng(args.seed + 1))
    style = style_separation(sprites, np.random.default_rng(args.seed + 2), pixel_art)
    drift = drift_correlation(sprites, np.random.default_rng(args.seed + 3))
    print(f"cells within CIEDE2000 5 of the truth: {recovery['all']:.4f} "
          f"({recovery['cells']} cells; " + ", ".join(
              f"{k} {v:.4f}" for k, v in recovery.items() if k not in ("all", "cells")) + ")")
    print(f"background decision accuracy: {background['all']:.4f} ({background['images']} images; "
          + ", ".join(f"{k} {v:.3f}" for k, v in background.items() if k not in ("all", "images")) + ")")
    print(f"style ROC AUC, pixel art vs photographs and smooth upscales: {style['auc']:.4f} "
          f"(pixel art median {style['pixel_art_median']:.1f} min {style['pixel_art_min']:.1f}; "
          f"smooth median {style['smooth_median']:.1f} max {style['smooth_max']:.1f}; "
          f"photos median {style['photo_median']:.1f} max {style['photo_max']:.1f})")
    print(f"Spearman(colour accuracy, drift): {drift['spearman']:.4f} ({drift['images']} images; "
          "mean accuracy by drift: " + ", ".join(
              f"{k}: {v[0]:.1f} (n={v[1]})" for k, v in drift["bins"].items()) + ")")
    summary = {
        "cells_within_de5": round(recovery["all"], 4),
        "background_accuracy": round(background["all"], 4),
        "style_auc": round(style["auc"], 4),
        "accuracy_drift_spearman": round(drift["spearman"], 4),
        "seed": args.seed, "quick": args.quick, "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
