"""`--cells` is bounded by what the image holds (cells of at least 2 px), and scoring at the
largest accepted value fits in bounded memory: run under RLIMIT_AS in a subprocess."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
LIMIT = 1024 * 2**20  # 1 GiB of address space: the unchunked palette merge needed 1.4 GiB here


def _score(image: Path, cells: int, limit: int | None = None) -> subprocess.CompletedProcess[str]:
    def cap() -> None:
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "watcher", "score", str(image), "--cells", str(cells), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env, preexec_fn=cap)


def test_cells_must_be_at_least_2_px(tmp_path: Path) -> None:
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 100, 3), dtype=np.uint8)).save(image)
    proc = _score(image, 51)
    assert proc.returncode == 1
    assert "image is 100x120 px, smaller than the 51-cell grid at 2 px a cell (--cells 50 at most)" in proc.stdout


def test_the_largest_accepted_cells_fits_in_bounded_memory(tmp_path: Path) -> None:
    # random colours: every cell a colour of its own, the palette merge's worst case
    image = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (192, 192, 3), dtype=np.uint8)).save(image)
    proc = _score(image, 96, limit=LIMIT)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-500:]
    assert '"unique_colors"' in proc.stdout and '"error"' not in proc.stdout
