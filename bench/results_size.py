"""The results repository's size after a long simulated run, with the pictures that are
redrawn every epoch (grid.png, curves.png) committed every epoch ("before", what the daemon
did) and committed once with the final report ("after", what it does now).

Both runs go through the real epoch path (`watcher.epoch.path.EpochPath`: evaluate -> decide ->
publish -> act, real git) with `watcher.testing.FakePipeline` rendering real pixel-art
sprites at the configured size, so only git sizes and time are measured, never a model.
"before" replays the old policy by committing the refreshed grid.png and curves.png after
each epoch's own commit (the objects are the same as in one commit).

    python -m bench.results_size [--epochs 200] [--prompts 4] [--size 512] [--remote-outage S]

Prints a table, then one JSON object as the last line. Sizes: `git count-objects -v` (loose +
packed) right after the run, and the pack after `git gc`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.testing import FakePipeline, write_watch_config

PROMPTS = [
    "pixel art portrait, pink hair (#ff66cc), solid green background (#00ff00)",
    "pixel art portrait, blue shirt (#1e90ff), solid green background (#00ff00)",
    "pixel art portrait, red cap (#e03030), solid green background (#00ff00)",
    "pixel art portrait, yellow scarf (#ffd700), solid green background (#00ff00)",
    "pixel art portrait, purple eyes (#8a2be2), solid green background (#00ff00)",
    "pixel art portrait, white beard (#f0f0f0), solid green background (#00ff00)",
    "pixel art portrait, orange jacket (#ff8c00), solid green background (#00ff00)",
    "pixel art portrait, teal hat (#008080), solid green background (#00ff00)",
]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


def repo_kib(repo: Path) -> dict[str, int]:
    """git's own accounting: loose objects + packs, in KiB."""
    fields = dict(line.split(": ") for line in _git(repo, "count-objects", "-v").splitlines())
    return {"loose_kib": int(fields["size"]), "pack_kib": int(fields["size-pack"]),
            "total_kib": int(fields["size"]) + int(fields["size-pack"])}


def simulate(root: Path, epochs: int, prompts: int, size: int, every_epoch: bool) -> dict[str, Any]:
    root.mkdir(parents=True)
    config = write_watch_config(root, root / "no-model-needed", name="SIZE_RUN", epochs=epochs,
                                size=size)
    text = config.read_text()
    inline = ",\n".join(f'  {{ text = "{p}" }}' for p in PROMPTS[:prompts])
    start, end = text.index("prompts = [") + len("prompts = [\n"), text.index("\n]\n")
    # One plain rule: the plan's stop rules would end a 200-epoch run early.
    config.write_text(text[:start] + inline + text[end:] + "\n[[criteria]]\nname = \"quality\"\n"
                      "metric = \"overall_score\"\nthreshold = 1.0\nepoch = 1\nmode = \"from\"\naction = \"alert\"\n")
    path = EpochPath.open(load_config(config))
    pipeline = FakePipeline()
    t0 = time.monotonic()
    try:
        for epoch in range(1, epochs + 1):
            pipeline.background = "#00ff00" if epoch % 3 else "#ff0000"
            ck = path.add_source(root / f"lora-{epoch:06d}.safetensors", epoch, f"{epoch:064x}", 10)
            path.run_checkpoint(pipeline, ck)
            if every_epoch:  # the old policy: the refreshed pictures in every epoch's commit
                run_dir = path.cfg.run_results_dir
                pics = [run_dir / n for n in ("grid.png", "curves.png") if (run_dir / n).exists()]
                path.repo.commit_paths(pics, f"pictures after epoch {epoch}", "", f"pics:{epoch}")
        path.end_run(last_epoch_done=True)
    finally:
        path.close(deliver=False)
    seconds = time.monotonic() - t0
    repo = path.cfg.results_repo
    sizes = repo_kib(repo)
    _git(repo, "gc", "-q")
    sizes["after_gc_kib"] = repo_kib(repo)["total_kib"]
    commits = len(_git(repo, "log", "--format=%H").split())
    return {**sizes, "commits": commits, "seconds": round(seconds, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--prompts", type=int, default=4, choices=range(1, len(PROMPTS) + 1))
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epochwatch-size-") as tmp:
        before = simulate(Path(tmp) / "before", args.epochs, args.prompts, args.size, True)
        after = simulate(Path(tmp) / "after", args.epochs, args.prompts, args.size, False)
    result = {"epochs": args.epochs, "prompts": args.prompts, "size": args.size,
              "before": before, "after": after,
              "after_vs_before": round(after["total_kib"] / before["total_kib"], 3)}
    print(f"{'policy':<32} {'repo KiB':>9} {'after gc':>9} {'commits':>7} {'seconds':>8}")
    for label, r in (("pictures every epoch (before)", before), ("pictures at the end (after)", after)):
        print(f"{label:<32} {r['total_kib']:>9} {r['after_gc_kib']:>9} {r['commits']:>7} {r['seconds']:>8}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
