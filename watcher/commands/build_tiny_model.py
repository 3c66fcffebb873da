"""`epochwatch build-tiny-model --out DIR [--seed N] [--sdxl]`: the tiny SD1.5- or
SDXL-shaped model, offline."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

from watcher.errors import CommandError


def run(args: Namespace) -> int:
    from watcher.tinymodel import build_tiny_model

    try:
        path = build_tiny_model(Path(args.out), seed=int(args.seed), sdxl=bool(args.sdxl))
    except FileExistsError as exc:
        raise CommandError(str(exc)) from exc
    print(path)
    return 0
