"""Errors that cross module boundaries (standard library only).

`CommandError` and `Interrupted` live here rather than in watcher/cli.py so that the
subcommands (watcher/commands/*, watcher/serve/*, launcher/*) do not import the module that
imports them.
"""


class ConfigError(Exception):
    """A bad config, kohya config or prompt file; the message is one line
    (`config.toml:12: model.steps: Input should be a valid integer`)."""


class CommandError(Exception):
    """A failure reported to the user as one line on stderr, exit status 2."""


class Interrupted(Exception):
    """Ctrl-C during a batch: "interrupted after N of M <noun>", exit status 130."""

    def __init__(self, done: int, total: int, noun: str) -> None:
        super().__init__(f"interrupted after {done} of {total} {noun}")
        self.done, self.total, self.noun = done, total, noun
