"""Prompt parsing: colours (hex codes and colour words) with the phrase and role they belong to.

`pink hair (#ff66cc), lips (#cc6666), solid green background (#00ff00)` gives three colours;
the background is the code whose phrase says background. 3-digit codes are expanded, case
and spacing do not matter, and a kohya option tail (`--n negative text --w 512 ...`) is
ignored so negative-prompt colours never count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from evaluators.color import hex_to_rgb
from evaluators.colorwords import find_color_words, hex_target, structure_of, tokens

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
    "background": frozenset({"background", "backgrounds", "bg", "backdrop", "gradient", "checkerboard",
                             "wallpaper", "backround"}),
    "hair": frozenset({"hair", "hairstyle", "bangs", "ponytail", "braid", "braids", "beard", "mohawk",
                       "haired", "hairs", "pigtails", "twintails", "bob", "curls", "afro"}),
    "skin": frozenset({"skin", "face", "complexion", "skintone", "skinned"}),
    "eyes": frozenset({"eye", "eyes", "iris", "irises", "pupils", "eyed"}),
    "lips": frozenset({"lip", "lips", "mouth"}),
    "clothing": frozenset({"shirt", "top", "jacket", "dress", "hoodie", "sweater", "clothes", "clothing",
                           "outfit", "collar", "coat", "t-shirt", "tshirt", "suit", "uniform", "robe", "armor",
                           "armour", "vest", "cloak", "tunic", "sweatshirt", "blouse", "kimono"}),
    "accessory": frozenset({"crown", "necklace", "earring", "earrings", "hat", "glasses", "bow",
                            "headband", "cap", "jewelry", "jewellery", "tiara", "scarf", "mask"}),
    "outline": frozenset({"outline", "outlines", "border", "lineart"}),
}


@dataclass(frozen=True)
class PromptColor:
    hex: str                  # "#rrggbb", lower case: the code, or the colour word's reference
    rgb: tuple[int, int, int]
    phrase: str               # the words naming it, e.g. "pink hair"
    role: str                 # background | hair | skin | eyes | lips | clothing | accessory | outline | other
    category: str = ""        # colour category a reviewer files it under (evaluators.colornames)
    accept: frozenset[str] = frozenset()   # categories that meet it
    lightness: str | None = None           # "light" / "dark" when a modifier asks for it
    specific: bool = False    # judged within a lightness band of the reference too
    source: str = "hex"       # "hex" (a code was given) or "word" (colour words only)
    position: int = 0         # character offset in the prompt

    def to_dict(self) -> dict[str, str]:
        return {"hex": self.hex, "role": self.role, "phrase": self.phrase,
                "category": self.category, "source": self.source}


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    colors: tuple[PromptColor, ...]
    background_structure: str | None = None   # solid | gradient | checkered | two_tone, if asked

    @property
    def background(self) -> PromptColor | None:
        """The first colour whose phrase says background, if any."""
        return next((c for c in self.colors if c.role == "background"), None)

    @property
    def backgrounds(self) -> tuple[PromptColor, ...]:
        """Every background colour ("blue to purple gradient background" names two)."""
        return tuple(c for c in self.colors if c.role == "background")

    @property
    def foreground(self) -> tuple[PromptColor, ...]:
        """Every colour except the background ones."""
        return tuple(c for c in self.colors if c.role != "background")


def _role_of(phrase: str) -> str:
    words = {part for w in _WORD.findall(phrase) for part in w.lower().split("-")}
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


def _spans(text: str, pattern: re.Pattern[str], base: int = 0) -> list[tuple[int, str]]:
    """(offset, piece) of `text` split by `pattern`."""
    out, last = [], 0
    for m in pattern.finditer(text):
        out.append((base + last, text[last: m.start()]))
        last = m.end()
    out.append((base + last, text[last:]))
    return out


def _hex_colors(body: str) -> list[PromptColor]:
    matches = list(_HEX.finditer(body))
    colors: list[PromptColor] = []
    for i, match in enumerate(matches):
        start = matches[i - 1].end() if i else 0
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        phrase = _phrase_before(body[start: match.start()])
        if not phrase:
            phrase = _phrase_after(body[match.end(): end])
        rgb = hex_to_rgb(match.group(1))
        code = "#{:02x}{:02x}{:02x}".format(*rgb)
        role = _role_of(phrase)
        category, accept, light, specific = hex_target(rgb, tokens(phrase), role)
        colors.append(PromptColor(code, rgb, phrase, role, category, accept, light, specific,
                                  "hex", match.start()))
    return colors


def _segments(words: list[str], default: str) -> list[tuple[list[str], str]]:
    """A chunk cut after each role word, each piece with that word's role ("a yellow scarf on a
    blue background": the scarf is yellow, the background blue); a tail without one takes
    the last role seen, or `default`."""
    out: list[tuple[list[str], str]] = []
    start = 0
    for i, w in enumerate(words):
        role = _role_of(w)
        if role != "other":
            out.append((words[start: i + 1], role))
            start = i + 1
    if start < len(words):
        tail = words[start:]
        if out:
            out[-1] = (out[-1][0] + tail, out[-1][1])
        else:
            out.append((tail, default))
    return out


def _word_colors(body: str, hex_positions: list[int]) -> tuple[list[PromptColor], str | None]:
    """Colour words of chunks that hold no hex code, each with its chunk's role (or the next
    chunk's in the same clause: "blue and pink background"); words with no role are skipped."""
    colors: list[PromptColor] = []
    structure: str | None = None
    for clause_at, clause in _spans(body, _DELIMITER):
        chunks = _spans(clause, _CONNECTOR, clause_at)
        roles = [_role_of(text) for _, text in chunks]
        clause_words = tokens(clause)
        if "background" in roles and structure is None:
            structure = structure_of(clause_words)
        for k, (at, text) in enumerate(chunks):
            if any(at <= p < at + len(text) for p in hex_positions):
                continue
            role = roles[k]
            if role == "other":
                role = next((r for r in roles[k + 1:] if r != "other"), "other")
            if role == "other":
                continue
            for seg_words, seg_role in _segments(tokens(text), role):
                for w in find_color_words(seg_words, seg_role):
                    code = "#{:02x}{:02x}{:02x}".format(*w.rgb)
                    phrase = " ".join(seg_words[w.start:])[:60].strip()
                    colors.append(PromptColor(code, w.rgb, phrase, seg_role, w.category, w.accept,
                                              w.lightness, w.specific, "word", at))
    return colors, structure


def parse_prompt(text: str) -> ParsedPrompt:
    """Colours of a prompt (hex codes and colour words), each with its phrase, role and
    category; duplicates keep the first."""
    text = text or ""
    option = _KOHYA_OPTION.search(text)
    body = text[: option.start()] if option else text
    hex_colors = _hex_colors(body)
    word_colors, structure = _word_colors(body, [c.position for c in hex_colors])
    colors: list[PromptColor] = []
    seen: set[tuple[str, bool]] = set()
    for colour in sorted(hex_colors + word_colors, key=lambda c: c.position):
        key = (colour.hex if colour.source == "hex" else f"{colour.role}:{colour.phrase}",
               colour.role == "background")
        if key in seen:
            continue
        seen.add(key)
        colors.append(colour)
    if structure is None:
        for c in colors:
            if c.role == "background" and c.source == "hex":
                structure = structure_of(tokens(c.phrase))
                break
    return ParsedPrompt(text=text, colors=tuple(colors), background_structure=structure)


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
