"""The subcommands do not import the command line that dispatches to them (no import cycle
through `CommandError`): only watcher/__main__.py imports watcher.cli."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_nothing_but_main_imports_the_cli() -> None:
    sources = sorted((ROOT / "watcher").rglob("*.py")) + sorted((ROOT / "launcher").rglob("*.py"))
    assert len(sources) > 50  # the walk found the packages
    importers = [str(p.relative_to(ROOT)) for p in sources
                 if "watcher.cli" in _imported_modules(p) and p.name != "__main__.py"]
    assert importers == []


@pytest.mark.parametrize("module", ["watcher.commands.status", "watcher.commands.runs",
                                    "watcher.commands.baselines", "launcher.preflight"])
def test_a_command_imports_without_the_cli(module: str) -> None:
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "sys.exit(1 if 'watcher.cli' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_cli_still_exports_its_errors() -> None:
    from watcher import cli, errors
    assert cli.CommandError is errors.CommandError and cli.Interrupted is errors.Interrupted
