"""The kohya sample-prompt file format (`text --n neg --w 512 --h 512 --d 42 --s 20 --l 7.5`)
and the prompt a sample is rendered from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from watcher.tomllines import ConfigError


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
    """A kohya sample-prompt .txt file: one prompt per line, `#` comment lines skipped.

    A prompt without `--d` is expanded over `defaults.seeds` (one SamplePrompt per seed).
    """
    path = Path(path)
    if path.suffix.lower() in (".toml", ".json"):
        raise ConfigError(f"{path}: only the .txt kohya prompt format is supported")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: prompt file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read prompt file: {exc}") from None
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
