"""`epochwatch serve` against the low findings of the security probe, on a real server:
404s (with the security headers) for over-long names, symlink loops and huge epoch numbers;
a 500 without a traceback but with the headers; the review form checks its origin and size
before reading the body, takes whole-number scores only and stores notes without escapes;
any loopback address works; the token redirect is relative and its cookie expires."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest

from tests.test_serve import TOKEN, _csrf_session, _post_review, _reviews, request
from tests.test_serve_support import RUN, add_epoch, make_config, serving
from watcher.commands.review import clean_notes
from watcher.config import load_config

HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = make_config(tmp_path_factory.mktemp("hardening"))
    for epoch in (1, 2):
        add_epoch(config, epoch)
    results = load_config(config).run_results_dir
    (results / "loop").symlink_to(results / "loop")  # a symlink loop in the results folder
    return config


@pytest.fixture(scope="module")
def server(config: Path) -> str:
    with serving(config) as (base, _):
        yield base


@pytest.mark.parametrize("path", [
    f"/run/{RUN}/files/{'a' * 300}.png",            # a component over 255 bytes
    f"/run/{RUN}/files/epoch-001/{'b' * 256}/x.png",
    f"/run/{RUN}/files/loop/x.png",                 # a symlink loop
    f"/run/{RUN}/epoch/{'9' * 5000}",               # thousands of digits
    f"/run/{RUN}/epoch/1234567",                    # more than 6 digits
    f"/run/{RUN}/epoch/{'9' * 5000}/review",
])
def test_bad_paths_are_404_with_the_headers(server: str, path: str) -> None:
    status, headers, body = request(server, "POST" if path.endswith("review") else "GET", path)
    assert status in (404, 405) and "Traceback" not in body
    assert all(h in headers for h in HEADERS)


def test_a_server_error_has_the_headers_and_no_traceback(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    add_epoch(config, 1)
    db = load_config(config).state_db
    with serving(config) as (base, _):
        db.write_bytes(b"this is not a database" * 100)  # every read now fails
        for suffix in ("-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
        status, headers, body = request(base, "GET", f"/run/{RUN}")
    assert status == 500 and body == "internal error (see the server's log)"
    assert all(h in headers for h in HEADERS)


def test_review_form_checks_before_reading_and_takes_whole_numbers(server: str, config: Path) -> None:
    cookie, token = _csrf_session(server, 1)
    good = {"csrf": token, "visual": "7", "style": "6", "prompt": "8", "notes": ""}
    assert _post_review(server, 1, good, cookie, origin="null")[0] == 403
    assert _post_review(server, 1, good, cookie, origin="http://evil.example")[0] == 403
    big = {**good, "notes": "x" * 20000}
    assert _post_review(server, 1, big, cookie)[0] == 413
    many = urlencode({**good, **{f"f{i}": "1" for i in range(20)}})
    status, _, _ = request(server, "POST", f"/run/{RUN}/epoch/1/review", many,
                           {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie})
    assert status == 400
    for bad in ("5.5", "1_0", "\uff11\uff10", "0", "11", " 7", "7" * 40):
        status, _, html = _post_review(server, 1, {**good, "visual": bad}, cookie)
        assert status == 400 and "whole number from 1 to 10" in html, bad
        assert "7" * 40 not in html  # echoed shortened
    notes = "crown \x1b[31mred\x1b[0m \u202eevil\u202c ok\x07"
    status, _, _ = _post_review(server, 1, {**good, "notes": notes}, cookie, origin=server)  # same site
    assert status == 303
    assert _reviews(config)[1] == (7.0, 6.0, 8.0, "crown red evil ok")


def test_cli_review_notes_are_cleaned_too(config: Path) -> None:
    assert clean_notes("a \x1b]8;;http://x\x07link\x1b]8;;\x07 b\u2066c\u2069\r\nd") == "a link b c d"
    out = subprocess.run([sys.executable, "-m", "watcher", "review", "-c", str(config), "--epoch", "2",
                          "--visual", "5", "--style", "5", "--prompt-score", "5",
                          "--notes", "fine\x1b[2J\u202eok"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert _reviews(config)[2][3] == "fine ok"


def test_any_loopback_address_and_the_token_redirect(config: Path) -> None:
    with serving(config, host="127.0.0.5") as (base, _):
        assert base.startswith("http://127.0.0.5:")
        status, _, html = request(base, "GET", f"/run/{RUN}")
        assert status == 200 and 'data-epoch="1"' in html
        assert request(base, "GET", f"/run/{RUN}", headers={"Host": "evil.example"})[0] == 400
    with serving(config, host="0.0.0.0", env={"EPOCHWATCH_SERVE_TOKEN": TOKEN}) as (base, _):
        status, headers, _ = request(base, "GET", f"/run/{RUN}/epoch/1?a=1&token={TOKEN}",
                                     headers={"Host": "evil.example"})
        assert status == 303 and headers["location"] == f"/run/{RUN}/epoch/1?a=1"  # relative
        assert "max-age=43200" in headers["set-cookie"].lower()
