"""A labelled set of compound and structured background requests, labelled from each
recipe BEFORE anything is scored (this module does not import the evaluators).

    .venv/bin/python -m bench.judge.compound_build [--seed 25]   # writes bench/judge/compound_labels.json

Requests and what is drawn (the reviewer's outcome in brackets):
- either, "X/Y background" or "X or Y background": solid X or solid Y [match]; a solid
  confuser that is neither [miss];
- checkered, "X and Y checkered background": an X / Y checker [match]; solid X [partly];
  an X / Z checker, Z a confuser of Y [miss];
- two-colour gradient, "X to Y gradient background": X at the top fading to Y at the bottom
  [match]; solid X [partly]; X fading to a confuser of Y [miss];
- one-colour gradient, "X gradient background": shades of X [match]; solid X [partly];
  shades of a confuser [miss];
- solid, "solid X background": shades of X (a gradient) [partly]; solid X [match];
- borderline hues, "X background": the survey swatches a reviewer files under X (sage and an
  olive sage are green, raspberry is pink, salmon is pink) [match]; olive, khaki (not
  green), a deep purple (not pink) [miss].
`partly`: the colour asked is all around but not as asked (the structure, or one of two
colours, is missing). Each recipe is drawn on a DiceBear sprite at 512 px (bench.judge.render).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from bench.judge.build import BACKGROUNDS, CONFUSERS

LABELS = Path(__file__).resolve().parent / "compound_labels.json"
# Extra swatches, named by hand (xkcd survey names where they exist).
SWATCHES: dict[str, list[str]] = {
    **BACKGROUNDS,
    "lavender": ["#b57edc", "#c8a2c8", "#c79fef"],
    "brown": ["#7b4a2a", "#8b5a2b", "#6b4423"],
}
EITHER = [("purple", "lavender"), ("blue", "teal"), ("pink", "red"), ("green", "yellow"),
          ("orange", "brown"), ("grey", "white"), ("blue", "purple")]
PAIRS = [("brown", "yellow"), ("black", "white"), ("blue", "white"), ("red", "black"),
         ("green", "white"), ("purple", "yellow"), ("pink", "blue")]
# (asked word, swatch, reviewer's verdict): the reviewer called an olive sage green
# and a raspberry pink; olive and khaki stay "not green" (bench/judge/build.py).
BORDERLINE = [("green", "#87ae73", "match"), ("green", "#8a9a5b", "match"), ("green", "#9caf88", "match"),
              ("pink", "#b00149", "match"), ("pink", "#e30b5c", "match"), ("pink", "#ff796c", "match"),
              ("pink", "#fe7b7c", "match"), ("green", "#808000", "miss"), ("green", "#bdb76b", "miss"),
              ("pink", "#6a0dad", "miss"), ("purple", "#ff66cc", "miss")]


def _pick(rng: np.random.Generator, items: list) -> object:
    return items[int(rng.integers(0, len(items)))]


def _confuser(rng: np.random.Generator, *avoid: str) -> str:
    options = [c for w in avoid for c in CONFUSERS.get(w, []) if c not in avoid]
    return str(_pick(rng, options or [w for w in CONFUSERS if w not in avoid]))


def _swatch(rng: np.random.Generator, word: str) -> str:
    return str(_pick(rng, SWATCHES[word]))


def recipes(rng: np.random.Generator) -> list[tuple[str, str, dict, str]]:
    """(kind, prompt phrase, background drawn, outcome)."""
    out: list[tuple[str, str, dict, str]] = []

    def bg(colour: str, structure: str = "solid", second: str | None = None) -> dict:
        return {"colour": colour, "second": second or colour, "structure": structure}

    for x, y in EITHER:
        for phrase in (f"{x}/{y} background", f"{x} or {y} background"):
            out.append(("either", phrase, bg(_swatch(rng, x)), "match"))
            out.append(("either", phrase, bg(_swatch(rng, y)), "match"))
            out.append(("either", phrase, bg(_swatch(rng, _confuser(rng, x, y))), "miss"))
    for x, y in PAIRS:
        phrase = f"{x} and {y} checkered background"
        out.append(("checkered", phrase, bg(_swatch(rng, x), "checkered", _swatch(rng, y)), "match"))
        out.append(("checkered", phrase, bg(_swatch(rng, x)), "partly"))
        out.append(("checkered", phrase, bg(_swatch(rng, x), "checkered", _swatch(rng, _confuser(rng, x, y))),
                    "miss"))
        phrase = f"{x} to {y} gradient background"
        out.append(("gradient2", phrase, bg(_swatch(rng, x), "gradient2", _swatch(rng, y)), "match"))
        out.append(("gradient2", phrase, bg(_swatch(rng, x)), "partly"))
        out.append(("gradient2", phrase, bg(_swatch(rng, x), "gradient2", _swatch(rng, _confuser(rng, x, y))),
                    "miss"))
    for x in ("green", "blue", "purple", "pink", "red", "orange", "yellow"):
        out.append(("gradient", f"{x} gradient background", bg(_swatch(rng, x), "gradient"), "match"))
        out.append(("gradient", f"{x} gradient background", bg(_swatch(rng, x)), "partly"))
        out.append(("gradient", f"{x} gradient background", bg(_swatch(rng, _confuser(rng, x)), "gradient"),
                    "miss"))
        out.append(("solid", f"solid {x} background", bg(_swatch(rng, x), "gradient"), "partly"))
        out.append(("solid", f"solid {x} background", bg(_swatch(rng, x)), "match"))
    for word, swatch, outcome in BORDERLINE:
        out.append(("borderline", f"{word} background", bg(swatch), outcome))
    return out


def build(seed: int, n_sprites: int = 96) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for i, (kind, phrase, background, outcome) in enumerate(recipes(rng)):
        items.append({
            "id": f"compound_{i:03d}", "kind": kind, "sprite": int(rng.integers(0, n_sprites)),
            "seed": int(rng.integers(0, 2**31)), "prompt": f"pixel art portrait, {phrase}",
            "background": background, "hair": None, "skin": None, "uneven": False, "broken": False,
            "grid": {"cells": 24}, "labels": {"background_outcome": outcome},
        })
    return items


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seed", type=int, default=25)
    parser.add_argument("--out", type=Path, default=LABELS)
    args = parser.parse_args(argv)
    items = build(args.seed)
    args.out.write_text(json.dumps({"seed": args.seed, "items": items}, indent=1) + "\n")
    print(f"{len(items)} labelled recipes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
