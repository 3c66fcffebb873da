"""One epoch's kohya samples as a set: complete, partial after a timeout, bad images refused."""

from __future__ import annotations

from pathlib import Path

from watcher.prompts import SamplePrompt
from watcher.samples.epochs import UNKNOWN_SEED, EpochCollector, KohyaPrompt
from watcher.samples.names import parse_sample_name

PROMPTS = [
    KohyaPrompt(0, SamplePrompt("a (#00ff00)", "", 0, 512, 512, 20, 7.5), 42),
    KohyaPrompt(1, SamplePrompt("b (#00ff00)", "", 0, 512, 512, 20, 7.5), None),
    KohyaPrompt(2, SamplePrompt("c (#00ff00)", "", 0, 512, 512, 20, 7.5), 7),
]


def sample(epoch: int, idx: int, seed: int | None, stamp: str = "20261201101500"):
    suffix = "" if seed is None else f"_{seed}"
    return parse_sample_name(Path(f"/o/sample/pix_e{epoch:06d}_{idx:02d}_{stamp}{suffix}.png"), "pix")


def test_complete_when_every_prompt_has_its_image() -> None:
    c = EpochCollector(PROMPTS, timeout_s=60)
    assert c.add(sample(1, 2, 7), now=0) == (None, None)
    assert c.add(sample(1, 0, 42), now=1) == (None, None)
    done, refusal = c.add(sample(1, 1, 1234567), now=2)  # kohya drew seed 1234567 for idx 1
    assert refusal is None and done is not None
    assert not done.partial and done.describe() == "epoch 1: all 3 samples"
    assert [s.idx for s in done.samples] == [0, 1, 2]
    assert [s.prompt.text for s in done.samples] == ["a (#00ff00)", "b (#00ff00)", "c (#00ff00)"]
    assert [s.prompt.seed for s in done.samples] == [42, 1234567, 7]
    assert c.open_epochs() == []


def test_unknown_seed_when_the_name_has_none() -> None:
    c = EpochCollector(PROMPTS[1:2], timeout_s=60)
    done, _ = c.add(sample(3, 0, None), now=0)
    assert done is not None and done.samples[0].prompt.seed == UNKNOWN_SEED


def test_partial_after_the_timeout() -> None:
    c = EpochCollector(PROMPTS, timeout_s=30)
    c.add(sample(2, 0, 42), now=0)
    c.add(sample(2, 2, 7), now=10)
    assert c.next_deadline() == 40
    assert c.expire(now=39) == []
    (partial,) = c.expire(now=40)
    assert partial.partial and partial.missing == (1,)
    assert partial.describe() == "epoch 2: partial, 2 of 3 samples (no image for prompt idx 1)"
    _, refusal = c.add(sample(2, 1, 5), now=50)
    assert refusal is not None and "epoch 2 was already judged; this image came after" in refusal


def test_flush_closes_every_open_epoch_in_order() -> None:
    c = EpochCollector(PROMPTS, timeout_s=600)
    c.add(sample(5, 0, 42), now=0)
    c.add(sample(4, 0, 42), now=0)
    assert [s.epoch for s in c.flush()] == [4, 5]


def test_bad_images_refused_with_their_names() -> None:
    c = EpochCollector(PROMPTS, timeout_s=60)
    done, refusal = c.add(sample(1, 3, 1), now=0)
    assert done is None
    assert refusal == ("'pix_e000001_03_20261201101500_1.png': more images than prompts: "
                       "prompt idx 3, the prompt file has 3 prompts")
    c.add(sample(1, 0, 42), now=0)
    _, refusal = c.add(sample(1, 0, 42, stamp="20261201101501"), now=1)
    assert refusal == ("'pix_e000001_00_20261201101501_42.png': a second image for epoch 1 prompt "
                       "idx 0 ('pix_e000001_00_20261201101500_42.png' came first)")
    _, refusal = c.add(sample(1, 2, 8), now=1)
    assert refusal == ("'pix_e000001_02_20261201101500_8.png': seed 8 in the name, but prompt "
                       "idx 2 fixes seed 7 (was the prompt file changed?)")
    assert c.open_epochs() == [1]  # refused images never complete an epoch
