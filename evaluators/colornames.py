"""Colour names and colour categories, from maintained data (matplotlib's xkcd survey and CSS4
colour names), so that prompts' colour words get a reference colour and a category, and an
image's colours get the category a person would call them.

Categories: the eleven basic colour terms (red, orange, yellow, green, blue, purple, pink,
brown, grey, black, white) plus four that people keep apart from them: teal (teal, turquoise,
aqua, cyan: neither blue nor green), olive (olive, khaki, mustard: not green), beige (tan,
sand, cream) and the basic terms' own synonyms. A colour's category is a distance-weighted
vote of its K nearest named colours (CIEDE2000), each named colour labelled by its head (last)
word through HEAD_WORDS; names whose head word is not a colour word (`xkcd:puce`, `xkcd:ugly`)
are not used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from evaluators.color import delta_e, hex_to_rgb, to_lab


def _load_color_data() -> tuple[dict[str, str], dict[str, str]]:
    """matplotlib's colour-name tables (matplotlib/_color_data.py), loaded on their own:
    importing matplotlib itself would read its rc files and cost ~0.3 s per command."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("matplotlib (colour-name data) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "_color_data.py"
    data_spec = importlib.util.spec_from_file_location("_epochwatch_color_data", path)
    assert data_spec is not None and data_spec.loader is not None
    module = importlib.util.module_from_spec(data_spec)
    data_spec.loader.exec_module(module)
    return dict(module.XKCD_COLORS), {k: v.lower() for k, v in module.CSS4_COLORS.items()}


# Loaded at import (a plain dict module, ~2 ms), so scoring itself never opens a file.
XKCD_COLORS, CSS4_COLORS = _load_color_data()

# head word of a colour name -> category (what a person files that word under)
HEAD_WORDS: dict[str, str] = {
    **dict.fromkeys(["red", "crimson", "scarlet", "maroon", "burgundy", "cherry", "ruby", "blood",
                     "wine", "brick", "vermillion", "vermilion"], "red"),
    **dict.fromkeys(["orange", "tangerine", "pumpkin", "rust", "amber", "apricot", "ochre"], "orange"),
    **dict.fromkeys(["yellow", "lemon", "canary", "gold", "golden", "butter", "banana", "sunflower",
                     "dandelion"], "yellow"),
    **dict.fromkeys(["green", "lime", "emerald", "mint", "jade", "grass", "kelly", "sage"], "green"),
    **dict.fromkeys(["olive", "khaki", "mustard", "moss"], "olive"),
    **dict.fromkeys(["teal", "turquoise", "aqua", "cyan", "aquamarine"], "teal"),
    **dict.fromkeys(["blue", "navy", "azure", "cobalt", "sapphire", "cerulean", "denim",
                     "periwinkle"], "blue"),
    **dict.fromkeys(["purple", "violet", "lavender", "lilac", "indigo", "plum", "mauve", "amethyst",
                     "grape", "eggplant", "aubergine"], "purple"),
    **dict.fromkeys(["pink", "rose", "magenta", "fuchsia", "salmon", "coral", "blush", "raspberry"],
                    "pink"),
    **dict.fromkeys(["brown", "chocolate", "coffee", "chestnut", "mahogany", "umber", "sienna",
                     "mocha", "auburn", "copper"], "brown"),
    **dict.fromkeys(["beige", "tan", "sand", "cream", "wheat", "buff", "ecru", "taupe"], "beige"),
    **dict.fromkeys(["grey", "gray", "silver", "charcoal", "slate", "ash"], "grey"),
    **dict.fromkeys(["black", "ebony"], "black"),
    **dict.fromkeys(["white", "snow", "ivory"], "white"),
}
BASIC = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "grey", "black", "white")
CATEGORIES = BASIC + ("teal", "olive", "beige")
# A target of category X is met by these categories (a light brown is often filed as beige).
ACCEPT: dict[str, frozenset[str]] = {c: frozenset({c}) for c in CATEGORIES}
ACCEPT["brown"] = frozenset({"brown", "beige"})
ACCEPT["beige"] = frozenset({"beige", "brown"})
# Human skin tones, whatever words name them ("olive skin" is not green).
SKIN_TONES = frozenset({"beige", "brown", "orange", "pink", "white"})

LIGHT_MODIFIERS = frozenset({"light", "pale", "pastel", "baby", "soft", "fair", "lighter"})
DARK_MODIFIERS = frozenset({"dark", "deep", "darker", "dim"})
VIVID_MODIFIERS = frozenset({"bright", "neon", "vivid", "hot", "electric", "saturated", "bold"})
MODIFIERS = LIGHT_MODIFIERS | DARK_MODIFIERS | VIVID_MODIFIERS | {"muted", "dusty", "medium", "solid"}

