"""The Starlette application behind `epochwatch serve`.

Read-only except for one route, the review form's POST. Store and file reads run in the
thread pool, so a database locked by the daemon for a moment never stalls other requests. Every response carries a strict
Content-Security-Policy (scripts, styles and images from this server only) and referrers to
this server only (Referrer-Policy same-origin), so a `?token=` in the address never leaves it;
"no-referrer" would make browsers post forms with `Origin: null`, which the review form refuses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Receive, Scope, Send

from watcher.serve import data, pages
from watcher.serve.security import (
    AUTH_COOKIE,
    CSRF_COOKIE,
    Csrf,
    SecurityError,
    auth_cookie_value,
    is_loopback,
    safe_file,
    token_matches,
)
from watcher.summary import fmt

HERE = Path(__file__).resolve().parent
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; style-src 'self'; "
                               "script-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY", "Cache-Control": "no-store",
}
AUTH_COOKIE_MAX_AGE_S = 12 * 3600  # a browser asks for the token again after 12 hours
MAX_FORM_BYTES = 16 * 1024  # the review form: 2000 characters of notes, percent-encoded
MAX_FORM_FIELDS = 10
MAX_EPOCH_DIGITS = 6
logger = logging.getLogger("epochwatch.serve")


class EpochConvertor(Convertor[int]):
    """An epoch in a URL: at most MAX_EPOCH_DIGITS digits (a longer number is a 404, never an
    int() of thousands of digits)."""

    regex = f"[0-9]{{1,{MAX_EPOCH_DIGITS}}}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("epoch", EpochConvertor())


class Guard:
    """ASGI middleware: security headers on every response; on loopback, only loopback Host
    names (a web page on another name that resolves to 127.0.0.1, DNS rebinding, gets
    nothing); beyond loopback, the access token."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if self.token is None:
            try:
                name = urlsplit("//" + request.headers.get("host", "")).hostname
            except ValueError:
                name = None
            # localhost or a loopback address literal (127.0.0.5 too); any other name may be
            # DNS rebinding
            if name is None or not is_loopback(name):
                await self._send(PlainTextResponse("refused: not a loopback host name", 400),
                                 scope, receive, send)
                return
        else:
            given = request.query_params.get("token")
            if given is not None and token_matches(self.token, given):
                # Trade the token in the address for a cookie, and drop it from the address.
                # relative: never an address built from the Host header
                rest = request.url.remove_query_params("token")
                response: Response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), 303)
                response.set_cookie(AUTH_COOKIE, auth_cookie_value(self.token), httponly=True,
                                    samesite="strict", max_age=AUTH_COOKIE_MAX_AGE_S)
                await self._send(response, scope, receive, send)
                return
            bearer = request.headers.get("authorization", "")
            ok = (bearer.startswith("Bearer ") and token_matches(self.token, bearer[7:])) or \
                token_matches(auth_cookie_value(self.token), request.cookies.get(AUTH_COOKIE))
            if not ok:
                await self._send(PlainTextResponse(
                    "epochwatch serve: a token is required (open the address with "
                    "?token=<the value of EPOCHWATCH_SERVE_TOKEN>)", 401), scope, receive, send)
                return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        started = False

        async def send_tracked(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send_with_headers(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception:  # noqa: BLE001 - a 500 without a traceback, with the headers
            logger.exception("epochwatch serve: error answering %s", request.url.path)
            if not started:
                await self._send(PlainTextResponse("internal error (see the server's log)", 500),
                                 scope, receive, send)

    @staticmethod
    async def _send(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        for k, v in HEADERS.items():
            response.headers[k] = v
        await response(scope, receive, send)


class UnknownRun(LookupError):
    """A URL names a run this server does not serve (answered 404 by one handler)."""


def create_app(sources: list[data.RunSource], *, token: str | None = None,
               csrf: Csrf | None = None) -> Starlette:
    runs = {s.name: s for s in sources}
    csrf = csrf or Csrf()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(fmt=fmt, ago=pages.ago, run_url=pages.run_url)

    def source(request: Request) -> data.RunSource:
        name = request.path_params["run"]
        if name not in runs:
            raise UnknownRun(f"no run {name!r} served here")
        return runs[name]

    def not_found(message: str) -> Response:
        return PlainTextResponse(message, 404)

    async def unknown_run(request: Request, exc: Exception) -> Response:
        return not_found(str(exc))  # source() raised it: the URL names a run not served here

    def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, {"runs": list(runs.values()), **context},
                                          status_code=status)

    async def index(request: Request) -> Response:
        if len(runs) == 1:
            return RedirectResponse(pages.run_url(sources[0]), 303)
        return render(request, "index.html", {})

    async def run_page(request: Request) -> Response:
        src = source(request)
        return render(request, "run.html", {"src": src, "live": await run_in_threadpool(pages.live, src),
                                            "strip": await run_in_threadpool(pages.strip, src),
                                            "params": pages.parameters(src)})

    async def run_strip(request: Request) -> Response:
        src = source(request)
        return render(request, "_strip.html", {"src": src, "strip": await run_in_threadpool(pages.strip, src)})

    async def compare_runs(request: Request) -> Response:
        names = request.query_params.getlist("run") or list(runs)
        unknown = [n for n in names if n not in runs]
        if unknown:
            return not_found(f"no run {unknown[0]!r} served here")
        chosen = [runs[n] for n in dict.fromkeys(names)]
        page = await run_in_threadpool(pages.compare_runs, chosen)
        return render(request, "runs_compare.html", {"page": page})

    async def run_live(request: Request) -> Response:
        src = source(request)
        return render(request, "_live.html", {"src": src, "live": await run_in_threadpool(pages.live, src)})

    async def run_json(request: Request) -> Response:
        src = source(request)
        state = await run_in_threadpool(data.run_state, src)
        return Response(json.dumps(state, default=str), media_type="application/json")

    async def epoch_response(request: Request, src: data.RunSource, epoch: int, status: int = 200,
                             error: str | None = None) -> Response:
        page = await run_in_threadpool(pages.epoch_page, src, epoch)
        if page is None:
            return not_found(f"epoch {epoch} of {src.name} has no evaluation")
        cookie = request.cookies.get(CSRF_COOKIE) or Csrf.new_cookie()
        response = render(request, "epoch.html", {
            "src": src, "page": page, "csrf": csrf.form_token(cookie), "error": error,
            "saved": request.query_params.get("saved") == "1"}, status)
        if request.cookies.get(CSRF_COOKIE) != cookie:
            response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict")
        return response

    async def epoch_page(request: Request) -> Response:
        src = source(request)
        return await epoch_response(request, src, request.path_params["epoch"])

    async def review(request: Request) -> Response:
        src = source(request)
        epoch = request.path_params["epoch"]
        # Checked before the body is read: the origin (a sandboxed or file page sends "null"),
        # then the size; the form has five fields.
        origin = request.headers.get("origin")
        if origin is not None and (origin == "null" or urlsplit(origin).netloc != request.headers.get("host")):
            return PlainTextResponse("refused: the form was posted from another site", 403)
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return PlainTextResponse("refused: the form needs a Content-Length", 411)
        if int(length) > MAX_FORM_BYTES:
            return PlainTextResponse(f"refused: the form is over {MAX_FORM_BYTES} bytes", 413)
        try:
            form = await request.form(max_fields=MAX_FORM_FIELDS, max_files=0)
        except HTTPException as exc:  # too many fields, a file
            return PlainTextResponse(f"refused: {exc.detail}", 400)
        if not csrf.check(request.cookies.get(CSRF_COOKIE), str(form.get("csrf") or "")):
            return PlainTextResponse("refused: missing or wrong CSRF token; reload the page", 403)
        try:
            visual, style, prompt = (data.score(k, str(form.get(k) or "")) for k in data.SCORE_FIELDS)
            notes = str(form.get("notes") or "")
            await run_in_threadpool(data.save_review, src, epoch, visual, style, prompt, notes)
        except data.ServeError as exc:
            return await epoch_response(request, src, epoch, 400, str(exc))
        return RedirectResponse(f"{pages.run_url(src)}/epoch/{epoch}?saved=1", 303)

    async def compare(request: Request) -> Response:
        src = source(request)
        try:
            a, b = int(request.query_params.get("a", "")), int(request.query_params.get("b", ""))
        except ValueError:
            return PlainTextResponse("compare needs two epochs: ?a=N&b=M", 400)
        page = await run_in_threadpool(pages.compare_page, src, a, b)
        if page is None:
            return not_found(f"epochs {a} and {b} are not both evaluated")
        return render(request, "compare.html", {"src": src, "page": page})

    async def files(request: Request) -> Response:
        src = source(request)
        try:
            path = safe_file(src.results_dir, request.path_params["path"])
        except SecurityError as exc:
            return not_found(f"refused: {exc}")
        return FileResponse(path)

    routes = [
        Route("/", index),
        Route("/run/{run}", run_page),
        Route("/run/{run}/live", run_live),
        Route("/run/{run}/strip", run_strip),
        Route("/compare-runs", compare_runs),
        Route("/run/{run}/status.json", run_json),
        Route("/run/{run}/epoch/{epoch:epoch}", epoch_page),
        Route("/run/{run}/epoch/{epoch:epoch}/review", review, methods=["POST"]),
        Route("/run/{run}/compare", compare),
        Route("/run/{run}/files/{path:path}", files),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Guard, token=token)],
                     exception_handlers={UnknownRun: unknown_run})
