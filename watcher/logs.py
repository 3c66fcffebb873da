"""structlog setup: readable console output on a terminal, JSON lines otherwise.

Every line carries `run` (and `epoch` where known) through contextvars, and secrets are
scrubbed by a processor, so no log line can carry a Supabase key or webhook URL.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import FilteringBoundLogger as Logger

from watcher.redact import redact, secret_values

__all__ = ["Logger", "configure", "get_logger", "redact", "secret_values"]

def _redact_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if isinstance(value, str):
            event_dict[key] = redact(value)
        elif isinstance(value, BaseException):
            event_dict[key] = redact(repr(value))
    return event_dict


def configure(level: str = "info", json_lines: bool | None = None, stream: Any = None) -> None:
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_processor,
    ]
    is_tty = hasattr(stream, "isatty") and stream.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer() if json_lines
        else structlog.dev.ConsoleRenderer(colors=is_tty)  # no escape codes in files
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(**bound: Any) -> Logger:
    logger: Logger = structlog.get_logger("epochwatch").bind(**bound)
    return logger
