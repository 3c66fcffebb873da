"""PNG settling: a sample PIL is still writing is never handed on; bad files refused once."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.samples_support import chunk_ends, png_bytes, write_slowly
from watcher.epoch.settle import NotReady, Rejected
from watcher.samples.png import SampleRefusal, SampleSettler, SettledSample, check_png

NAME = "pix_e000002_01_20261201053712_42.png"


def test_every_prefix_of_a_png_is_not_ready(tmp_path: Path) -> None:
    data = png_bytes(96)
    ends = chunk_ends(data)
    assert len(ends) >= 3  # IHDR, IDAT..., IEND
    cuts = sorted({1, 7, 8, 12, 20, *ends[:-1], *(e - 1 for e in ends), *range(0, len(data), 97)})
    path = tmp_path / NAME
    for cut in cuts:
        if cut >= len(data):
            continue
        path.write_bytes(data[:cut])
        with pytest.raises(NotReady):
            check_png(path)
    path.write_bytes(data)
    assert check_png(path) == len(data)
    path.write_bytes(data[: ends[-2]])  # all image data there, only IEND missing
    with pytest.raises(NotReady, match="chunk header incomplete"):
        check_png(path)


@pytest.mark.parametrize(("content", "reason"), [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"x" * 100, "not a PNG (bad signature)"),
    (b"GIF89a" + b"x" * 40, "not a PNG (bad signature)"),
    (b"hello, not an image\n", "not a PNG (bad signature)"),
])
def test_not_png_data_is_refused(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / NAME
    path.write_bytes(content)
    with pytest.raises(Rejected) as info:
        check_png(path)
    assert info.value.reason == reason


def test_corruption_and_trailing_bytes_are_refused(tmp_path: Path) -> None:
    data = bytearray(png_bytes(64))
    path = tmp_path / NAME
    path.write_bytes(bytes(data) + b"junk")
    with pytest.raises(Rejected, match="4 bytes after the IEND chunk"):
        check_png(path)
    data[chunk_ends(bytes(data))[1] - 6] ^= 0xFF  # inside the IDAT data: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(Rejected, match="CRC mismatch"):
        check_png(path)


def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / NAME
    os.mkfifo(path)
    with pytest.raises(Rejected, match="not a regular file"):
        check_png(path)


def test_settler_never_hands_on_a_png_pil_is_writing(tmp_path: Path) -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    path = tmp_path / NAME
    settler = SampleSettler(tmp_path, "pix", settle_interval_s=0.05)
    writer = write_slowly(path, rgb, pause_s=0.03)
    seen_sizes, settled = set(), []
    while writer.is_alive() or not settled:
        if path.exists():
            seen_sizes.add(path.stat().st_size)
            settler.offer(path)
        for result in settler.poll():
            assert isinstance(result, SettledSample), result
            settled.append(result)
        time.sleep(0.01)
    writer.join()
    assert len(seen_sizes) > 5  # it really was looked at while growing
    assert len(settled) == 1
    assert settled[0].size == path.stat().st_size  # handed on only once complete
    assert (settled[0].name.epoch, settled[0].name.idx, settled[0].name.seed) == (2, 1, 42)
    settler.offer(path)
    time.sleep(0.06)
    assert settler.poll() == []  # unchanged: not handed on twice


def test_settled_only_after_two_equal_looks(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(png_bytes(32))
    settler = SampleSettler(tmp_path, "pix", settle_interval_s=1.0)
    settler.offer(path, now=100.0)
    assert settler.poll(now=100.0) == []
    assert settler.next_deadline() == 101.0
    assert settler.poll(now=100.5) == []
    assert [type(r) for r in settler.poll(now=101.0)] == [SettledSample]


def test_bad_files_are_refused_once_each(tmp_path: Path) -> None:
    files = {
        "pix_e000001_00_20261201000000_1.png": png_bytes(32)[:50],  # never finished
        "pix_e000001_01_20261201000000_1.png": b"\xff\xd8\xff\xe0 jpeg data",
        "other_e000001_00_20261201000000_1.png": png_bytes(32),
        "pix_000200_00_20261201000000_1.png": png_bytes(32),
        "notes.txt": b"hello",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    settler = SampleSettler(tmp_path, "pix", settle_interval_s=1.0, stale_after_s=30.0)
    refusals: list[SampleRefusal] = []
    for now in (0.0, 1.0, 2.0, 31.0, 40.0, 80.0):
        for name in files:
            settler.offer(tmp_path / name, now=now)
        for result in settler.poll(now=now):
            assert isinstance(result, SampleRefusal)
            refusals.append(result)
    reasons = sorted(r.reason for r in refusals)
    assert len(reasons) == len(files)  # each once, though offered six times
    assert reasons == sorted([
        "'notes.txt' is not a PNG sample (kohya writes .png)",
        "'other_e000001_00_20261201000000_1.png' belongs to another run (output_name 'other', "
        "this run's is 'pix')",
        "'pix_000200_00_20261201000000_1.png' is a step-based sample (step 200), but epochs are "
        "expected: set sample_every_n_epochs, not sample_every_n_steps",
        "'pix_e000001_00_20261201000000_1.png': incomplete and unchanged for 31 s: IDAT chunk "
        "incomplete: 50 of " + reasons[3].rsplit(" of ", 1)[1],
        "'pix_e000001_01_20261201000000_1.png': not a PNG (bad signature)",
    ])


def test_a_refused_file_rewritten_is_looked_at_again(tmp_path: Path) -> None:
    path = tmp_path / NAME
    path.write_bytes(b"\x89PNG\r\n\x1a\nbroken!!")
    settler = SampleSettler(tmp_path, "pix", settle_interval_s=0.5)
    settler.offer(path, now=0.0)
    assert [type(r) for r in settler.poll(now=0.0)] == [SampleRefusal]
    path.write_bytes(png_bytes(32))
    os.utime(path, ns=(10**9, 10**9))
    settler.offer(path, now=1.0)
    settler.poll(now=1.0)
    assert [type(r) for r in settler.poll(now=1.5)] == [SettledSample]


def test_expire_incomplete_when_the_trainer_ended(tmp_path: Path) -> None:
    half = tmp_path / NAME
    half.write_bytes(png_bytes(32)[:60])
    whole = tmp_path / "pix_e000002_00_20261201053712_42.png"
    whole.write_bytes(png_bytes(32))
    settler = SampleSettler(tmp_path, "pix", settle_interval_s=0.5)
    for p in (half, whole):
        settler.offer(p, now=0.0)
    settler.poll(now=0.0)
    gone = settler.expire_incomplete(now=time.time() + 10, quiet_s=2.0)
    assert [r.path for r in gone] == [half]
    assert "incomplete when the trainer ended" in gone[0].reason
    assert settler.pending() == [whole]  # complete: left to settle as usual
