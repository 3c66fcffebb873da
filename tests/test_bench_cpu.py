"""`make bench` in its short form: every CPU measurement runs once, so the benchmark cannot rot
unnoticed (a KeyError in bench/run_cpu.py once went unseen because no test ran it)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from bench.run_cpu import KEYS

REPO = Path(__file__).resolve().parents[1]


def test_short_bench_prints_every_figure_as_its_last_line() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.run_cpu", "--short"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["short"] is True
    for key in KEYS:
        assert isinstance(figures[key], (int, float)), key
    # rss growth needs more than a few epochs to fit a slope; every other figure is measured
    measured = [k for k in KEYS if k != "rss_growth_mb_per_epoch"]
    assert all(math.isfinite(figures[k]) and figures[k] >= 0 for k in measured), figures
    assert figures["replay_images_per_s"] > 0 and figures["score_peak_rss_mb_cells256"] > 0
