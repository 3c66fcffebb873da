"""`epochwatch demo --replay`: the continue path, on stand-in images, in a few seconds.

Builds the 10-epoch folder of watcher/samples/demo_set.py (real pixel-art portraits degraded
on purpose; no model drew them, and the folder's README.txt says so), writes a config that
judges it with the plan's rules, and replays it: the background turns green at epoch 3, so
the epoch-4 rule lets the run continue; epoch 6 regresses (the oscillation alert); later
epochs are marked production candidates. The report, grid and curves show it. No torch.
"""

from __future__ import annotations

import shlex
import shutil
import time
from argparse import Namespace
from pathlib import Path

from watcher.samples import demo_set

STOP_DEMO_WORKDIR = "demo-work"  # `epochwatch demo`'s default --workdir
DEFAULT_WORKDIR = "demo-replay"

CONFIG = """\
# epochwatch demo --replay: a past run's images judged with the plan's rules.
# The images are stand-ins (see replay/README.txt), not the output of a model.
[run]
name = "DEMO_REPLAY_CONTINUE"
output_dir = "output"
output_name = "demo_lora"
max_train_epochs = 10
state_dir = "state"

[sampling]
source = "trainer"
prompts_file = "replay.prompts.txt"
review_epochs = []

[results]
repo = "results"
dir = "runs"
"""


def setup(workdir: Path) -> tuple[Path, Path]:
    """(config, images folder), written fresh under `workdir`."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    for stale in ("replay", "state", "results", "output"):
        shutil.rmtree(workdir / stale, ignore_errors=True)
    images = demo_set.build(workdir / "replay")
    config = workdir / "config.toml"
    config.write_text(CONFIG)
    return config, images


def run(args: Namespace) -> int:
    from watcher import logs
    from watcher.commands import replay
    from watcher.commands._common import epochwatch_command, load

    logs.configure(level="warning", json_lines=False)  # a person is watching
    t0 = time.time()
    # Its own folder by default: the stop-path demo's results in demo-work/ stay as they are.
    workdir = DEFAULT_WORKDIR if args.workdir == STOP_DEMO_WORKDIR else args.workdir
    config, images = setup(Path(workdir))
    if args.setup_only:
        print(config)
        return 0
    print(f"stand-in images: {images} (DiceBear pixel-art portraits degraded on purpose, "
          "not model output; see README.txt there)")
    cfg = load(str(config))
    layout = replay.find_layout(cfg, str(images))
    lines, summary = replay.replay(cfg, layout)
    print(replay.render(layout, lines, summary))
    report = Path(cfg.run_results_dir) / "report.md"
    print(f"report:  {report} (grid.png, curves.png beside it)")
    print(f"state:   {epochwatch_command()} status --config {shlex.quote(str(config))}")
    print(f"demo took {time.time() - t0:.0f} s")
    return 0
