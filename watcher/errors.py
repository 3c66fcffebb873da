"""Errors that cross module boundaries (standard library only)."""


class ConfigError(Exception):
    """A bad config, kohya config or prompt file; the message is one line
    (`config.toml:12: model.steps: Input should be a valid integer`)."""
