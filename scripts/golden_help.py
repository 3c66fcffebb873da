"""The `--help` text of every epochwatch command, for the golden tests (tests/test_cli_help.py).

    scripts/hermetic.sh .venv/bin/python scripts/golden_help.py --write   # regenerate tests/golden/
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden"
WIDTH = "100"  # argparse wraps at $COLUMNS; fixed so the texts do not depend on the terminal


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> dict[tuple[str, ...], str]:
    texts = {path: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                texts.update(_walk(child, (*path, name)))
    return texts


def help_texts() -> dict[str, str]:
    """File name (e.g. `analyze-hypotheses.txt`, `epochwatch.txt`) -> help text."""
    os.environ["COLUMNS"] = WIDTH
    sys.path.insert(0, str(GOLDEN.parent.parent))
    from watcher.cliparser import build_parser

    return {("-".join(path) or "epochwatch") + ".txt": text
            for path, text in _walk(build_parser(), ()).items()}


def main() -> int:
    if sys.argv[1:] != ["--write"]:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    GOLDEN.mkdir(exist_ok=True)
    for old in GOLDEN.glob("*.txt"):
        old.unlink()
    for name, text in help_texts().items():
        (GOLDEN / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(help_texts())} files to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
