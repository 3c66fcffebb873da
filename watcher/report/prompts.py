"""The diverse prompt set rendered at the plan's review epochs for people to look at."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

SUBJECTS = ("woman", "man", "girl", "old man", "robot", "alien", "zombie", "ape", "boy")
HAIR = (("pink hair", "#ff66cc"), ("blonde hair", "#ffd966"), ("black hair", "#000000"),
        ("red hair", "#cc2200"), ("teal hair", "#008080"), ("white hair", "#eeeeee"),
        ("purple hair", "#8e44ad"))
ACCESSORIES = (("gold crown", "#ffd700"), ("silver necklace", "#c0c0c0"), ("black cap", "#1a1a1a"),
               ("gold earrings", "#ffd700"), ("red bandana", "#cc0000"), ("sunglasses", "#111111"),
               ("pearl necklace", "#f5f5dc"), ("blue headband", "#1e90ff"))
# A few prompts ask for another background: a LoRA that paints every background green has
# learnt a colour, not the prompt.
OTHER_BACKGROUNDS = (("solid blue background", "#0000ff"), ("solid yellow background", "#ffff00"))
DEFAULT_BACKGROUND = "solid green background (#00ff00)"
_OPTIONS = re.compile(r"\s--[a-z]{1,2}\s")


def _split_options(prompt: str) -> tuple[str, str]:
    """('pixel art ..., bg (#00ff00)', ' --n blurry ...'): kohya's option tail kept apart."""
    m = _OPTIONS.search(" " + prompt + " ")
    if not m:
        return prompt.strip(), ""
    cut = max(0, m.start() - 1)
    return prompt[:cut].strip(), " " + prompt[cut:].strip()


def review_prompts(base_prompts: Sequence[str], count: int = 12) -> list[str]:
    """The base prompts, then new ones varying subject, hair colour and accessory (each with
    its hex code) on the base prompts' background, two with another background; `count` in
    all, deterministic, no duplicates."""
    bodies = [_split_options(p) for p in base_prompts if p.strip()]
    backgrounds = Counter(part.strip() for body, _ in bodies for part in body.split(",")
                          if "background" in part.lower())
    background = backgrounds.most_common(1)[0][0] if backgrounds else DEFAULT_BACKGROUND
    tail = bodies[0][1] if bodies else ""
    prefix = "pixel art portrait of"
    if bodies and " of " in bodies[0][0].split(",")[0]:
        prefix = bodies[0][0].split(",")[0].rsplit(" of ", 1)[0] + " of"

    out: list[str] = []
    seen: set[str] = set()

    def add(text: str) -> None:
        if text.lower() not in seen and len(out) < count:
            seen.add(text.lower())
            out.append(text)

    for body, opts in bodies[: max(1, count // 3)]:
        add(body + opts)
    others = [f"{name} ({code})" for name, code in OTHER_BACKGROUNDS]
    i, limit = 1, 1 + len(SUBJECTS) * len(HAIR) * len(ACCESSORIES)
    while len(out) < count and i < limit:
        subject = SUBJECTS[i % len(SUBJECTS)]
        hair, hair_hex = HAIR[(i * 3) % len(HAIR)]
        acc, acc_hex = ACCESSORIES[(i * 5) % len(ACCESSORIES)]
        article = "an" if subject[0] in "aeiou" else "a"
        bg = others[(i // 5) % len(others)] if i % 5 == 4 else background
        if subject in ("robot", "alien", "zombie", "ape"):
            hair = {"robot": "metal head", "alien": "cyan skin", "zombie": "green skin",
                    "ape": "brown fur"}[subject]
            hair_hex = {"robot": "#a9a9a9", "alien": "#00ced1", "zombie": "#7fb800", "ape": "#7b4a12"}[subject]
        add(f"{prefix} {article} {subject}, {hair} ({hair_hex}), {acc} ({acc_hex}), {bg}{tail}")
        i += 1
    return out
