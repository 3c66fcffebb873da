"""Write the next experiment's kohya config: this run's file with only the changed keys edited.

Edits are made line by line so every other line (comments included) stays as it was; the
result is parsed back and compared with the expected flattened config, and if a line edit
cannot be made safely (a multi-line value) the whole file is written out from the parsed data
instead. Either way the written config differs from this run's in exactly the changed keys.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

# Where sd-scripts' sample configs keep each option, for keys the file does not have yet.
SECTION_FOR = {
    "keep_tokens": "dataset_arguments",
    "caption_dropout_rate": "dataset_arguments",
    "network_args": "additional_network_arguments",
    "network_dim": "additional_network_arguments",
    "network_alpha": "additional_network_arguments",
    "learning_rate": "optimizer_arguments",
    "unet_lr": "optimizer_arguments",
    "text_encoder_lr": "optimizer_arguments",
    "max_train_epochs": "training_arguments",
}
_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class KohyaEditError(ValueError):
    """The edited config would not be what was asked for."""


def flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """As sd-scripts reads a --config_file: one level of sections flattened away."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise KohyaEditError(f"not a finite number: {value!r}")
        text = repr(value)
        if "e" in text:  # 5e-05 -> 5e-5, as kohya configs write it
            mantissa, exponent = text.split("e")
            text = f"{mantissa}e{int(exponent)}"
        return text
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for everything json escapes
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise KohyaEditError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def dump_toml(data: Mapping[str, Any]) -> str:
    """A plain TOML document: top-level keys, then one table per section."""
    lines = [f"{_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for section, table in data.items():
        if isinstance(table, dict):
            lines += ["", f"[{_key(section)}]"]
            for k, v in table.items():
                if isinstance(v, dict):
                    raise KohyaEditError(f"nested table {section}.{k} is not a kohya option")
                lines.append(f"{_key(k)} = {toml_value(v)}")
    return "\n".join(lines).lstrip("\n") + "\n"


def _split_comment(rest: str) -> tuple[str, str] | None:
    """(value text, comment) of a one-line `key = value  # comment`, None if multi-line."""
    try:
        whole = tomllib.loads("x = " + rest)["x"]
    except tomllib.TOMLDecodeError:
        return None
    for i, ch in enumerate(rest):
        if ch == "#":
            try:
                if tomllib.loads("x = " + rest[:i])["x"] == whole:
                    return rest[:i].rstrip(), rest[i:]
            except tomllib.TOMLDecodeError:
                continue
    return rest.rstrip(), ""


def _edit_lines(text: str, changes: Mapping[str, Any], note: str) -> str:
    lines = text.splitlines()
    section = ""
    found: set[str] = set()
    last_key_line: dict[str, int] = {}
    for i, line in enumerate(lines):
        table = _TABLE.match(line)
        if table:
            section = table.group(1)
            last_key_line.setdefault(section, i)
            continue
        m = re.match(r"^(\s*)([A-Za-z0-9_-]+|\"[^\"]+\")\s*=(.*)$", line)
        if not m:
            continue
        last_key_line[section] = i
        key = m.group(2).strip('"')
        if key not in changes:
            continue
        split = _split_comment(m.group(3))
        if split is None:
            raise KohyaEditError(f"{key}: multi-line value")
        old = split[0].strip()
        lines[i] = f"{m.group(1)}{_key(key)} = {toml_value(changes[key])}  # was {old}: {note}"
        found.add(key)
    inserts: dict[int, list[str]] = {}
    appended: dict[str, list[str]] = {}
    for key, value in changes.items():
        if key in found:
            continue
        entry = f"{_key(key)} = {toml_value(value)}  # new: {note}"
        target = SECTION_FOR.get(key, "training_arguments")
        if target in last_key_line:
            inserts.setdefault(last_key_line[target], []).append(entry)
        else:
            appended.setdefault(target, []).append(entry)
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        out.extend(inserts.get(i, []))
    for section, entries in appended.items():
        out += ["", f"[{section}]", *entries]
    return "\n".join(out) + "\n"


def edit_kohya_config(text: str, changes: Mapping[str, Any], note: str, header: list[str]) -> str:
    """The kohya TOML `text` with `changes` (flattened option names) applied.

    Raises KohyaEditError when the result would not parse to the original plus `changes`.
    """
    original = tomllib.loads(text)
    expected = {**flatten(original), **changes}
    head = "".join(f"# {h}\n" for h in header)
    try:
        edited = head + _edit_lines(text, changes, note)
        if flatten(tomllib.loads(edited)) == expected:
            return edited
    except (KohyaEditError, tomllib.TOMLDecodeError):
        pass
    data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in original.items()}
    for key, value in changes.items():
        holder = next((v for v in data.values() if isinstance(v, dict) and key in v), None)
        if holder is None and key in data:
            data[key] = value
            continue
        if holder is None:
            holder = data.setdefault(SECTION_FOR.get(key, "training_arguments"), {})
        holder[key] = value
    rewritten = head + dump_toml(data)
    if flatten(tomllib.loads(rewritten)) != expected:
        raise KohyaEditError("the edited config does not read back as intended")
    return rewritten


def with_network_args(current: Any, updates: Mapping[str, Any]) -> list[str]:
    """kohya's `network_args` list with `name=value` entries replaced or added."""
    items = [str(x) for x in (current if isinstance(current, list) else [current] if current else [])]
    out, done = [], set()
    for item in items:
        name = item.partition("=")[0].strip()
        if name in updates:
            out.append(f"{name}={updates[name]}")
            done.add(name)
        else:
            out.append(item)
    out += [f"{k}={v}" for k, v in updates.items() if k not in done]
    return out
