"""How often the evaluators agree with the reviewer's labels of bench/judge/labels.json.

    .venv/bin/python -m bench.judge.agreement [--labels FILE] [--limit N] [--colour-match category|exact]

Renders each recipe (bench.judge.render), scores it with its prompt at --cells 24 and prints:
background right/wrong accuracy (all, colour-word prompts, hex prompts), per-role agreement
(hair, skin), Spearman of overall_score with the reviewer's 1-10, and the share of images
whose measured grid is within one cell of the truth; the same figures apart for SD 1.5-like
items (an even 24-cell grid) and SDXL-like ones (uneven 19-26 px cells, about 21-23 across, as
SDXL draws a 24-cell subject); then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from bench.judge.build import LABELS
from bench.judge.render import render
from evaluators import score_image


def _role_match(score: dict[str, Any], role: str) -> bool | None:
    found = [m["match"] for m in score["per_color"] if m["role"] == role]
    return None if not found else bool(all(found))


def evaluate(items: list[dict], colour_match: str = "category") -> tuple[dict[str, Any], list[dict]]:
    rows = []
    for item in items:
        image = render(item)
        score = score_image(image, item["prompt"], cells=24, colour_match=colour_match).to_dict()
        labels = item["labels"]
        rows.append({
            "id": item["id"], "hex": "#" in item["prompt"], "labels": labels,
            "background": score["background_match"], "hair": _role_match(score, "hair"),
            "skin": _role_match(score, "skin"), "overall": score["overall_score"],
            "visual": score["visual_score"], "prompt": score["prompt_score"],
            "grid_ok": abs(score["grid"]["cells_x"] - labels["cells_x"]) <= 1
            and abs(score["grid"]["cells_y"] - labels["cells_y"]) <= 1,
            "uneven": item["uneven"], "broken": item["broken"], "issues": score["issues"],
            "style": score["style_score"],
            "missed": sorted({m["role"] for m in score["per_color"] if m["match"] is False}),
        })
    summary = summarise(rows)
    summary["by_family"] = {family: summarise(part) for family, part in (
        ("sd15", [r for r in rows if not r["uneven"]]), ("sdxl", [r for r in rows if r["uneven"]]))
        if part}
    return summary, rows


def _acc(pairs: list[tuple[Any, Any]]) -> float | None:
    pairs = [(a, b) for a, b in pairs if b is not None]
    return round(float(np.mean([a == b for a, b in pairs])), 4) if pairs else None


def summarise(rows: list[dict]) -> dict[str, Any]:
    bg = [(r["background"], r["labels"]["background_right"]) for r in rows]
    words = [(r["background"], r["labels"]["background_right"]) for r in rows if not r["hex"]]
    hexes = [(r["background"], r["labels"]["background_right"]) for r in rows if r["hex"]]
    hair = [(r["hair"], r["labels"]["hair_right"]) for r in rows if r["labels"]["hair_right"] is not None]
    skin = [(r["skin"], r["labels"]["skin_right"]) for r in rows if r["labels"]["skin_right"] is not None]
    overall = spearmanr([r["overall"] for r in rows], [r["labels"]["overall"] for r in rows]).statistic
    uneven = [r["grid_ok"] for r in rows if r["uneven"] and not r["broken"]]
    blocky = [r["grid_ok"] for r in rows if not r["broken"]]
    return {
        "n_images": len(rows),
        "background_accuracy": _acc(bg), "background_accuracy_words": _acc(words),
        "background_accuracy_hex": _acc(hexes), "n_words": len(words), "n_hex": len(hexes),
        "hair_agreement": _acc(hair), "n_hair": len(hair),
        "skin_agreement": _acc(skin), "n_skin": len(skin),
        "overall_spearman": round(float(overall), 4),
        "grid_within_one": round(float(np.mean(blocky)), 4), "n_blocky": len(blocky),
        "grid_within_one_uneven": round(float(np.mean(uneven)), 4) if uneven else None,
        "n_uneven": len(uneven),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--colour-match", default="category", choices=("category", "exact"))
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    items = json.loads(args.labels.read_text())["items"]
    if args.limit:
        items = items[: args.limit]
    start = time.perf_counter()
    summary, rows = evaluate(items, args.colour_match)
    summary["seconds"] = round(time.perf_counter() - start, 1)
    summary["colour_match"] = args.colour_match
    if args.show_misses:
        for r in rows:
            if r["background"] != r["labels"]["background_right"] or (
                    r["labels"]["hair_right"] is not None and r["hair"] != r["labels"]["hair_right"]) or (
                    r["labels"]["skin_right"] is not None and r["skin"] != r["labels"]["skin_right"]) or not r["grid_ok"]:
                print(r["id"], {k: r[k] for k in ("background", "hair", "skin", "grid_ok", "issues")}, r["labels"])
    print(f"background right/wrong accuracy: {summary['background_accuracy']} ({summary['n_images']} images; "
          f"colour-word prompts {summary['background_accuracy_words']} (n={summary['n_words']}), "
          f"hex prompts {summary['background_accuracy_hex']} (n={summary['n_hex']}))")
    print(f"hair agreement: {summary['hair_agreement']} (n={summary['n_hair']}); "
          f"skin agreement: {summary['skin_agreement']} (n={summary['n_skin']})")
    print(f"Spearman(overall_score, reviewer 1-10): {summary['overall_spearman']}")
    print(f"grid size within one cell: {summary['grid_within_one']} ({summary['n_blocky']} pixel-art images; "
          f"uneven 19-26 px cells: {summary['grid_within_one_uneven']}, n={summary['n_uneven']})")
    for family, part in summary["by_family"].items():
        print(f"{family}-like: background {part['background_accuracy']} (n={part['n_images']}), "
              f"Spearman {part['overall_spearman']}, grid within one cell {part['grid_within_one']}")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
