"""`replay` reads PNG, JPEG and WebP images as `score` does, and its best epoch is the
report's. Real images (the demo set re-encoded), real processes, real git."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from PIL import Image

from tests.test_replay import STOP_STORY
from watcher.config import load_config
from watcher.samples import demo_set
from watcher.samples.layout import scan
from watcher.samples.source import trainer_prompts
from watcher.testing import write_trainer_source_config

REPO = Path(__file__).resolve().parents[1]
SUBJECTS = demo_set.DEMO_SUBJECTS[:2]


def reencode(folder: Path, fmt: str, suffix: str) -> None:
    for png in sorted(folder.glob("*.png")):
        with Image.open(png) as im:
            im.convert("RGB").save(png.with_suffix(suffix), fmt, quality=95)
        png.unlink()


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=300)


def test_jpeg_and_webp_epochs_are_judged_and_best_epoch_is_the_reports(tmp_path: Path) -> None:
    images = demo_set.build(tmp_path / "past", story=STOP_STORY[:3], subjects=SUBJECTS)
    reencode(images / "epoch_01", "JPEG", ".jpg")
    reencode(images / "epoch_02", "WEBP", ".webp")
    config = write_trainer_source_config(tmp_path, demo_set.prompts_file(images), name="FORMATS",
                                         sampling="review_epochs = []")
    cfg = load_config(config)
    layout = scan(images, cfg.prompts(), trainer_prompts(cfg), cfg.run.output_name)
    assert [(e.epoch, e.judged, sorted(s.path.suffix for s in e.samples)) for e in layout.epochs] == [
        (1, True, [".jpg", ".jpg"]), (2, True, [".webp", ".webp"]), (3, True, [".png", ".png"])]

    replayed = cli("replay", "--config", str(config), "--images", str(images), "--json")
    assert replayed.returncode == 0, replayed.stderr
    result = json.loads(replayed.stdout.strip().splitlines()[-1])
    assert [e["state"] for e in result["epochs"]] == ["judged"] * 3
    assert all(e["n_images"] == 2 for e in result["epochs"])
    # the report replay wrote at the run's end
    report = (tmp_path / "results" / "runs" / "FORMATS" / "report.md").read_text()
    best = report.split("- Best epoch: epoch ")[1].split()[0]
    assert result["best_epoch"] is not None and str(result["best_epoch"]) == best
