"""The `epochwatch` command line.

The parser (the fixed contract in ARCHITECTURE.md) lives in watcher/cliparser.py; each
subcommand's work lives in `watcher.commands.<name>.run(args) -> int` and is imported only
when that subcommand runs, so `status`, `score` and `downscale` never import torch.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from watcher.cliparser import build_parser
from watcher.errors import CommandError, Interrupted

__all__ = ["CommandError", "Interrupted", "build_parser", "main"]

# subcommand -> module exposing run(args) -> int
HANDLERS: dict[str, str] = {
    "score": "watcher.commands.score",
    "downscale": "watcher.commands.downscale",
    "demo": "watcher.commands.demo",
    "simtrain": "watcher.commands.simtrain",
    "watch": "watcher.commands.watch",
    "launch": "watcher.commands.launch",
    "status": "watcher.commands.status",
    "evaluate": "watcher.commands.evaluate",
    "report": "watcher.commands.report",
    "analyze": "watcher.commands.analyze",
    "review": "watcher.commands.review",
    "replay": "watcher.commands.replay",
    "runs": "watcher.commands.runs",
    "baselines": "watcher.commands.baselines",
    "plan": "watcher.commands.plan",
    "build-tiny-model": "watcher.commands.build_tiny_model",
    "serve": "watcher.serve.cli",
}


def main(argv: Sequence[str] | None = None) -> int:
    # Idle OpenMP threads sleep instead of spinning: the daemon shares the host with the
    # trainer, and on a busy CPU spinning threads made generation ~10x slower (measured).
    # Must be set before torch is first imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    args = build_parser().parse_args(argv)
    module = importlib.import_module(HANDLERS[args.command])
    try:
        return int(module.run(args) or 0)
    except CommandError as exc:
        print(f"epochwatch {args.command}: {exc}", file=sys.stderr)
        return 2
    except Interrupted as exc:
        print(f"epochwatch {args.command}: {exc}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"epochwatch {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _quiet_broken_pipe() -> int:
    """`epochwatch status | head -1`: the reader left; exit without a traceback, and keep
    Python's final flush of stdout from printing one either."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the pipe


if __name__ == "__main__":
    sys.exit(main())
