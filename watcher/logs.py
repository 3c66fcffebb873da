"""structlog setup: readable console output on a terminal, JSON lines otherwise.

Every line carries `run` (and `epoch` where known) through contextvars, and secrets are
scrubbed by a processor, so no log line can carry a Supabase key or webhook URL.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any

import structlog

_SECRET_ENV = ("SUPABASE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "EPOCHWATCH_ALERT_URLS")
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@]+@")


def secret_values() -> list[str]:
    """Current secret values from the environment, longest first (split URL lists too)."""
    values: list[str] = []
    for name in _SECRET_ENV:
        raw = os.environ.get(name, "")
        if not raw:
            continue
        values.append(raw)
        values.extend(p for p in re.split(r"[\s,]+", raw) if len(p) >= 8)
    urls = os.environ.get("EPOCHWATCH_ALERT_URLS", "")
    if urls:
        from watcher.publish.alerts import url_secret_fragments  # tokens inside alert URLs

        values.extend(url_secret_fragments(urls))
    return sorted(set(values), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace every known secret (and URL credentials) in text with '***'."""
    for value in secret_values():
        text = text.replace(value, "***")
    return _URL_CREDENTIALS.sub(r"\1***@", text)


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


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("epochwatch").bind(**bound)
