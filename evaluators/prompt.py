"""Prompt parsing: hex colour codes with the phrase and role they belong to.

`pink hair (#ff66cc), lips (#cc6666), solid green background (#00ff00)` gives three colours;
the background is the code whose phrase says background. 3-digit codes are expanded, case
and spacing do not matter, and a kohya option tail (`--n negative text --w 512 ...`) is
ignored so negative-prompt colours never count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaluators.color import hex_to_rgb

_HEX = re.compile(r"(?<![0-9a-z&])#([0-9a-f]{6}|[0-9a-f]{3})(?![0-9a-z])", re.IGNORECASE)
# Something written as a colour code that is not one: `#00gg00`, `#12345`, `#ff00ff00`.
_HEX_LIKE = re.compile(r"(?<![0-9a-z&])#[0-9a-z]{2,}(?![0-9a-z])", re.IGNORECASE)
_KOHYA_OPTION = re.compile(r"(?:^|\s)--(?:n|w|h|d|l|s|f|c|ss)(?=\s|$)")
_DELIMITER = re.compile(r"[,;|\n]|\.(?=\s|$)")
_CONNECTOR = re.compile(r"\b(?:with|and|wearing|having|has|plus|against|over)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z0-9'-]*", re.IGNORECASE)
_MAX_PHRASE_WORDS = 5

# role -> words that give it away (the background role wins over every other one)
ROLE_WORDS: dict[str, frozenset[str]] = {
    "background": frozenset({"background", "backgrounds", "bg", "backdrop"}),
    "hair": frozenset({"hair", "hairstyle", "bangs", "ponytail", "braid", "braids", "beard", "mohawk"}),
    "skin": frozenset({"skin", "face", "complexion", "skintone"}),
    "eyes": frozenset({"eye", "eyes", "iris", "irises", "pupils"}),
    "lips": frozenset({"lip", "lips", "mouth"}),
    "clothing": frozenset({"shirt", "top", "jacket", "dress", "hoodie", "sweater", "clothes", "clothing",
                           "outfit", "collar", "coat", "t-shirt", "tshirt", "suit", "uniform", "robe"}),
    "accessory": frozenset({"crown", "necklace", "earring", "earrings", "hat", "glasses", "bow",
                            "headband", "cap", "jewelry", "jewellery", "tiara", "scarf", "mask"}),
    "outline": frozenset({"outline", "outlines", "border", "lineart"}),
}


@dataclass(frozen=True)
class PromptColor:
    hex: str                  # "#rrggbb", lower case
    rgb: tuple[int, int, int]
    phrase: str               # the words naming it, e.g. "pink hair"
    role: str                 # background | hair | skin | eyes | lips | clothing | accessory | outline | other

    def to_dict(self) -> dict[str, str]:
        return {"hex": self.hex, "role": self.role, "phrase": self.phrase}


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    colors: tuple[PromptColor, ...]

    @property
    def background(self) -> PromptColor | None:
        """The first code whose phrase says background, if any."""
        return next((c for c in self.colors if c.role == "background"), None)

    @property
    def foreground(self) -> tuple[PromptColor, ...]:
        """Every colour except the background one."""
        bg = self.background
        return tuple(c for c in self.colors if c is not bg)


def _role_of(phrase: str) -> str:
    words = {w.lower() for w in _WORD.findall(phrase)}
    for role, vocabulary in ROLE_WORDS.items():
        if words & vocabulary:
            return role
    return "other"


def _clean(fragment: str) -> str:
    words = _WORD.findall(fragment)
    return " ".join(words[-_MAX_PHRASE_WORDS:]).lower()


def _phrase_before(context: str) -> str:
    """Words right before a code: the last clause, after its last connector word."""
    pieces = _DELIMITER.split(context)
    clause = pieces[-1] if pieces else ""
    tail = _CONNECTOR.split(clause)[-1]
    return _clean(tail) or _clean(clause)


def _phrase_after(context: str) -> str:
    clause = _DELIMITER.split(context)[0]
    words = _WORD.findall(_CONNECTOR.split(clause)[0])
    return " ".join(words[:_MAX_PHRASE_WORDS]).lower()


def parse_prompt(text: str) -> ParsedPrompt:
    """Hex codes of a prompt, each with its phrase and role; duplicates keep the first."""
    text = text or ""
    option = _KOHYA_OPTION.search(text)
    body = text[: option.start()] if option else text
    matches = list(_HEX.finditer(body))
    colors: list[PromptColor] = []
    seen: set[tuple[str, bool]] = set()
    for i, match in enumerate(matches):
        start = matches[i - 1].end() if i else 0
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        phrase = _phrase_before(body[start: match.start()])
        if not phrase:
            phrase = _phrase_after(body[match.end(): end])
        rgb = hex_to_rgb(match.group(1))
        code = "#{:02x}{:02x}{:02x}".format(*rgb)
        role = _role_of(phrase)
        key = (code, role == "background")
        if key in seen:
            continue
        seen.add(key)
        colors.append(PromptColor(hex=code, rgb=rgb, phrase=phrase, role=role))
    return ParsedPrompt(text=text, colors=tuple(colors))


@dataclass(frozen=True)
class MalformedHex:
    position: int   # 0-based character offset of the `#` in the prompt text
    token: str      # what was written, e.g. "#00gg00"


def malformed_hex(text: str) -> list[MalformedHex]:
    """Tokens that look like colour codes but are not (a typo silently drops a colour target).

    Only the prompt body counts; the kohya option tail is free text for the trainer.
    """
    text = text or ""
    option = _KOHYA_OPTION.search(text)
    body = text[: option.start()] if option else text
    return [MalformedHex(m.start(), m.group(0)) for m in _HEX_LIKE.finditer(body)
            if not _HEX.fullmatch(m.group(0))]