# Hair words that are not colour names: each is the xkcd colour it looks like, and the
# categories a reviewer accepts for it.
HAIR_WORDS: dict[str, tuple[str, frozenset[str]]] = {
    "blonde": ("sandy", frozenset({"yellow", "beige"})),
    "blond": ("sandy", frozenset({"yellow", "beige"})),
    "platinum": ("off white", frozenset({"white", "grey", "beige", "yellow"})),
    "brunette": ("brown", frozenset({"brown"})),
    "ginger": ("burnt orange", frozenset({"orange", "red"})),
    "auburn": ("auburn", frozenset({"red", "brown", "orange"})),
    "copper": ("copper", frozenset({"orange", "brown", "red"})),
    "chestnut": ("chestnut", frozenset({"brown", "red"})),
    "raven": ("black", frozenset({"black", "grey"})),
    "black": ("black", frozenset({"black", "grey"})),
    "silver": ("silver", frozenset({"grey", "white"})),
    "grey": ("grey", frozenset({"grey", "white"})),
    "gray": ("grey", frozenset({"grey", "white"})),
}
# Modifiers that put a green / blue name in its own category.
OVERRIDE_MODIFIERS: dict[str, str] = {
    **dict.fromkeys(["teal", "turquoise", "aqua", "cyan", "aquamarine", "tealish", "turquoisey"], "teal"),
    **dict.fromkeys(["olive", "khaki", "army", "moss", "mossy", "mud", "muddy", "swamp", "military",
                     "camo", "camouflage", "mustard", "drab"], "olive"),
}
K_NEIGHBOURS = 7
NEUTRAL_CHROMA, WHITE_L, BLACK_L = 6.0, 95.0, 10.0
# A colour whose runner-up category gets this share of the survey vote is borderline: it
# meets targets of either category (bench.judge.compound measures where this sits).
BORDER_SHARE = 0.4
# Names between two hues ("blue green", "turquoise blue") vote with this weight.
COMPOUND_WEIGHT = 0.35
JOKE_WORDS = frozenset({"shit", "poop", "puke", "vomit", "barf", "snot", "booger", "baby", "ugly",
                        "sick", "murky", "poo", "diarrhea", "dirty", "gross"})
# Hair words judged within the lightness band too (dark grey hair is black hair, not grey).
SPECIFIC_HAIR = frozenset({"blonde", "blond", "platinum", "silver", "grey", "black", "raven"})
# Lightness band (CIE L*) around a specific target (a modifier, or a non-basic name like navy).
LIGHTNESS_BAND = 25.0
_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class NamedColors:
    names: tuple[str, ...]
    rgb: np.ndarray          # (M, 3) uint8
    lab: np.ndarray          # (M, 3)
    category: np.ndarray     # (M,) str
    by_name: dict[str, int]  # "light blue" -> row
    weight: np.ndarray       # (M,) vote weight: names that also name another hue vote less


def head_category(name: str) -> str | None:
    """Category of a colour name from its head word ("forest green" -> green); a teal or olive
    modifier wins over a green or blue head ("teal green", "army green" are neither)."""
    words = _WORD.findall(name.lower())
    if not words:
        return None
    head = HEAD_WORDS.get(words[-1])
    if head in ("green", "blue"):
        for w in words[:-1]:
            if w in OVERRIDE_MODIFIERS:
                return OVERRIDE_MODIFIERS[w]
    return head


def _split_css(name: str) -> str:
    """CSS4 names run together ("lightseagreen"): split off the longest known head word."""
    for size in range(min(len(name), 10), 2, -1):
        if name[-size:] in HEAD_WORDS:
            rest = name[:-size]
            return f"{rest} {name[-size:]}".strip()
    return name


@lru_cache(maxsize=1)
def named_colors() -> NamedColors:
    """xkcd colours first (the survey names), then CSS4 names not already present."""
    names: list[str] = []
    rgbs: list[tuple[int, int, int]] = []
    seen: set[str] = set()
    entries = [(k[5:], v) for k, v in XKCD_COLORS.items()] + [(_split_css(k), v) for k, v in CSS4_COLORS.items()]
    n_xkcd = 0
    for k, (name, value) in enumerate(entries):
        name = name.replace("gray", "grey")
        if name in seen or head_category(name) is None:
            continue
        n_xkcd += k < len(XKCD_COLORS)
        seen.add(name)
        names.append(name)
        rgbs.append(hex_to_rgb(value))
    rgb = np.array(rgbs, dtype=np.uint8)
    cats = np.array([head_category(n) for n in names])
    # Only survey names vote (CSS names are a web standard, not what people say), and not the
    # survey's joke names ("shit green", "vomit green" are olive / khaki shades).
    weight = np.array([0.0 if i >= n_xkcd or set(_WORD.findall(n)) & JOKE_WORDS
                       else COMPOUND_WEIGHT if other_hue(n) else 1.0 for i, n in enumerate(names)])
    return NamedColors(tuple(names), rgb, to_lab(rgb), cats, {n: i for i, n in enumerate(names)}, weight)


