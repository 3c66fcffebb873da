"""Access token, CSRF tokens and safe file paths for `epochwatch serve`.

- Bound to a loopback address the pages need no token (the same trust as the state files:
  every local account on the machine can open them and post reviews);
  any other address needs EPOCHWATCH_SERVE_TOKEN from the environment (never the command
  line, where `ps` shows it). A browser presents it once as `?token=...` and gets an HttpOnly
  cookie; scripts send `Authorization: Bearer ...`.
- CSRF: double submit. A random cookie per browser, and in the form an HMAC of it under a
  per-process secret; a cross-site page can neither read the cookie nor compute the HMAC.
- Files: only regular image files inside the run's results folder, resolved (symlinks too)
  before the check, and nothing under a dot-folder such as `.git`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path

TOKEN_ENV = "EPOCHWATCH_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16
AUTH_COOKIE = "epochwatch_auth"
CSRF_COOKIE = "epochwatch_csrf"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
MAX_NAME_BYTES = 255  # one path component, as file systems allow


class SecurityError(Exception):
    """A refusal; the message is safe to show (it never holds a secret)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def access_token(host: str, environ: dict[str, str] | None = None) -> str | None:
    """The token requests must carry: None on loopback; else from the environment, refused
    when missing or too short to resist guessing."""
    if is_loopback(host):
        return None
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "")
    if not token:
        raise SecurityError(f"--host {host} is not a loopback address: set {TOKEN_ENV} in the "
                            "environment (never on the command line) to a random token")
    if len(token) < MIN_TOKEN_CHARS:
        raise SecurityError(f"{TOKEN_ENV} is shorter than {MIN_TOKEN_CHARS} characters")
    return token


def token_matches(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def auth_cookie_value(token: str) -> str:
    # The cookie holds a digest, not the token itself.
    return hashlib.sha256(b"epochwatch-serve:" + token.encode()).hexdigest()


class Csrf:
    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    @staticmethod
    def new_cookie() -> str:
        return secrets.token_urlsafe(24)

    def form_token(self, cookie: str) -> str:
        return hmac.new(self.secret, cookie.encode(), hashlib.sha256).hexdigest()

    def check(self, cookie: str | None, form_value: str | None) -> bool:
        if not cookie or not form_value:
            return False
        return hmac.compare_digest(self.form_token(cookie), str(form_value))


def safe_file(root: Path, relative: str) -> Path:
    """The file `relative` inside `root`, or SecurityError: no absolute paths, no `..`, no
    dot-folders, no symlink out of the folder, images only."""
    if not relative or "\x00" in relative or "\\" in relative:
        raise SecurityError("not a results file")
    parts = relative.split("/")
    if relative.startswith("/") or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise SecurityError("not a results file")
    if any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise SecurityError("no such results file")
    try:  # a name too long for the file system, a symlink loop: no such file, not a 500
        base = root.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or target.suffix.lower() not in IMAGE_SUFFIXES:
            raise SecurityError("not a results file")
        if not target.is_file():
            raise SecurityError("no such results file")
    except (OSError, RuntimeError):
        raise SecurityError("no such results file") from None
    return target
