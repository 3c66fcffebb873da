"""Secrets out of text: the one place that knows what a secret looks like.

Standard library only and nothing from the project, so every module (logging, alerts, the
systemd notifier, the Supabase sink) can import it without an import cycle or start-up cost.
Secrets are read from the environment each time: a value set after start-up is caught too.
"""

from __future__ import annotations

import os
import re

SECRET_ENV = ("SUPABASE_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_READ_KEY",
              "EPOCHWATCH_ALERT_URLS", "EPOCHWATCH_SERVE_TOKEN")
ALERT_URLS_ENV = "EPOCHWATCH_ALERT_URLS"
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@]+@")
_ANY_URL = re.compile(r"\b([a-z][a-z0-9+.-]*://)[^\s'\"<>]+", re.IGNORECASE)


def split_urls(raw: str) -> list[str]:
    """The entries of a URL list separated by spaces or commas."""
    return [u for u in re.split(r"[\s,]+", raw.strip()) if u]


def url_secret_fragments(raw: str) -> list[str]:
    """Pieces of the alert URLs that may be tokens (Slack's three, a webhook's path ...):
    apprise and urllib3 log them on their own, without the rest of the URL."""
    pieces: set[str] = set()
    for url in split_urls(raw):
        rest = url.split("://", 1)[1] if "://" in url else url
        for n, part in enumerate(re.split(r"[/?&=@:#]+", rest)):
            if len(part) < 6 or (n == 0 and "." in part):  # short words, host names
                continue
            pieces.add(part)
    return sorted(pieces, key=len, reverse=True)


def secret_values() -> list[str]:
    """Current secret values from the environment, longest first (split URL lists too)."""
    values: list[str] = []
    for name in SECRET_ENV:
        raw = os.environ.get(name, "")
        if not raw:
            continue
        values.append(raw)
        values.extend(p for p in re.split(r"[\s,]+", raw) if len(p) >= 8)
    urls = os.environ.get(ALERT_URLS_ENV, "")
    if urls:
        values.extend(url_secret_fragments(urls))  # tokens inside alert URLs
    return sorted(set(values), key=len, reverse=True)


def redact(text: str) -> str:
    """Replace every known secret (and URL credentials) in text with '***'."""
    for value in secret_values():
        text = text.replace(value, "***")
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def scrub(text: str) -> str:
    """Stronger than `redact`, for third-party log lines: also every URL, whole."""
    return _ANY_URL.sub(r"\1<redacted>", redact(text))
