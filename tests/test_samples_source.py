"""The trainer as the sample source: PNGs written in place, as kohya's PIL does, become
complete epoch sets; bad files are refused once each and never counted."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from tests.samples_support import png_bytes, write_slowly
from watcher.prompts import PromptDefaults
from watcher.samples.epochs import kohya_prompts
from watcher.samples.names import sample_name
from watcher.samples.source import TrainerSamples, identity, open_images


def prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.txt"
    path.write_text("a green (#00ff00) --d 5\nb red (#ff0000)\n")
    return path


def drive(src: TrainerSamples, folder: Path, until: float) -> tuple[list, list[str]]:
    sets, refused = [], []
    while time.time() < until:
        for p in folder.iterdir():
            src.offer(p)
        got, bad = src.poll()
        sets += got
        refused += bad
        if sets and not src.busy():
            break
        time.sleep(0.02)
    return sets, refused


def test_epoch_sets_from_pngs_written_in_place(tmp_path: Path) -> None:
    folder = tmp_path / "output" / "sample"
    folder.mkdir(parents=True)
    src = TrainerSamples(folder, "pix", kohya_prompts(prompts(tmp_path), PromptDefaults()),
                         settle_interval_s=0.05, set_timeout_s=60)
    rng = np.random.default_rng(0)
    big = rng.integers(0, 256, (192, 192, 3), dtype=np.uint8)
    first = folder / sample_name("pix", 1, 0, "20261201101500", 5)
    second = folder / sample_name("pix", 1, 1, "20261201101502")
    writers = [write_slowly(first, big, 0.02), write_slowly(second, big[::-1].copy(), 0.03)]
    sets, refused = drive(src, folder, time.time() + 20)
    for w in writers:
        w.join()
    assert refused == []
    (epoch,) = sets
    assert epoch.epoch == 1 and not epoch.partial
    assert [(s.path.name, s.prompt.text, s.prompt.seed) for s in epoch.samples] == [
        (first.name, "a green (#00ff00)", 5), (second.name, "b red (#ff0000)", -1)]
    images = open_images(epoch.samples)
    assert [im.size for _, im in images] == [(192, 192), (192, 192)]
    sha, size = identity(epoch.samples)
    assert size == first.stat().st_size + second.stat().st_size and len(sha) == 64


def test_partial_epoch_and_refusals(tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    folder.mkdir()
    src = TrainerSamples(folder, "pix", kohya_prompts(prompts(tmp_path), PromptDefaults()),
                         settle_interval_s=0.05, set_timeout_s=0.5)
    files = {
        sample_name("pix", 2, 0, "20261201110000", 5): png_bytes(32),
        sample_name("pix", 2, 2, "20261201110001", 9): png_bytes(32),  # a third image: 2 prompts
        sample_name("other", 2, 1, "20261201110000", 5): png_bytes(32),
        "pix_000300_00_20261201110000_5.png": png_bytes(32),
        sample_name("pix", 2, 1, "20261201110002"): b"\xff\xd8\xff\xe0 a JPEG",
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    sets, refused = drive(src, folder, time.time() + 10)
    (epoch,) = sets
    assert epoch.partial and epoch.missing == (1,)
    assert len(refused) == 4  # each bad file once, though offered on every pass
    assert sorted(r.path.name for r in refused) == sorted(set(files) - {sample_name("pix", 2, 0, "20261201110000", 5)})
    reasons = [r.reason for r in refused]
    assert all(r.path.name in r.reason for r in refused)
    assert any("more images than prompts" in r for r in reasons)
    assert any("another run" in r for r in reasons)
    assert any("step-based" in r for r in reasons)
    assert any("not a PNG (bad signature)" in r for r in reasons)


def test_finish_refuses_half_written_and_closes_open_epochs(tmp_path: Path) -> None:
    folder = tmp_path / "sample"
    folder.mkdir()
    src = TrainerSamples(folder, "pix", kohya_prompts(prompts(tmp_path), PromptDefaults()),
                         settle_interval_s=0.05, set_timeout_s=600)
    whole = folder / sample_name("pix", 3, 0, "20261201120000", 5)
    whole.write_bytes(png_bytes(32))
    half = folder / sample_name("pix", 3, 1, "20261201120001")
    half.write_bytes(png_bytes(32)[:40])
    t0 = time.time()
    for p in (whole, half):
        src.offer(p, now=t0)
    src.poll(now=t0)
    src.poll(now=t0 + 0.1)
    sets, refused = src.finish(now=t0 + 10, quiet_s=2.0)
    assert [(s.epoch, s.missing) for s in sets] == [(3, (1,))]
    assert [r.path for r in refused] == [half]
    assert "incomplete when the trainer ended" in refused[0].reason
    assert not src.busy()
