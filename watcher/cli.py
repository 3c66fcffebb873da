"""The `epochwatch` command line.

The parser is defined here in full (it is the fixed contract in ARCHITECTURE.md); each
subcommand's work lives in `watcher.commands.<name>.run(args) -> int` and is imported only
when that subcommand runs, so `status`, `score` and `downscale` never import torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

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
    "build-tiny-model": "watcher.commands.build_tiny_model",
}


class CommandError(Exception):
    """A failure reported to the user as one line on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epochwatch",
        description="Watch kohya-ss LoRA runs and decide, epoch by epoch, whether to continue.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("score", help="score images against a prompt")
    p.add_argument("images", nargs="*", metavar="IMAGE")
    p.add_argument("--prompt", default="", help="prompt with hex codes, e.g. 'green background (#00ff00)'")
    p.add_argument("--manifest", help="JSON Lines file of {\"image\": path, \"prompt\": text}")
    p.add_argument("--cells", type=int, default=24, help="logical grid size N (default 24)")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")

    p = sub.add_parser("downscale", help="recover the logical pixel grid of images")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--out-dir", required=True)
    p.add_argument("--cells", type=int, default=24)

    p = sub.add_parser("demo", help="the whole loop on the embedded default (CPU, tiny model)")
    p.add_argument("--workdir", default="demo-work")
    p.add_argument("--setup-only", action="store_true", help="write DIR/config.toml and print its path")
    p.add_argument("--replay", action="store_true",
                   help="the continue path instead: replay 10 epochs of stand-in images (no torch)")

    p = sub.add_parser("simtrain", help="stand-in trainer writing kohya-format LoRA epoch files")
    p.add_argument("--config", required=True)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--interval", type=float, default=None, help="seconds per epoch")

    p = sub.add_parser("watch", help="the daemon, in the foreground")
    p.add_argument("--config", required=True)
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    # Used by `launch`: exit once the trainer has ended and every checkpoint is processed.
    p.add_argument("--until-trainer-exits", action="store_true", help=argparse.SUPPRESS)

    p = sub.add_parser("launch", help="start trainer and daemon, relay the stop decision, wait")
    p.add_argument("--config", required=True)

    p = sub.add_parser("status", help="the run's state")
    p.add_argument("--config", required=True)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("evaluate", help="one-shot evaluation of one checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--config", required=True)

    p = sub.add_parser("report", help="write report.md, grid.png, curves.png")
    p.add_argument("--config", required=True)

    p = sub.add_parser("analyze", help="cross-run analysis")
    asub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    a = asub.add_parser("correlations", help="tracked parameters against outcomes")
    a.add_argument("--config", help="any run's config (locates the store); default: all stores given")
    a.add_argument("--store", action="append", default=[], help="extra state databases")
    a = asub.add_parser("root-cause", help="findings from the epoch timeline")
    a.add_argument("--config", required=True)
    a = asub.add_parser("hypotheses", help="the next experiments")
    a.add_argument("--config", required=True)
    a.add_argument("--write-config", metavar="OUT.toml")

    p = sub.add_parser("review", help="record a person's scores for an epoch")
    p.add_argument("--config", required=True)
    p.add_argument("--epoch", type=int, required=True)
    p.add_argument("--visual", type=float, required=True)
    p.add_argument("--style", type=float, required=True)
    p.add_argument("--prompt", type=float, required=True)
    p.add_argument("--notes", default="")

    p = sub.add_parser("replay", help="judge a past run's images epoch by epoch, as live")
    p.add_argument("--config", required=True)
    p.add_argument("--images", required=True, metavar="DIR",
                   help="epoch_N/ (epoch-N, epochN, eN) folders, or kohya sample files")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("build-tiny-model", help="build the tiny SD1.5-shaped model offline")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    return parser


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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
