"""The `epochwatch` argument parser (the fixed contract in ARCHITECTURE.md, plus conventions).

Conventions: every option has help text with its units and range; every command's help ends
with an example; `-c/--config` names the watcher config everywhere; outputs are `--out-dir DIR`
(a folder) or `--out FILE` (one file); older spellings (`--workdir`, `--out`, `--write-config`,
`review --prompt`) stay accepted as aliases. Developer commands are listed apart.
tests/golden/ holds the expected `--help` texts (regenerate: scripts/golden_help.py --write).
"""

from __future__ import annotations

import argparse
from typing import Any

DEV_COMMANDS = {
    "simtrain": "stand-in trainer writing kohya-format LoRA epoch files",
    "build-tiny-model": "build the tiny SD1.5-shaped model offline (tests, demo)",
}
CONFIG_HELP = "the run's watcher config (watcher.toml)"
CELLS_HELP = ("logical grid size N in cells per side, 1-512, at most half the image's "
              "shorter side (default 24)")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("epochwatch")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _config(p: argparse.ArgumentParser, required: bool = True, **kw: Any) -> None:
    kw.setdefault("help", CONFIG_HELP)
    p.add_argument("-c", "--config", required=required, metavar="FILE", **kw)


def _command(sub: Any, name: str, help: str | None, example: str, **kw: Any) -> argparse.ArgumentParser:
    extra = {"help": help} if help is not None else {}  # no help: not listed with user commands
    text = help or DEV_COMMANDS[name]
    parser: argparse.ArgumentParser = sub.add_parser(
        name, description=text[0].upper() + text[1:] + ".", epilog=_examples(*example.split("\n")),
        formatter_class=argparse.RawDescriptionHelpFormatter, **extra, **kw)
    return parser