def other_hue(name: str) -> bool:
    """Does a name also name a hue besides its head ("blue green", "greenish blue")?"""
    words = _WORD.findall(name.lower())
    head = HEAD_WORDS.get(words[-1]) if words else None
    for w in words[:-1]:
        stem = re.sub(r"(dish|ish|ey|y)$", "", w)
        for cand in (w, stem, stem + "e", stem + "d"):
            if cand in HEAD_WORDS and HEAD_WORDS[cand] != head:
                return True
    return False


def classify_lab(lab: np.ndarray, exclude_self: bool = False) -> list[str]:
    """Category of each Lab colour (..., 3) -> flat list: weighted vote of the nearest names.
    `exclude_self` leaves out named colours within 0.5 of the query (leave-one-out checks)."""
    return [primary(c) for c in categories_of(lab, exclude_self)]


def primary(category: str) -> str:
    """The winning category of a `categories_of` entry ("olive|green" -> "olive")."""
    return category.split("|", 1)[0]


def accepted(category: str, accept: frozenset[str]) -> bool:
    """Does a `categories_of` entry meet a target accepting `accept` (either of a borderline
    colour's two categories does)?"""
    return any(part in accept for part in category.split("|"))


def categories_of(lab: np.ndarray, exclude_self: bool = False) -> list[str]:
    """Like classify_lab, but a borderline colour, one whose runner-up category holds at
    least BORDER_SHARE of the survey vote, is "winner|runner-up" ("olive|green": an olive
    sage that many people call green)."""
    table = named_colors()
    queries = np.asarray(lab, dtype=float).reshape(-1, 3)
    if not len(queries):
        return []
    dist = delta_e(queries[:, None, :], table.lab[None, :, :])        # (Q, M)
    if exclude_self:
        dist = np.where(dist < 0.5, np.inf, dist)
    dist = np.where(table.weight[None, :] > 0, dist, np.inf)
    nearest = np.argpartition(dist, K_NEIGHBOURS, axis=1)[:, :K_NEIGHBOURS]
    out: list[str] = []
    chroma = np.hypot(queries[:, 1], queries[:, 2])
    for q, (row, idx) in enumerate(zip(dist, nearest, strict=True)):
        # Near-neutral extremes are white / black whatever the survey's neighbours say
        # (xkcd calls #fdfdfe "pale grey").
        if chroma[q] < NEUTRAL_CHROMA and queries[q, 0] >= WHITE_L:
            out.append("white")
            continue
        if chroma[q] < NEUTRAL_CHROMA and queries[q, 0] <= BLACK_L:
            out.append("black")
            continue
        votes: dict[str, float] = {}
        for j in idx:
            name = str(table.category[j])
            votes[name] = votes.get(name, 0.0) + float(table.weight[j]) / (1.0 + float(row[j]))
        ranked = sorted(votes, key=lambda c: -votes[c])  # stable: ties go to the first voted
        total = sum(votes.values())
        second = ranked[1] if len(ranked) > 1 and votes[ranked[1]] >= BORDER_SHARE * total else None
        out.append(f"{ranked[0]}|{second}" if second else ranked[0])
    return out


def classify_rgb(rgb: np.ndarray | tuple[int, int, int]) -> str:
    return classify_lab(to_lab(np.asarray(rgb, dtype=np.uint8).reshape(1, 3)))[0]


def lightness_of(modifiers: set[str] | frozenset[str]) -> str | None:
    if modifiers & LIGHT_MODIFIERS:
        return "light"
    if modifiers & DARK_MODIFIERS:
        return "dark"
    return None


def shift_lightness(rgb: tuple[int, int, int], lightness: str | None) -> tuple[int, int, int]:
    """A base colour made lighter / darker for a modifier the data has no name for."""
    if lightness is None:
        return rgb
    base = np.asarray(rgb, dtype=float)
    toward = 255.0 if lightness == "light" else 0.0
    mixed = base + (toward - base) * (0.5 if lightness == "light" else 0.45)
    r, g, b = (int(v) for v in np.clip(np.rint(mixed), 0, 255))
    return r, g, b
