"""CLI conventions: golden `--help` texts, help for every option, an example in every command,
`--version`, `-c`, the old output-flag spellings and `review --prompt` as aliases."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
from golden_help import GOLDEN, help_texts  # noqa: E402

from watcher.cliparser import DEV_COMMANDS, build_parser  # noqa: E402

REGEN = "scripts/hermetic.sh .venv/bin/python scripts/golden_help.py --write"


def test_help_texts_match_the_golden_files() -> None:
    texts = help_texts()
    assert sorted(texts) == sorted(p.name for p in GOLDEN.glob("*.txt")), f"regenerate: {REGEN}"
    for name, text in texts.items():
        assert (GOLDEN / name).read_text(encoding="utf-8") == text, f"{name} changed; regenerate: {REGEN}"


def _parsers(parser: argparse.ArgumentParser, path: str = "epochwatch") -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _parsers(child, f"{path} {name}")
    return found


def test_every_option_has_help_and_every_command_an_example() -> None:
    parsers = _parsers(build_parser())
    assert len(parsers) > 15
    for path, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"{path} {action.option_strings or action.dest} has no help text"
        if path != "epochwatch":
            assert parser.epilog and parser.epilog.startswith("example:\n  "), f"{path} has no example"
            assert f"{path.split()[0]} {path.split()[1]}" in parser.epilog


def test_developer_commands_are_listed_apart() -> None:
    text = help_texts()["epochwatch.txt"]
    user, dev = text.split("developer commands:")
    for name in DEV_COMMANDS:
        assert f"    {name} " not in user and f"    {name} " in dev
    assert "    score " in user and "    status " in user


def test_version_and_short_config() -> None:
    out = subprocess.run([sys.executable, "-m", "watcher", "--version"], capture_output=True,
                         text=True, check=True, cwd=REPO).stdout
    assert out.startswith("epochwatch ") and out.split()[1][0].isdigit()
    args = build_parser().parse_args(["status", "-c", "w.toml", "--json"])
    assert (args.config, args.json) == ("w.toml", True)
    assert build_parser().parse_args(["serve", "-c", "a.toml", "-c", "b.toml"]).config == ["a.toml", "b.toml"]


@pytest.mark.parametrize(("argv", "dest", "value"), [
    (["demo", "--workdir", "w"], "workdir", "w"),
    (["demo", "--out-dir", "w"], "workdir", "w"),
    (["build-tiny-model", "--out", "m"], "out", "m"),
    (["build-tiny-model", "--out-dir", "m"], "out", "m"),
    (["analyze", "hypotheses", "--write-config", "n.toml"], "write_config", "n.toml"),
    (["analyze", "hypotheses", "--out", "n.toml"], "write_config", "n.toml"),
    (["downscale", "a.png", "--out-dir", "d"], "out_dir", "d"),
])
def test_output_flags_old_and_new_spellings(argv: list[str], dest: str, value: str) -> None:
    assert getattr(build_parser().parse_args(argv), dest) == value