def _dev_epilog() -> str:
    width = max(map(len, DEV_COMMANDS)) + 2
    rows = "\n".join(f"    {name:<{width}}{text}" for name, text in DEV_COMMANDS.items())
    return (f"developer commands:\n{rows}\n\n"
            "outputs: --out-dir DIR names a folder, --out FILE one file.\n"
            "'epochwatch COMMAND --help' shows a command's options and an example.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epochwatch",
        description="Watch kohya-ss LoRA runs and decide, epoch by epoch, whether to continue.",
        epilog=_dev_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"epochwatch {version()}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _user_commands(sub)
    _analysis_commands(sub)
    _dev_commands(sub)
    from watcher.serve.cli import add_parser as add_serve_parser

    add_serve_parser(sub)
    return parser


def _user_commands(sub: Any) -> None:
    p = _command(sub, "score", "score images against a prompt",
                 "epochwatch score sample.png --prompt 'red hair, solid green background (#00ff00)'\n"
                 "epochwatch score --manifest images.jsonl --json\n"
                 "epochwatch score sample.png --prompt 'green background' -c config.toml --colour-match exact")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="PNG/JPEG/WebP files to score")
    p.add_argument("--prompt", default="",
                   help="prompt text naming colours by word or hex, e.g. 'green background (#00ff00)'")
    p.add_argument("--manifest", metavar="FILE",
                   help='JSON Lines of {"image": path, "prompt": text}; relative paths are '
                        "taken from the manifest's folder")
    p.add_argument("--cells", type=int, default=None, metavar="N",
                   help=CELLS_HELP + " (with -c: the config's evaluation.cells)")
    p.add_argument("--json", action="store_true", help="one JSON object per image, one per line")
    _config(p, required=False, help="judge with this run config's [evaluation] settings "
                                     "(cells, colour_match, exact_delta_e); flags override them")
    p.add_argument("--colour-match", "--color-match", dest="colour_match", choices=("category", "exact"),
                   help="'category' (default: the colour a person would name) or 'exact' "
                        "(CIEDE2000 to the reference under --exact-delta-e)")
    p.add_argument("--exact-delta-e", type=float, metavar="D",
                   help="CIEDE2000 threshold of exact matching (default 10)")

    p = _command(sub, "downscale", "recover the logical pixel grid of images",
                 "epochwatch downscale sample.png --out-dir small/ --cells 24")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="images to downscale")
    p.add_argument("--out-dir", required=True, metavar="DIR",
                   help="folder for the N x N PNGs (DIR/<name>.png; created if missing)")
    p.add_argument("--cells", type=int, default=24, metavar="N", help=CELLS_HELP)

    p = _command(sub, "demo", "the whole loop on the embedded default (CPU, tiny model)",
                 "epochwatch demo --out-dir demo-work\nepochwatch demo --replay")
    p.add_argument("--out-dir", "--workdir", dest="workdir", default="demo-work", metavar="DIR",
                   help="working folder: config.toml, model, runs, results (default demo-work)")
    p.add_argument("--setup-only", action="store_true", help="write DIR/config.toml and print its path")
    p.add_argument("--sdxl", action="store_true",
                   help="the tiny SDXL-shaped model and kohya SDXL LoRA epochs instead of SD 1.5")
    p.add_argument("--replay", action="store_true",
                   help="the continue path instead: replay 10 epochs of stand-in images (no torch)")

    p = _command(sub, "watch", "the daemon, in the foreground (what systemd runs)",
                 "epochwatch watch -c watcher.toml")
    _config(p)
    p.add_argument("--once", action="store_true", help="process what is there, then exit")
    # Used by `launch`: exit once the trainer has ended and every checkpoint is processed.
    p.add_argument("--until-trainer-exits", action="store_true", help=argparse.SUPPRESS)

    p = _command(sub, "launch", "start trainer and daemon, relay the stop decision, wait",
                 "epochwatch launch -c watcher.toml")
    _config(p)

    p = _command(sub, "status", "the run's state", "epochwatch status -c watcher.toml --json")
    _config(p)
    p.add_argument("--json", action="store_true",
                   help="one JSON object (an 'error' key when there is no state yet)")

    p = _command(sub, "evaluate", "one-shot evaluation of one checkpoint",
                 "epochwatch evaluate out/mylora-000004.safetensors -c watcher.toml")
    p.add_argument("checkpoint", help="a kohya LoRA .safetensors file")
    _config(p)

    p = _command(sub, "report", "write report.md, grid.png, curves.png and commit them",
                 "epochwatch report -c watcher.toml")
    _config(p)

    p = _command(sub, "review", "record a person's 1-10 scores for an epoch",
                 "epochwatch review -c watcher.toml --epoch 4 --visual 7 --style 6 "
                 "--prompt-score 8 --notes 'hair too dark'")
    _config(p)
    p.add_argument("--epoch", type=int, required=True, metavar="N", help="an evaluated epoch, 0 or more")
    p.add_argument("--visual", type=float, required=True, metavar="V", help="overall look, 1-10")
    p.add_argument("--style", type=float, required=True, metavar="S", help="pixel-art style, 1-10")
    p.add_argument("--prompt-score", type=float, metavar="P", help="faithfulness to the prompt, 1-10")
    p.add_argument("--prompt", type=float, dest="prompt_deprecated", help=argparse.SUPPRESS)
    p.add_argument("--notes", default="", metavar="TEXT",
                   help="free text, up to 2000 characters; earlier reviews are kept")

    p = _command(sub, "replay", "judge a past run's images epoch by epoch, as live",
                 "epochwatch replay -c watcher.toml --images samples/ --json")
    _config(p)
    p.add_argument("--images", required=True, metavar="DIR",
                   help="epoch_N/ (epoch-N, epochN, eN) folders, or kohya sample files")
    p.add_argument("--json", action="store_true", help="one JSON object per epoch, one per line")

    p = _command(sub, "runs", "every run, from state stores or Supabase",
                 "epochwatch runs -c a/watcher.toml -c b/watcher.toml")
    _config(p, required=False, action="append", default=[], help=CONFIG_HELP + "; repeatable")
    p.add_argument("--source", choices=("local", "supabase"), default=None,
                   help="default: local with --config, else supabase when SUPABASE_URL is set")
    p.add_argument("--json", action="store_true", help="one JSON object per run, one per line")


