"""Sample prompts: the kohya sample-prompt file formats, the prompt a sample is rendered
from, and the diverse set rendered at the plan's review epochs for people to look at. (What a
prompt's words mean for scoring, its colours and their roles, is `evaluators.prompt`.)

`.txt`: one prompt per line, `text --n neg --w 512 --h 512 --d 42 --s 20 --l 7.5`.
`.toml`: a `[prompt]` table of defaults and `[[prompt.subset]]` entries, one per prompt.
`.json`: a list of prompt objects (or of `.txt`-style lines).
Objects use sd-scripts' key names: prompt, negative_prompt, width, height, seed,
sample_steps, scale. Entries keep the file's order: kohya numbers its samples by it.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass(frozen=True)
class SamplePrompt:
    text: str
    negative: str
    seed: int
    width: int
    height: int
    steps: int
    cfg: float


@dataclass(frozen=True)
class PromptDefaults:
    negative: str = ""
    seeds: tuple[int, ...] = (1234,)
    width: int = 512
    height: int = 512
    steps: int = 20
    cfg: float = 7.5


# Options sd-scripts understands that do not change what we render here.
_IGNORED_PROMPT_OPTIONS = frozenset({"ss", "cn", "am"})


def _kohya_size(value: int) -> int:
    return max(64, value - value % 8)  # sd-scripts rounds sample sizes down the same way


def parse_prompt_file(path: Path | str, defaults: PromptDefaults) -> list[SamplePrompt]:
    """A kohya sample-prompt file (.txt, .toml or .json), prompts in the file's order.

    A prompt without a seed is expanded over `defaults.seeds` (one SamplePrompt per seed).
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read prompt file: {exc}") from None
    suffix = path.suffix.lower()
    if suffix in (".toml", ".json"):
        return _parse_structured(path, text, suffix, defaults)
    out: list[SamplePrompt] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):  # '#' inside a prompt is a hex code, not a comment
            continue
        try:
            out.extend(_parse_prompt_line(line, defaults))
        except ValueError as exc:
            raise ConfigError(f"{path}:{lineno}: {exc}") from None
    return out


# sd-scripts' key for each option of the .txt format, in .toml and .json prompt files.
_KEY_OPTION = {"negative_prompt": "n", "width": "w", "height": "h", "seed": "d",
               "sample_steps": "s", "scale": "l"}
# Keys sd-scripts reads that do not change what is judged here.
_IGNORED_PROMPT_KEYS = frozenset({"sample_sampler", "controlnet_image", "enum", "subset",
                                  "network_multiplier", "guidance_rescale"})


def _parse_structured(path: Path, text: str, suffix: str, d: PromptDefaults) -> list[SamplePrompt]:
    try:
        data: Any = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid {suffix[1:].upper()}: {exc}") from None
    if suffix == ".toml":
        table = data.get("prompt")
        if not isinstance(table, dict) or not isinstance(table.get("subset"), list):
            raise ConfigError(f"{path}: expected a [prompt] table with [[prompt.subset]] entries")
        shared = {k: v for k, v in table.items() if k != "subset"}
        entries: list[Any] = [{**shared, **e} if isinstance(e, dict) else e for e in table["subset"]]
        where = "prompt.subset"
    else:
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of prompts")
        entries, where = data, "prompt"
    out: list[SamplePrompt] = []
    for i, entry in enumerate(entries, 1):
        try:
            out.extend(_parse_prompt_line(entry, d) if isinstance(entry, str)
                       else _parse_prompt_object(entry, d))
        except ValueError as exc:
            raise ConfigError(f"{path}: {where} {i}: {exc}") from None
    return out


def _parse_prompt_object(entry: Any, d: PromptDefaults) -> list[SamplePrompt]:
    if not isinstance(entry, dict):
        raise ValueError("a prompt must be an object or a string")
    text = entry.get("prompt")
    if not isinstance(text, str):
        raise ValueError('"prompt" must be a string')
    values: dict[str, Any] = {}
    for key, value in entry.items():
        if key == "prompt" or key in _IGNORED_PROMPT_KEYS:
            continue
        if key not in _KEY_OPTION:
            known = ", ".join(["prompt", *_KEY_OPTION])
            raise ValueError(f"unknown key {key!r} (known: {known})")
        name = _KEY_OPTION[key]
        if name == "n":
            if not isinstance(value, str):
                raise ValueError(f"{key}: expected a string, got {value!r}")
            values["negative"] = value
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or (
                name != "l" and value != int(value)):
            raise ValueError(f"{key}: expected a {'number' if name == 'l' else 'whole number'}, "
                             f"got {value!r}")
        else:
            values[name] = float(value) if name == "l" else int(value)
    return _make_prompts(text.strip(), values, d)


_OPTION = re.compile(r"\s--[a-z]{1,2}\s")


def split_options(prompt: str) -> tuple[str, str]:
    """('pixel art ..., bg (#00ff00)', ' --n blurry ...'): kohya's option tail kept apart."""
    m = _OPTION.search(" " + prompt + " ")
    if not m:
        return prompt.strip(), ""
    cut = max(0, m.start() - 1)
    return prompt[:cut].strip(), " " + prompt[cut:].strip()


def _parse_prompt_line(line: str, d: PromptDefaults) -> list[SamplePrompt]:
    text, *options = (" " + line).split(" --")  # a line may start with an option
    text = text.strip()
    values: dict[str, Any] = {}
    for option in options:
        name, _, value = option.strip().partition(" ")
        value = value.strip()
        try:
            if name == "n":
                values["negative"] = value
            elif name in ("w", "h", "s", "d"):
                values[name] = int(value)
            elif name == "l":
                values["l"] = float(value)
            elif name not in _IGNORED_PROMPT_OPTIONS:
                raise ValueError(f"unknown prompt option --{name} (known: n, w, h, d, s, l)")
        except ValueError as exc:
            if "unknown prompt option" in str(exc):
                raise
            raise ValueError(f"--{name}: bad value {value!r}") from None
    return _make_prompts(text, values, d)


def _make_prompts(text: str, values: dict[str, Any], d: PromptDefaults) -> list[SamplePrompt]:
    if not text:
        raise ValueError("empty prompt text")
    if values.get("s", 1) < 1 or values.get("w", 64) < 1 or values.get("h", 64) < 1:
        raise ValueError("--w, --h and --s must be positive")
    seeds = (values["d"],) if "d" in values else d.seeds
    return [
        SamplePrompt(
            text=text,
            negative=values.get("negative", d.negative),
            seed=seed,
            width=_kohya_size(values.get("w", d.width)),
            height=_kohya_size(values.get("h", d.height)),
            steps=values.get("s", d.steps),
            cfg=values.get("l", d.cfg),
        )
        for seed in seeds
    ]


# ----------------------------------------------------------------------------- review set

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
def review_prompts(base_prompts: Sequence[str], count: int = 12) -> list[str]:
    """The base prompts, then new ones varying subject, hair colour and accessory (each with
    its hex code) on the base prompts' background, two with another background; `count` in
    all, deterministic, no duplicates."""
    bodies = [split_options(p) for p in base_prompts if p.strip()]
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
