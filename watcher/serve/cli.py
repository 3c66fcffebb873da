"""`epochwatch serve --config FILE... [--host 127.0.0.1] [--port 8765]`.

`add_parser` is the whole of the registration in `watcher.cli`; it imports nothing heavy, so
the other commands stay fast. The web stack (Starlette, uvicorn) loads only in `run`.
"""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser("serve", help="the run page and review form in a browser",
                       description="The run page and review form in a browser.",
                       epilog="example:\n  epochwatch serve -c watcher.toml --port 8765",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--config", required=True, action="append", metavar="FILE",
                   help="a run's config; repeat for several runs")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to bind (default 127.0.0.1; any other needs EPOCHWATCH_SERVE_TOKEN)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, metavar="PORT",
                   help="TCP port, 1-65535 (default 8765)")
    return p


def run(args: argparse.Namespace) -> int:
    from watcher.errors import CommandError
    from watcher.serve import data
    from watcher.serve.security import TOKEN_ENV, SecurityError, access_token

    if not 0 < args.port < 65536:
        raise CommandError(f"--port must be 1-65535, not {args.port}")
    try:
        token = access_token(args.host)
        sources = data.load_sources(list(args.config))
    except (SecurityError, data.ServeError) as exc:
        raise CommandError(str(exc)) from None

    sock = _bind(args.host, args.port)  # before the URL is printed: a taken port is one line
    import uvicorn

    from watcher.serve.app import create_app

    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"epochwatch serve: {len(sources)} run(s) ({', '.join(s.name for s in sources)}) "
          f"at http://{shown}:{args.port}/", flush=True)
    if token is None:
        print("epochwatch serve: bound to loopback only; no token needed", flush=True)
    else:
        print(f"epochwatch serve: {args.host} is reachable from other machines: every request "
              f"needs the token from {TOKEN_ENV} (open http://{shown}:{args.port}/?token=<the "
              f"token> once, or send 'Authorization: Bearer <the token>')", flush=True)
    config = uvicorn.Config(create_app(sources, token=token), host=args.host, port=args.port,
                            log_level="warning", server_header=False, proxy_headers=False)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line CommandError (port in use, address not here)."""
    from watcher.errors import CommandError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise CommandError(f"--host {host}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        why = "already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
        raise CommandError(f"cannot listen on {host} port {port}: {why}") from None
    return sock