def _analysis_commands(sub: Any) -> None:
    p = _command(sub, "analyze", "cross-run analysis",
                 "epochwatch analyze hypotheses -c watcher.toml --out next.toml")
    asub = p.add_subparsers(dest="analysis", required=True, metavar="ANALYSIS")
    source_help = ("state stores, or every run in Supabase (default: supabase when "
                   "SUPABASE_URL is set and no --config/--store is given)")
    run_help = "the run's name in Supabase (default: the config's run)"
    a = _command(asub, "correlations", "tracked parameters against outcomes",
                 "epochwatch analyze correlations --source supabase")
    _config(a, required=False, help="any run's config (locates the store); default: all stores given")
    a.add_argument("--store", action="append", default=[], metavar="DB",
                   help="extra state database (repeatable)")
    a.add_argument("--source", choices=("local", "supabase"), help=source_help)
    a = _command(asub, "root-cause", "findings from the epoch timeline",
                 "epochwatch analyze root-cause -c watcher.toml")
    _config(a, required=False, help="the run's config (required for --source local)")
    a.add_argument("--run", metavar="NAME", help=run_help)
    a.add_argument("--source", choices=("local", "supabase"), help=source_help)
    a = _command(asub, "hypotheses", "the next experiments",
                 "epochwatch analyze hypotheses -c watcher.toml --out next.toml")
    _config(a, required=False, help="the run's config (required for --source local)")
    a.add_argument("--run", metavar="NAME", help=run_help)
    a.add_argument("--source", choices=("local", "supabase"), help=source_help)
    a.add_argument("--out", "--write-config", dest="write_config", metavar="FILE",
                   help="write the next kohya config (TOML) to FILE")
    a.add_argument("--plan-out", metavar="FILE",
                   help="also write the next run's plan (TOML): that hypothesis as its goal, "
                        "this run as its baseline")
    a.add_argument("--force", action="store_true", help="overwrite FILE if it exists")

    p = _command(sub, "plan", "the run's plan (plan.toml named by [run] plan)",
                 "epochwatch plan show -c watcher.toml")
    psub = p.add_subparsers(dest="plan_action", required=True, metavar="ACTION")
    b = _command(psub, "show", "print the effective plan: criteria with their rules, decision "
                 "points, branches, next steps, baselines", "epochwatch plan show -c watcher.toml")
    _config(b)

    p = _command(sub, "baselines", "the baseline runs of configs/baselines/",
                 "SUPABASE_URL=... SUPABASE_KEY=... epochwatch baselines push")
    bsub = p.add_subparsers(dest="baselines_action", required=True, metavar="ACTION")
    b = _command(bsub, "push", "send them to Supabase once (needs the service key)",
                 "SUPABASE_URL=... SUPABASE_KEY=... epochwatch baselines push")
    b.add_argument("--dir", metavar="DIR", help="baselines folder (default: configs/baselines)")


def _dev_commands(sub: Any) -> None:
    p = _command(sub, "simtrain", None, "epochwatch simtrain -c watcher.toml --epochs 3 --interval 2")
    _config(p)
    p.add_argument("--epochs", type=int, default=None, metavar="N",
                   help="epochs to write, 1 or more (default: the config's max_train_epochs)")
    p.add_argument("--interval", type=float, default=None, metavar="S",
                   help="seconds per epoch, 0 or more (default 5)")
    p.add_argument("--nan-at-epoch", type=int, default=None, metavar="N",
                   help="the loss turns NaN from the middle of epoch N (to try the health alerts)")

    p = _command(sub, "build-tiny-model", None, "epochwatch build-tiny-model --out-dir tiny-model")
    p.add_argument("--out-dir", "--out", dest="out", required=True, metavar="DIR",
                   help="folder to create for the model (must not exist)")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="random seed (default 0)")
    p.add_argument("--sdxl", action="store_true", help="SDXL-shaped: two text encoders, SDXL's UNet layout")
