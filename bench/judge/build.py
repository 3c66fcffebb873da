"""A labelled set of 512 px "real output" look-alikes, built from the shared DiceBear sprites,
each labelled the way a reviewer would BEFORE anything is scored.

    .venv/bin/python -m bench.judge.build [--n 180] [--seed 13]   # writes bench/judge/labels.json

Each item is a recipe (sprite, background colour / structure, hair and skin recolouring, grid
irregularity, damage) plus the prompt it answers and the reviewer's labels:
`background_right`, `hair_right`, `skin_right` (null when the prompt does not name the role),
`cells` (the grid the image really shows) and `overall` 1-10. The colours come from the
hand-labelled swatches below (what a person calls each one: teal is neither blue nor green,
olive / khaki are not green, lavender is a purple), never from the evaluators, which this
module does not import. `bench.judge.render` turns a recipe into pixels.

Overall (reviewer's rule, written down before scoring): 9, minus 4 for a wrong background
colour, 2 for a wrong background structure (solid asked, gradient shown, ...), 2 for wrong
hair, 3 for a wrong face colour, 6 for a broken (smooth / blurred, not pixel art) image; at
least 1. Uneven but blocky cells cost nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

LABELS = Path(__file__).resolve().parent / "labels.json"

# Background swatches by the word a reviewer uses for them.
BACKGROUNDS: dict[str, list[str]] = {
    "green": ["#00ff00", "#41e066", "#2e8b57", "#3cb371", "#7ccd7c", "#228b22"],
    "blue": ["#1e90ff", "#4169e1", "#87ceeb", "#0000cd", "#3a5fcd"],
    "purple": ["#8a2be2", "#c080ff", "#6a0dad", "#9b59b6"],
    "pink": ["#ff66cc", "#ffb6c1", "#ff69b4", "#f78fb3"],
    "teal": ["#008080", "#20b2aa", "#00a6a6"],
    "red": ["#e02020", "#b22222", "#ff3030"],
    "orange": ["#ff8c00", "#ff7f24", "#f39c12"],
    "yellow": ["#ffd700", "#ffef5a", "#f4d03f"],
    "grey": ["#808080", "#a0a0a0", "#696969"],
    "white": ["#ffffff", "#f4f4f4"],
    "black": ["#101010", "#000000"],
    "olive": ["#808000", "#9a9a3a"],
    "khaki": ["#c3b091", "#bdb76b"],
}
# Confusers a reviewer would NOT accept for the asked word.
CONFUSERS: dict[str, list[str]] = {
    "green": ["teal", "olive", "khaki", "blue"], "blue": ["teal", "purple"], "purple": ["pink", "blue"],
    "pink": ["purple", "red"], "teal": ["green", "blue"], "red": ["orange", "pink"],
    "orange": ["red", "yellow"], "yellow": ["orange", "green"], "grey": ["white", "black"],
    "white": ["grey", "yellow"], "black": ["grey", "blue"],
}
ASKED_BACKGROUNDS = list(CONFUSERS)
HAIR: dict[str, list[str]] = {
    "blonde": ["#f0d060", "#e8c872", "#ffe08a"],
    "brown": ["#603015", "#7b4a2a", "#5a3a22"],
    "black": ["#1a1a1a", "#2b2b2b"],
    "ginger": ["#c8501e", "#d2691e"],
    "silver": ["#b8b8c0", "#d0d0d0"],
    "pink": ["#ff66cc", "#f48fb1"],
    "blue": ["#3060e0", "#4a90e2"],
}
HAIR_PHRASES = {"blonde": "blonde hair", "brown": "brown hair", "black": "black hair",
                "ginger": "ginger hair", "silver": "silver hair", "pink": "pink hair", "blue": "blue hair"}
# Skin tones a reviewer accepts for each skin phrase.
SKIN = {"skin (#f0c090)": ["#f6d4aa", "#eac393", "#f0c090", "#e8b888"],
        "pale skin": ["#f6d4aa", "#ffe0bd", "#f5cfa0"],
        "light skin": ["#f6d4aa", "#ffe0bd", "#eac393"],
        "tan skin": ["#bd9267", "#c68e5a", "#d2a679"]}
WRONG_SKIN = ["#3cb043", "#4060ff", "#7a7a7a", "#a040c0"]
STRUCTURES = ["solid", "solid", "solid", "gradient", "two_tone", "checkered"]


def _pick(rng: np.random.Generator, items: list[str]) -> str:
    return items[int(rng.integers(0, len(items)))]


def _background(rng: np.random.Generator) -> dict:
    word = _pick(rng, ASKED_BACKGROUNDS)
    right = bool(rng.random() < 0.6)
    shown = word if right else _pick(rng, CONFUSERS[word])
    structure = _pick(rng, STRUCTURES)
    colour = _pick(rng, BACKGROUNDS[shown])
    second = _pick(rng, BACKGROUNDS[_pick(rng, [w for w in ASKED_BACKGROUNDS if w != shown])])
    use_hex = bool(rng.random() < 0.3)
    hex_note = f" ({BACKGROUNDS[word][0]})" if use_hex else ""
    ask = _pick(rng, ["plain", "solid", "gradient-or-structure"])
    structure_right = True
    if structure == "solid":
        phrase = f"solid {word} background{hex_note}" if ask == "solid" else f"{word} background{hex_note}"
    elif structure == "gradient":
        # a gradient of shades of the shown colour; asked either as a gradient or as solid
        if ask == "solid":
            phrase, structure_right = f"solid {word} background{hex_note}", False
        else:
            phrase = f"{word} gradient background{hex_note}"
    elif structure == "checkered":
        other = "black" if "white" in (word, shown) else "white"
        second = BACKGROUNDS[other][0]
        phrase = f"{word} and {other} checkered background"
    else:  # two_tone: the left half is the second colour; "X background" is then wrong
        if ask == "gradient-or-structure":
            return _background(rng)
        phrase = f"{word} background{hex_note}"
        right = False
    if structure == "solid" and ask == "gradient-or-structure":
        # "X gradient" asked, flat X shown: the colour is right, the structure is not
        phrase, structure_right = f"{word} gradient background", False
    return {"word": word, "shown": shown, "colour": colour, "second": second, "structure": structure,
            "phrase": phrase, "colour_right": right, "structure_right": structure_right}


def make_item(index: int, rng: np.random.Generator, n_sprites: int) -> dict:
    sprite = int(rng.integers(0, n_sprites))
    bg = _background(rng)
    parts = ["pixel art portrait"]
    hair = None
    if rng.random() < 0.7:
        asked = _pick(rng, list(HAIR))
        right = bool(rng.random() < 0.65)
        shown = asked if right else _pick(rng, [h for h in HAIR if h != asked])
        hair = {"asked": asked, "shown": shown, "colour": _pick(rng, HAIR[shown]), "right": right}
        parts.append(HAIR_PHRASES[asked])
    skin = None
    if rng.random() < 0.45:
        right = bool(rng.random() < 0.7)
        phrase = _pick(rng, list(SKIN))
        colour = _pick(rng, SKIN[phrase]) if right else _pick(rng, WRONG_SKIN)
        skin = {"colour": colour, "right": right, "phrase": phrase}
        parts.append(phrase)
    parts.append(bg["phrase"])
    uneven = bool(rng.random() < 0.3)
    broken = bool(rng.random() < 0.1)
    grid = {"cells": 24}
    if uneven:
        # SDXL-like: every cell 19-26 px wide, so the image shows about 20-26 cells
        widths_x = rng.integers(19, 27, 40).tolist()
        widths_y = rng.integers(19, 27, 40).tolist()
        off_x, off_y = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        count_x = int(np.searchsorted(np.cumsum(widths_x) - off_x, 512 - 10) + 1)
        count_y = int(np.searchsorted(np.cumsum(widths_y) - off_y, 512 - 10) + 1)
        grid = {"cells": max(count_x, count_y), "cells_x": count_x, "cells_y": count_y,
                "widths_x": widths_x, "widths_y": widths_y, "offset_x": off_x, "offset_y": off_y}
    overall = 9.0
    if not bg["colour_right"]:
        overall -= 4
    if not bg["structure_right"]:
        overall -= 2
    if hair and not hair["right"]:
        overall -= 2
    if skin and not skin["right"]:
        overall -= 3
    if broken:
        overall -= 6
    return {
        "id": f"judge_{index:03d}", "sprite": sprite, "seed": int(rng.integers(0, 2**31)),
        "prompt": ", ".join(parts), "background": bg, "hair": hair, "skin": skin,
        "uneven": uneven, "broken": broken, "grid": grid,
        "labels": {
            "cells_x": grid.get("cells_x", 24), "cells_y": grid.get("cells_y", 24),
            "background_right": bool(bg["colour_right"] and bg["structure_right"]),
            "hair_right": None if hair is None else hair["right"],
            "skin_right": None if skin is None else skin["right"],
            "overall": max(1.0, overall),
        },
    }


def build(n: int, seed: int, n_sprites: int = 96) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [make_item(i, rng, n_sprites) for i in range(n)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=180)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=LABELS)
    args = parser.parse_args(argv)
    items = build(args.n, args.seed)
    args.out.write_text(json.dumps({"seed": args.seed, "items": items}, indent=1) + "\n")
    print(f"{len(items)} labelled recipes -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
