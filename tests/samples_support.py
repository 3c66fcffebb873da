"""Helpers for the samples tests: PNG bytes as PIL writes them, and a slow in-place writer."""

from __future__ import annotations

import io
import struct
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def png_bytes(size: int = 64, color: tuple[int, int, int] = (0, 255, 0), seed: int = 0) -> bytes:
    """A real PNG from PIL, noisy enough to need several IDAT chunks at larger sizes."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((size, size, 3), dtype=np.uint8)
    rgb[:] = color
    rgb[size // 4: size // 2, size // 4: size // 2] = rng.integers(0, 256, (size // 4, size // 4, 3))
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def chunk_ends(data: bytes) -> list[int]:
    """Byte offsets where each PNG chunk ends (after the 8-byte signature)."""
    pos, ends = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos: pos + 4])
        pos += 12 + length
        ends.append(pos)
    return ends


class SlowFile:
    """A file object PIL saves into: every write lands on disk at once, then a pause, so a
    reader sees the PNG grow in place exactly in the pieces PIL writes."""

    def __init__(self, path: Path, pause_s: float) -> None:
        self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
        self.pause_s = pause_s
        self.writes = 0

    def write(self, data: bytes) -> int:
        n = self.fh.write(data)
        self.fh.flush()
        self.writes += 1
        time.sleep(self.pause_s)
        return n

    def tell(self) -> int:
        return self.fh.tell()

    def seek(self, *args: int) -> int:
        return self.fh.seek(*args)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def write_slowly(path: Path, rgb: np.ndarray, pause_s: float = 0.02) -> threading.Thread:
    """Start a thread that saves `rgb` as PNG at `path` through SlowFile; returns it."""
    def work() -> None:
        out = SlowFile(path, pause_s)
        try:
            # a small buffer makes PIL write the image data in many pieces, as it does for
            # big images with its default buffer
            Image.fromarray(rgb).save(out, format="PNG", compress_level=0)  # type: ignore[arg-type]
        finally:
            out.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread
