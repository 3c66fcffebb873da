"""Peak memory of `epochwatch score` at the largest `--cells` an image accepts (cells of at
least 2 px: 256 for a 512 px image), each in a fresh process.

    .venv/bin/python -m bench.bench_score_memory

`score_peak_rss_mb_cells256`: the degraded 512 px portrait of bench_score at --cells 256.
`noise_peak_rss_mb`: the worst case cheap enough to run here, a 192 px image of random
colours at --cells 96 (every cell its own colour; 1.1 GB before the palette merge was
chunked, 0.37 GB after). A 512 px noise image at --cells 256 peaks near 0.7 GB (it took over
20 GB before) but needs about 100 s, so it is not part of the bench.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from bench.bench_score import sample_png

_CHILD = ("import resource, sys\n"
          "from watcher.cli import main\n"
          "rc = main(sys.argv[1:])\n"
          "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, rc, file=sys.stderr)\n")


def peak_rss_mb(image: Path, cells: int) -> float:
    proc = subprocess.run([sys.executable, "-c", _CHILD, "score", str(image), "--cells", str(cells), "--json"],
                          capture_output=True, text=True, timeout=600, check=True)
    kb, rc = proc.stderr.strip().splitlines()[-1].split()
    if rc != "0":
        raise RuntimeError(f"score failed: {proc.stdout[:200]}")
    return round(int(kb) / 1024, 1)


def measure_score_memory(noise: bool = True) -> dict[str, Any]:
    """`noise=False` (bench/run_cpu.py --short): the 512 px sample only."""
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.png"
        sample.write_bytes(sample_png())
        figures = {"score_peak_rss_mb_cells256": peak_rss_mb(sample, 256)}
        if noise:
            noisy = Path(tmp) / "noise.png"
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (192, 192, 3), dtype=np.uint8)).save(noisy)
            figures["noise_peak_rss_mb"] = peak_rss_mb(noisy, 96)
        return figures


if __name__ == "__main__":
    print(json.dumps(measure_score_memory()))
