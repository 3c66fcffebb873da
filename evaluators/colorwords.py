"""Colour words in prompt phrases: "light blue background", "blonde hair", "pale skin".

A colour word is a colour name from the xkcd / CSS4 data whose head word is a colour word
(so "dark" or "ugly" alone never count), a hair word (blonde, brunette, ginger, auburn,
platinum, ...), or, for skin, a skin-tone word (pale, fair, tan, olive, dark). The longest
name wins ("forest green" over "green"); modifiers before it (light, dark, pale, bright, neon,
pastel, deep) set a lightness the image must show. Adjacent colour words are one colour
("platinum blonde", "blue green" when the data has no such name); "X or Y" and "X/Y" are one
colour met by either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from evaluators.color import hex_to_rgb
from evaluators.colornames import (
    ACCEPT,
    CATEGORIES,
    HAIR_WORDS,
    MODIFIERS,
    SKIN_TONES,
    SPECIFIC_HAIR,
    XKCD_COLORS,
    classify_rgb,
    head_category,
    lightness_of,
    named_colors,
    shift_lightness,
)

_TOKEN = re.compile(r"[a-z]+", re.IGNORECASE)
_MAX_NAME_WORDS = 3
# Skin-tone words (not colour names on their own): xkcd reference and lightness.
SKIN_WORDS: dict[str, tuple[str, str | None]] = {
    "pale": ("light peach", "light"), "fair": ("light peach", "light"), "light": ("light peach", "light"),
    "porcelain": ("light peach", "light"), "tan": ("tan", None), "tanned": ("tan", None),
    "olive": ("tan", None), "dark": ("brown", "dark"), "brown": ("brown", None),
    "black": ("dark brown", "dark"),
}
STRUCTURE_WORDS: dict[str, str] = {
    **dict.fromkeys(["solid", "plain", "flat", "simple", "uniform", "monochrome"], "solid"),
    **dict.fromkeys(["gradient", "ombre", "fade", "fading", "graded"], "gradient"),
    **dict.fromkeys(["checkered", "checkerboard", "chequered", "checker", "checkers", "checked",
                     "chessboard"], "checkered"),
}


@dataclass(frozen=True)
class ColorWord:
    phrase: str                         # the words, e.g. "light blue"
    rgb: tuple[int, int, int]           # reference colour
    category: str
    accept: frozenset[str]              # categories that meet it
    lightness: str | None               # "light" | "dark" | None
    specific: bool                      # judged within a lightness band of the reference
    start: int                          # token index span in the chunk
    end: int


@lru_cache(maxsize=1)
def _names() -> dict[str, int]:
    return named_colors().by_name


def _rgb_of(name: str) -> tuple[int, int, int]:
    """Reference of a name: the filtered table, else any xkcd name ("sandy" for blonde)."""
    if name in _names():
        r, g, b = (int(v) for v in named_colors().rgb[_names()[name]])
        return r, g, b
    return hex_to_rgb(XKCD_COLORS["xkcd:" + name])


def tokens(text: str) -> list[str]:
    """Lower-case words; "X/Y" reads as "X or Y" (either colour)."""
    return [t.lower().replace("gray", "grey") for t in _TOKEN.findall(text.replace("/", " or "))]


def _lookup(words: list[str], role: str) -> tuple[str, tuple[int, int, int], frozenset[str], bool] | None:
    """(name, reference, accepted categories, is a hair/skin word) for an exact name."""
    name = " ".join(words)
    if role == "hair" and name in HAIR_WORDS:
        ref, accept = HAIR_WORDS[name]
        return name, _rgb_of(ref), accept, True
    if name in _names():
        category = head_category(name) or "grey"
        return name, _rgb_of(name), ACCEPT[category], False
    return None


def find_color_words(words: list[str], role: str) -> list[ColorWord]:
    """Colour words of one chunk of a prompt (its tokens) that belongs to `role`."""
    found: list[ColorWord] = []
    i = 0
    while i < len(words):
        hit = None
        for size in range(min(_MAX_NAME_WORDS, len(words) - i), 0, -1):
            hit = _lookup(words[i: i + size], role)
            if hit:
                break
        if hit is None:
            i += 1
            continue
        name, rgb, accept, special = hit
        j = i + size
        start = i
        while start > 0 and words[start - 1] in MODIFIERS:
            start -= 1
        mods = set(words[start: j]) & MODIFIERS
        light = lightness_of(mods)
        if light and " ".join(words[start: j]) not in _names():
            rgb = shift_lightness(rgb, light)
        category = classify_rgb(rgb) if special else (head_category(name) or classify_rgb(rgb))
        head = name.split()[-1]
        specific = bool(light) or (not special and head not in CATEGORIES and head not in ("grey",)) \
            or (special and name in SPECIFIC_HAIR)
        word = ColorWord(" ".join(words[start: j]), rgb, category, accept, light, specific, start, j)
        if found and found[-1].end == start:       # "platinum blonde", "blue green": one colour
            prev = found.pop()
            word = ColorWord(f"{prev.phrase} {word.phrase}", word.rgb, word.category,
                             prev.accept | word.accept, word.lightness or prev.lightness,
                             word.specific, prev.start, j)
        elif found and found[-1].end == start - 1 and words[start - 1] == "or":
            word = either(found.pop(), word)
        found.append(word)
        i = j
    if role == "skin":
        found = _skin(words, found)
    return found


def either(first: ColorWord, second: ColorWord) -> ColorWord:
    """"X or Y" / "X/Y": one target met by either (the first is the reference; a lightness
    band only where both ask for the same one)."""
    same_light = first.lightness if first.lightness == second.lightness else None
    return ColorWord(f"{first.phrase} or {second.phrase}", first.rgb, first.category,
                     first.accept | second.accept, same_light,
                     first.specific and second.specific and same_light is not None,
                     first.start, second.end)


def _skin(words: list[str], found: list[ColorWord]) -> list[ColorWord]:
    """Skin is judged as a skin tone: a skin-tone word ("olive skin" is not green) wins over
    a colour name, and every tone of the same lightness is accepted."""
    for k, w in enumerate(words):
        if w in SKIN_WORDS:
            ref, light = SKIN_WORDS[w]
            rgb = _rgb_of(ref)
            return [ColorWord(w, rgb, classify_rgb(rgb), SKIN_TONES, light, light is not None, k, k + 1)]
    return [ColorWord(f.phrase, f.rgb, f.category, f.accept | SKIN_TONES if f.category in SKIN_TONES
                      else f.accept, f.lightness, f.specific, f.start, f.end) for f in found]


def structure_of(words: list[str]) -> str | None:
    """The background structure a phrase asks for, if it names one."""
    text = " ".join(words)
    if "two tone" in text or "two-tone" in text or "split" in words or "twotone" in words:
        return "two_tone"
    for w in words:
        if w in STRUCTURE_WORDS:
            return STRUCTURE_WORDS[w]
    return None


def hex_target(rgb: tuple[int, int, int], phrase_words: list[str], role: str
               ) -> tuple[str, frozenset[str], str | None, bool]:
    """(category, accepted categories, lightness, specific) of a hex code, from the words
    around it when they name a colour ("green (#00ff00)"), else from the code itself."""
    words = find_color_words(phrase_words, role)
    if words:
        w = words[-1]
        accept = w.accept | frozenset({classify_rgb(np.array(rgb, dtype=np.uint8))}) \
            if role == "skin" else w.accept
        return w.category, accept, w.lightness, w.specific
    category = classify_rgb(np.array(rgb, dtype=np.uint8))
    accept = ACCEPT[category] | (SKIN_TONES if role == "skin" and category in SKIN_TONES else frozenset())
    return category, accept, lightness_of(set(phrase_words)), True
