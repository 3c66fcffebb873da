"""kohya sample file names, exactly as sd-scripts writes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.samples.names import (
    NameRefused,
    SampleName,
    looks_like_sample,
    parse_sample_name,
    sample_name,
)


@pytest.mark.parametrize(("name", "epoch", "idx", "stamp", "seed"), [
    ("pixel_lora_e000003_00_20261201053712_42.png", 3, 0, "20261201053712", 42),
    ("pixel_lora_e000010_07_20261201235959.png", 10, 7, "20261201235959", None),
    ("pixel_lora_e000001_123_20261201000000_0.png", 1, 123, "20261201000000", 0),  # 100+ prompts
    ("pixel_lora_e1000000_01_20261201000000_5.png", 1000000, 1, "20261201000000", 5),
])
def test_epoch_sample_names(name: str, epoch: int, idx: int, stamp: str, seed: int | None) -> None:
    assert parse_sample_name(Path("/s") / name, "pixel_lora") == SampleName(
        Path("/s") / name, epoch, idx, stamp, seed)


def test_output_name_with_underscores_and_digits() -> None:
    name = "SD15_KEEP_TOKENS_3_e000004_02_20261201101010_1234.png"
    got = parse_sample_name(name, "SD15_KEEP_TOKENS_3")
    assert (got.epoch, got.idx, got.seed) == (4, 2, 1234)


def test_no_output_name_has_no_prefix() -> None:
    got = parse_sample_name("e000002_01_20261201101010.png", None)
    assert (got.epoch, got.idx, got.seed) == (2, 1, None)


def test_sample_name_round_trips() -> None:
    name = sample_name("run", 5, 3, "20261201120000", 77)
    assert name == "run_e000005_03_20261201120000_77.png"
    assert sample_name(None, 5, 3, "20261201120000") == "e000005_03_20261201120000.png"
    assert parse_sample_name(name, "run").seed == 77


@pytest.mark.parametrize(("name", "reason"), [
    ("pixel_lora_000400_00_20261201053712_42.png",
     "'pixel_lora_000400_00_20261201053712_42.png' is a step-based sample (step 400), but epochs "
     "are expected: set sample_every_n_epochs, not sample_every_n_steps"),
    ("other_run_e000003_00_20261201053712_42.png",
     "'other_run_e000003_00_20261201053712_42.png' belongs to another run (output_name "
     "'other_run', this run's is 'pixel_lora')"),
    ("e000003_00_20261201053712.png",
     "'e000003_00_20261201053712.png' belongs to another run (output_name '(none)', this run's "
     "is 'pixel_lora')"),
    ("pixel_lora_e000000_00_20261201053712_42.png",
     "'pixel_lora_e000000_00_20261201053712_42.png' was sampled before training (epoch 0), not "
     "after an epoch"),
    ("pixel_lora_e000003_00_20261201053712_42.jpg",
     "'pixel_lora_e000003_00_20261201053712_42.jpg' is not a PNG sample (kohya writes .png)"),
    ("pixel_lora_e03_00.png",
     "'pixel_lora_e03_00.png' is not named like a kohya sample "
     "({output_name}_e{epoch:06d}_{idx:02d}_{YYYYmmddHHMMSS}[_{seed}].png)"),
    ("pixel_lora_e000003_00_2026120105371_42.png",  # 13-digit time stamp
     "'pixel_lora_e000003_00_2026120105371_42.png' is not named like a kohya sample "
     "({output_name}_e{epoch:06d}_{idx:02d}_{YYYYmmddHHMMSS}[_{seed}].png)"),
])
def test_refused_names_say_why(name: str, reason: str) -> None:
    with pytest.raises(NameRefused) as info:
        parse_sample_name(name, "pixel_lora")
    assert info.value.reason == reason


def test_control_characters_escaped_in_reason() -> None:
    with pytest.raises(NameRefused) as info:
        parse_sample_name("bad\nname.png", "run")
    assert "\n" not in info.value.reason and "bad\\nname.png" in info.value.reason


def test_looks_like_sample() -> None:
    assert looks_like_sample("x_e000001_00_20261201000000.png")
    assert looks_like_sample("x_000100_00_20261201000000_3.png")
    assert not looks_like_sample("00.png")
    assert not looks_like_sample("epoch_1")
