"""`epochwatch serve` over plain HTTP against a real server process: the pages, the review
form (stored as `epochwatch review` stores it, calibration from five reviews), and the
refusals: path traversal, a form without its CSRF token, writes, foreign Host names, a
non-loopback bind without a token, and a token never echoed into a page."""

from __future__ import annotations

import http.client
import os
import re
import subprocess
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest

from tests.test_serve_support import RUN, add_epoch, make_config, serve_cmd, serving
from watcher.config import load_config
from watcher.store import Store

TOKEN = "s3cret-token-for-the-serve-tests-0123456789"


@pytest.fixture(scope="module")
def run_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = make_config(tmp_path_factory.mktemp("serve"))
    for epoch in (1, 2, 3, 4):
        add_epoch(config, epoch)
    return config


@pytest.fixture(scope="module")
def server(run_config: Path) -> str:
    with serving(run_config) as (base, _):
        yield base


def request(base: str, method: str, path: str, body: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """One request with the path sent exactly as written (no client-side normalising)."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    text = r.read().decode("utf-8", "replace")
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, text


def test_run_epoch_and_compare_pages(server: str, run_config: Path) -> None:
    status, headers, html = request(server, "GET", f"/run/{RUN}")
    assert status == 200
    assert "default-src 'self'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "same-origin"  # never to another site
    for epoch in (1, 2, 3, 4):
        assert f'data-epoch="{epoch}"' in html
    assert "The plan's success criteria" in html and "<svg" in html
    status, _, html = request(server, "GET", f"/run/{RUN}/epoch/2")
    assert status == 200
    assert 'class="pixel"' in html and 'id="prev"' in html and 'id="next"' in html
    # per-role colours: the asked hex from the prompt and the seen one, each with a swatch
    assert re.search(r'<rect width="16" height="16" fill="#ff66cc"/>', html)
    sample = re.search(rf'src="(/run/{RUN}/files/epoch-002/samples_24px/[^"]+\.png)"', html)
    assert sample
    status, headers, _ = request(server, "GET", sample.group(1))
    assert status == 200 and headers["content-type"] == "image/png"
    status, _, html = request(server, "GET", f"/run/{RUN}/compare?a=1&b=4")
    assert status == 200 and "epoch-001/samples/" in html and "epoch-004/samples/" in html
    assert request(server, "GET", f"/run/{RUN}/epoch/9")[0] == 404
    assert request(server, "GET", "/run/NOT_A_RUN")[0] == 404


@pytest.mark.parametrize("path", [
    "/run/{run}/files/../../config.toml",
    "/run/{run}/files/..%2f..%2f..%2fconfig.toml",
    "/run/{run}/files/%2e%2e/%2e%2e/%2e%2e/config.toml",
    "/run/{run}/files/epoch-001/../../../state/state.db",
    "/run/{run}/files//etc/passwd",
    "/run/{run}/files/%2fetc%2fpasswd",
    "/run/{run}/files/epoch-001/samples/..%5c..%5c..%5cconfig.toml",
    "/run/{run}/files/../../../../results/.git/config",
    "/run/{run}/files/epoch-001/metrics.json",
    "/run/{run}/files/epoch-001/escape.png",
    "/run/{run}/files/epoch-001/samples/00-s7.png%00.txt",
])
def test_path_traversal_is_refused(server: str, run_config: Path, path: str) -> None:
    results = load_config(run_config).run_results_dir
    outside = results.parent.parent.parent / "secret.png"  # beside the results repository
    outside.write_bytes(b"\x89PNG secret outside the results folder")
    link = results / "epoch-001" / "escape.png"
    if not link.is_symlink():
        link.symlink_to(outside)
    status, _, body = request(server, "GET", path.format(run=RUN))
    assert status in (400, 404), body
    assert "secret outside" not in body and "[run]" not in body and "root:" not in body


def _csrf_session(server: str, epoch: int) -> tuple[str, str]:
    """(cookie header, form token) as a browser gets them from the epoch page."""
    status, headers, html = request(server, "GET", f"/run/{RUN}/epoch/{epoch}")
    assert status == 200
    cookie = headers["set-cookie"].split(";", 1)[0]
    token = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert token
    return cookie, token.group(1)


def _post_review(server: str, epoch: int, form: dict[str, str], cookie: str | None,
                 origin: str | None = None) -> tuple[int, dict[str, str], str]:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if cookie:
        headers["Cookie"] = cookie
    if origin:
        headers["Origin"] = origin
    return request(server, "POST", f"/run/{RUN}/epoch/{epoch}/review", urlencode(form), headers)


def _reviews(config: Path) -> dict[int, tuple[float, float, float, str]]:
    with Store(load_config(config).state_db) as store:
        return {r.epoch: (r.visual, r.style, r.prompt, r.notes) for r in store.reviews(RUN)}


def test_review_form_needs_its_csrf_token(server: str, run_config: Path) -> None:
    scores = {"visual": "7", "style": "6", "prompt": "8", "notes": "crown clear"}
    cookie, token = _csrf_session(server, 1)
    before = _reviews(run_config)
    assert _post_review(server, 1, scores, cookie)[0] == 403                      # no token
    assert _post_review(server, 1, {**scores, "csrf": token}, None)[0] == 403    # no cookie
    assert _post_review(server, 1, {**scores, "csrf": "0" * 64}, cookie)[0] == 403
    other_cookie, _ = _csrf_session(server, 1)
    assert _post_review(server, 1, {**scores, "csrf": token}, other_cookie)[0] == 403
    assert _post_review(server, 1, {**scores, "csrf": token}, cookie, "http://evil.example")[0] == 403
    assert _post_review(server, 1, {**scores, "visual": "11", "csrf": token}, cookie)[0] == 400
    assert _post_review(server, 1, {**scores, "style": "nan", "csrf": token}, cookie)[0] == 400
    assert _reviews(run_config) == before
    status, headers, _ = _post_review(server, 1, {**scores, "csrf": token}, cookie, server)
    assert status == 303 and headers["location"].endswith(f"/run/{RUN}/epoch/1?saved=1")
    assert _reviews(run_config)[1] == (7.0, 6.0, 8.0, "crown clear")


def test_reviews_are_stored_like_epochwatch_review_and_calibrate_at_five(server: str, run_config: Path) -> None:
    from watcher.cli import main

    # four reviews from the command line, the fifth through the form
    for epoch, v in ((1, 3), (2, 5), (3, 6)):
        assert main(["review", "--config", str(run_config), "--epoch", str(epoch), "--visual",
                     str(v), "--style", str(v - 1), "--prompt", str(v + 1)]) == 0
    status, _, html = request(server, "GET", f"/run/{RUN}/epoch/4")
    assert "3 of 5 reviewed epochs" in html and "human =" not in html
    cookie, token = _csrf_session(server, 4)
    form = {"visual": "9", "style": "8", "prompt": "10", "notes": "best  so\nfar", "csrf": token}
    assert _post_review(server, 4, form, cookie)[0] == 303
    assert _reviews(run_config)[4] == (9.0, 8.0, 10.0, "best so far")
    with Store(load_config(run_config).state_db) as store:
        queued = [i.payload["row"] for i in store.due("supabase")
                  if i.payload.get("table") == "epoch_reviews"]
    assert {"run_name": RUN, "epoch": 4, "visual_score": 9.0, "style_score": 8.0,
            "prompt_score": 10.0, "notes": "best so far"}.items() <= queued[-1].items()
    assert main(["review", "--config", str(run_config), "--epoch", "2", "--visual", "4",
                 "--style", "4", "--prompt", "4"]) == 0
    # 4 reviewed epochs: still no calibration; a fifth (epoch 2 was replaced, not added) ...
    html = request(server, "GET", f"/run/{RUN}/epoch/4")[2]
    assert "4 of 5 reviewed epochs" in html
    add_epoch(run_config, 5)
    assert main(["review", "--config", str(run_config), "--epoch", "5", "--visual", "2",
                 "--style", "2", "--prompt", "3"]) == 0
    html = request(server, "GET", f"/run/{RUN}/epoch/5")[2]
    assert "human =" in html and "leave-one-out" in html
    assert "Calibration of the auto scores" in request(server, "GET", f"/run/{RUN}")[2]


def test_read_only_and_loopback_host_names(server: str) -> None:
    for method, path in (("POST", f"/run/{RUN}"), ("PUT", f"/run/{RUN}/epoch/1/review"),
                         ("DELETE", f"/run/{RUN}/files/epoch-001/samples/00-s7.png"),
                         ("POST", f"/run/{RUN}/files/epoch-001/samples/00-s7.png")):
        assert request(server, method, path, "")[0] == 405, (method, path)
    # DNS rebinding: a page on another name that resolves to 127.0.0.1 gets nothing
    for host in ("evil.example", "127.0.0.1.evil.example:80", "", "[::1"):
        assert request(server, "GET", f"/run/{RUN}", headers={"Host": host})[0] == 400, host
    assert request(server, "GET", f"/run/{RUN}", headers={"Host": "localhost:8765"})[0] == 200


def test_non_loopback_bind_needs_a_token_from_the_environment(run_config: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "EPOCHWATCH_SERVE_TOKEN"}
    for extra, envs in ((("--host", "0.0.0.0"), env),
                        (("--host", "192.0.2.1"), env),
                        (("--host", "0.0.0.0"), {**env, "EPOCHWATCH_SERVE_TOKEN": "short"})):
        out = subprocess.run(serve_cmd(run_config, *extra, "--port", "1"), env=envs,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out
        assert "EPOCHWATCH_SERVE_TOKEN" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    out = subprocess.run(serve_cmd(run_config, "--host", "0.0.0.0", "--token", TOKEN), env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "unrecognized arguments: --token" in out.stderr


def test_token_beyond_loopback_and_no_secret_in_pages(run_config: Path, tmp_path: Path) -> None:
    env = {"EPOCHWATCH_SERVE_TOKEN": TOKEN, "SUPABASE_KEY": "sb-secret-key-0123456789"}
    with serving(run_config, host="0.0.0.0", env=env) as (base, proc):
        assert request(base, "GET", f"/run/{RUN}")[0] == 401
        assert request(base, "GET", f"/run/{RUN}?token=wrong-{TOKEN}")[0] == 401
        assert request(base, "GET", f"/run/{RUN}", headers={"Authorization": "Bearer nope"})[0] == 401
        status, _, html = request(base, "GET", f"/run/{RUN}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and 'data-epoch="1"' in html
        status, headers, _ = request(base, "GET", f"/run/{RUN}/epoch/1?token={TOKEN}")
        assert status == 303 and headers["location"].endswith(f"/run/{RUN}/epoch/1")
        cookie = headers["set-cookie"].split(";", 1)[0]
        assert TOKEN not in headers["set-cookie"] and "httponly" in headers["set-cookie"].lower()
        pages = [request(base, "GET", p, headers={"Cookie": cookie})
                 for p in (f"/run/{RUN}", f"/run/{RUN}/live", f"/run/{RUN}/epoch/1",
                           f"/run/{RUN}/compare?a=1&b=2", f"/run/{RUN}/status.json")]
        assert all(status == 200 for status, _, _ in pages)
        for secret in (TOKEN, env["SUPABASE_KEY"]):
            assert all(secret not in body for _, _, body in pages)
        proc.terminate()
        said = proc.communicate(timeout=10)[0]
    assert "EPOCHWATCH_SERVE_TOKEN" in said and "needs the token" in said and TOKEN not in said


def test_several_runs_on_one_server(run_config: Path, tmp_path: Path) -> None:
    other = make_config(tmp_path / "other", name="OTHER_RUN")  # no daemon has run yet
    with serving(run_config, extra=("--config", str(other))) as (base, _):
        status, _, html = request(base, "GET", "/")
        assert status == 200 and f'href="/run/{RUN}"' in html and 'href="/run/OTHER_RUN"' in html
        status, _, html = request(base, "GET", "/run/OTHER_RUN")
        assert status == 200 and "the daemon has not started" in html
    assert not load_config(other).state_db.exists()  # looking never creates state
    same = make_config(tmp_path / "same")  # another config naming the same run
    out = subprocess.run(serve_cmd(run_config, "--config", str(same)), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and f"two configs name the same run '{RUN}'" in out.stderr
