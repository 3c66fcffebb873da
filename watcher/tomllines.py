"""TOML files with one-line errors (`read_toml`), and where each key was set: tomllib reports no positions for valid TOML, so
`KeyLines` re-scans the text (tables, arrays of tables, dotted keys, inline tables,
multi-line strings) to map every dotted key to its line, for one-line config errors."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from watcher.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Loc = tuple[str | int, ...]

# ----------------------------------------------------------------------------- key lines

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class KeyLines:
    """Where each key (and array element) of a syntactically valid TOML text is set."""

    def __init__(self, text: str) -> None:
        self.t, self.i, self.line = text, 0, 1
        self.lines: dict[Loc, int] = {}
        self._arrays: dict[Loc, int] = {}
        try:
            self._document()
        except (IndexError, ValueError):
            pass  # best effort: tomllib already accepted the text

    def find(self, loc: Loc) -> int | None:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.lines:
                return self.lines[loc[:end]]
        return None

    def _ch(self, k: int = 0) -> str:
        return self.t[self.i + k] if self.i + k < len(self.t) else ""

    def _advance(self, n: int = 1) -> None:
        self.line += self.t.count("\n", self.i, self.i + n)
        self.i += n

    def _skip(self, newlines: bool) -> None:
        while self.i < len(self.t):
            c = self._ch()
            if c in " \t\r" or (newlines and c == "\n"):
                self._advance()
            elif c == "#":
                end = self.t.find("\n", self.i)
                self._advance((len(self.t) if end < 0 else end) - self.i)
            else:
                return

    def _key(self) -> tuple[str, ...]:
        parts: list[str] = []
        while True:
            self._skip(False)
            c = self._ch()
            if c in "\"'":
                start = self.i
                self._string()
                raw = self.t[start + 1 : self.i - 1]
                parts.append(raw.encode().decode("unicode_escape") if c == '"' and "\\" in raw else raw)
            else:
                m = _BARE_KEY.match(self.t, self.i)
                if not m:
                    raise ValueError("bad key")
                parts.append(m.group())
                self._advance(m.end() - self.i)
            self._skip(False)
            if self._ch() != ".":
                return tuple(parts)
            self._advance()

    def _string(self) -> None:
        q = self._ch()
        delim = q * 3 if self.t.startswith(q * 3, self.i) else q
        self._advance(len(delim))
        while self.i < len(self.t):
            if q == '"' and self._ch() == "\\":
                self._advance(2)
            elif self.t.startswith(delim, self.i):
                self._advance(len(delim))
                while delim != q and self._ch() == q:  # """a"""" ends with quotes in the string
                    self._advance()
                return
            else:
                self._advance()

    def _resolve(self, path: tuple[str, ...]) -> Loc:
        loc: Loc = ()
        for part in path:
            loc += (part,)
            if loc in self._arrays:
                loc += (self._arrays[loc] - 1,)
        return loc

    def _document(self) -> None:
        table: Loc = ()
        while True:
            self._skip(True)
            if self.i >= len(self.t):
                return
            if self.t.startswith("[[", self.i):
                self._advance(2)
                path = self._key()
                self._advance(2)
                parent = self._resolve(path[:-1]) + (path[-1],)
                self._arrays[parent] = self._arrays.get(parent, 0) + 1
                table = parent + (self._arrays[parent] - 1,)
                self.lines.setdefault(parent, self.line)
                self.lines[table] = self.line
            elif self._ch() == "[":
                self._advance()
                table = self._resolve(self._key())
                self._advance()
                self.lines[table] = self.line
            else:
                self._pair(table)

    def _pair(self, table: Loc) -> None:
        line = self.line
        path = table + self._key()
        for end in range(len(table) + 1, len(path) + 1):
            self.lines.setdefault(path[:end], line)
        self._skip(False)
        self._advance()  # '='
        self._value(path)

    def _value(self, path: Loc) -> None:
        self._skip(False)
        c = self._ch()
        if c in "\"'":
            self._string()
        elif c == "[":
            self._advance()
            index = 0
            while True:
                self._skip(True)
                if self._ch() == "]":
                    self._advance()
                    return
                self.lines[path + (index,)] = self.line
                self._value(path + (index,))
                self._skip(True)
                if self._ch() == ",":
                    self._advance()
                    index += 1
        elif c == "{":
            self._advance()
            while True:
                self._skip(False)
                if self._ch() == "}":
                    self._advance()
                    return
                if self._ch() == ",":
                    self._advance()
                    continue
                self._pair(path)
        else:
            m = re.compile(r"[^,\]}\n#]*").match(self.t, self.i)
            self._advance(m.end() - self.i if m else 1)


def dotted_key(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def read_toml(path: Path, what: str) -> tuple[dict[str, Any], str]:
    """(data, text) of a TOML file; any problem is a one-line ConfigError naming the file
    (and the line, for invalid TOML)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return tomllib.loads(text), text
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
