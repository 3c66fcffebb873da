"""Helpers shared by the command modules."""

from __future__ import annotations

from typing import Any

from watcher.cli import CommandError


def load(path: str) -> Any:
    """Load a watcher config, turning a config error into a one-line command error."""
    from watcher.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CommandError(f"config file not found: {path}") from exc
