"""The folder layouts `replay` reads: epoch sub-folders and kohya sample names."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.samples_support import png_bytes
from watcher.prompts import SamplePrompt
from watcher.samples.epochs import KohyaPrompt
from watcher.samples.layout import LayoutError, natural_key, scan


def pairs(n_prompts: int = 2, seeds: tuple[int, ...] = (1, 2)) -> list[SamplePrompt]:
    return [SamplePrompt(f"prompt {p} (#00ff00)", "", s, 512, 512, 20, 7.5)
            for p in range(1, n_prompts + 1) for s in seeds]


def kohya(n: int = 2) -> list[KohyaPrompt]:
    return [KohyaPrompt(i, SamplePrompt(f"prompt {i + 1} (#00ff00)", "", 0, 512, 512, 20, 7.5), i + 1)
            for i in range(n)]


def fill(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        (folder / name).write_bytes(png_bytes(32, seed=i))


@pytest.mark.parametrize("names", [
    ["epoch_1", "epoch_2", "epoch_10"],
    ["epoch-001", "epoch-002", "epoch-010"],
    ["epoch1", "epoch2", "epoch10"],
    ["e1", "e02", "e0010"],
    ["Epoch_01", "EPOCH-2", "E10"],
])
def test_epoch_folder_names(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        fill(tmp_path / name, ["a.png", "b.png", "c.png", "d.png"])
    layout = scan(tmp_path, pairs(), kohya(), "run")
    assert layout.kind == "folders" and layout.problems == []
    assert [e.epoch for e in layout.epochs] == [1, 2, 10]
    assert all(e.judged and not e.partial and e.problems == () for e in layout.epochs)


def test_images_sorted_by_name_match_prompt_then_seed(tmp_path: Path) -> None:
    fill(tmp_path / "epoch_3", ["img10.png", "img2.png", "img1.png", "img3.png"])
    (epoch,) = scan(tmp_path, pairs(), kohya(), "run").epochs
    got = [(s.path.name, s.prompt.text, s.prompt.seed) for s in epoch.samples]
    assert got == [
        ("img1.png", "prompt 1 (#00ff00)", 1), ("img2.png", "prompt 1 (#00ff00)", 2),
        ("img3.png", "prompt 2 (#00ff00)", 1), ("img10.png", "prompt 2 (#00ff00)", 2),
    ]
    assert natural_key("img2") < natural_key("img10")


def test_missing_and_extra_images_reported_never_guessed(tmp_path: Path) -> None:
    fill(tmp_path / "epoch_1", ["1.png", "2.png", "3.png"])
    fill(tmp_path / "epoch_2", ["1.png", "2.png", "3.png", "4.png", "5.png"])
    fill(tmp_path / "epoch_3", ["1.png", "2.png", "3.png", "4.png"])
    (tmp_path / "epoch_3" / "notes.txt").write_text("not an image")
    (tmp_path / "epoch_3" / "5.jpg").write_bytes(b"\xff\xd8\xff")
    e1, e2, e3 = scan(tmp_path, pairs(), kohya(), "run").epochs
    assert not e1.judged and e1.samples == ()
    assert e1.problems == ("epoch_1: 3 images for 4 (prompt, seed) pairs: missing images cannot be "
                           "matched without guessing; epoch 1 not judged",)
    assert not e2.judged and "5 images for 4 (prompt, seed) pairs: extra images" in e2.problems[0]
    assert e3.judged and len(e3.samples) == 4
    assert e3.problems == ("epoch_3/'5.jpg': not an image (format not recognised), ignored",
                           "epoch_3/'notes.txt': not a PNG, JPEG or WebP image, ignored")


def test_half_written_png_is_not_counted(tmp_path: Path) -> None:
    fill(tmp_path / "epoch_1", ["1.png", "2.png", "3.png", "4.png"])
    (tmp_path / "epoch_1" / "4.png").write_bytes(png_bytes(32)[:70])
    (epoch,) = scan(tmp_path, pairs(), kohya(), "run").epochs
    assert not epoch.judged
    assert epoch.problems[0].startswith("epoch_1/'4.png': not a complete PNG (")
    assert "3 images for 4" in epoch.problems[1]


def test_duplicate_epoch_folders_and_strays(tmp_path: Path) -> None:
    fill(tmp_path / "epoch_1", ["1.png", "2.png", "3.png", "4.png"])
    fill(tmp_path / "epoch-001", ["1.png", "2.png", "3.png", "4.png"])
    fill(tmp_path / "epoch_2", ["1.png", "2.png", "3.png", "4.png"])
    fill(tmp_path / "epoch_0", ["1.png", "2.png", "3.png", "4.png"])
    fill(tmp_path / "final", ["1.png"])
    (tmp_path / "loss.csv").write_text("1,2\n")
    layout = scan(tmp_path, pairs(), kohya(), "run")
    assert [e.epoch for e in layout.epochs] == [2]
    assert layout.problems == [
        "'final': not an epoch folder or sample, ignored",
        "'loss.csv': not an epoch folder or sample, ignored",
        "'epoch_0': epoch 0 is not a training epoch, ignored",
        "'epoch_1': epoch 1 is also 'epoch-001'; both ignored",
    ]


def test_kohya_names_directly_in_dir(tmp_path: Path) -> None:
    fill(tmp_path, [
        "run_e000001_00_20261201100000_1.png", "run_e000001_01_20261201100001_2.png",
        "run_e000002_00_20261201110000_1.png",  # idx 1 of epoch 2 missing: partial
        "run_e000003_00_20261201120000_1.png", "run_e000003_01_20261201120001_2.png",
        "run_e000003_02_20261201120002_3.png",  # more images than prompts
        "other_e000003_00_20261201120000_1.png",  # another run
        "run_000500_00_20261201120000_1.png",  # step-based
    ])
    layout = scan(tmp_path, pairs(), kohya(2), "run")
    assert layout.kind == "kohya"
    e1, e2, e3 = layout.epochs
    assert [s.path.name for s in e1.samples] == ["run_e000001_00_20261201100000_1.png",
                                                  "run_e000001_01_20261201100001_2.png"]
    assert e1.problems == () and not e1.partial
    assert e2.judged and e2.partial and e2.problems == (
        "epoch 2: partial, 1 of 2 samples (no image for prompt idx 1)",)
    assert not e3.partial and e3.problems == (
        "'run_e000003_02_20261201120002_3.png': more images than prompts: prompt idx 2, the "
        "prompt file has 2 prompts",)
    assert sorted(layout.problems) == [
        "'other_e000003_00_20261201120000_1.png' belongs to another run (output_name 'other', "
        "this run's is 'run')",
        "'run_000500_00_20261201120000_1.png' is a step-based sample (step 500), but epochs are "
        "expected: set sample_every_n_epochs, not sample_every_n_steps",
    ]


def test_nothing_replayable_or_mixed_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not a folder"):
        scan(tmp_path / "absent", pairs(), kohya(), "run")
    fill(tmp_path, ["cat.png"])
    with pytest.raises(LayoutError, match="no epoch folders"):
        scan(tmp_path, pairs(), kohya(), "run")
    fill(tmp_path / "epoch_1", ["1.png"])
    fill(tmp_path, ["run_e000001_00_20261201100000_1.png"])
    with pytest.raises(LayoutError, match="holds both epoch folders and kohya sample files"):
        scan(tmp_path, pairs(), kohya(), "run")
