"""Helpers shared by the command modules."""

from __future__ import annotations

from watcher.cli import CommandError
from watcher.config import ConfigError, WatchConfig, load_config


def load(path: str) -> WatchConfig:
    """Load a watcher config, turning a config error into a one-line command error."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CommandError(f"config file not found: {path}") from exc
