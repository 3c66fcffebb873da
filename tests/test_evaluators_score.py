"""score_image's dict contract, unique colours, auto scores and issues; aggregate_epoch;
evaluators stay pure (no torch, no I/O)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.degrade import degrade, load_avatars, pad_sprite, smooth_upscale
from evaluators import aggregate_epoch, score_image
from evaluators.color import merge_palette, to_lab
from evaluators.faults import FAULT_POINTS
from evaluators.score import MISS_PENALTY, ImageScore

CONTRACT_KEYS = {"background_hex", "background_delta_e", "background_match", "color_accuracy",
                 "style_quality", "unique_colors", "grid", "issues", "visual_score", "style_score",
                 "prompt_score", "per_color"}
GRID_KEYS = {"cells_x", "cells_y", "pitch_x", "pitch_y", "offset_x", "offset_y"}
PROMPT = "brown hair (#603015), lips (#d29985), solid green background (#00ff00)"


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    truth = pad_sprite(load_avatars()[7].rgb, 24, (0, 255, 0), 4, 8)
    return truth, degrade(truth, np.random.default_rng(7))[0]


def test_to_dict_has_the_contract_keys_and_is_json(sample: tuple[np.ndarray, np.ndarray]) -> None:
    _, image = sample
    score = score_image(image, PROMPT)
    d = score.to_dict()
    assert CONTRACT_KEYS <= set(d)
    assert set(d["grid"]) == GRID_KEYS and d["grid"]["cells_x"] == d["grid"]["cells_y"] == 24
    assert json.loads(json.dumps(d)) == d
    assert d["background_hex"].startswith("#") and len(d["background_hex"]) == 7
    assert isinstance(d["background_match"], bool) and isinstance(d["unique_colors"], int)
    for key in ("visual_score", "style_score", "prompt_score"):
        assert 1.0 <= d[key] <= 10.0
    assert 0 <= d["color_accuracy"] <= 100 and 0 <= d["style_quality"] <= 100
    # issue 13 added keys (category, match, ...); the original ones stay
    assert {"hex", "role", "phrase", "matched_hex", "delta_e", "category", "seen_category",
            "category_match", "match"} <= set(d["per_color"][0])
    assert score.cells.shape == (24, 24, 3) and score.cells.dtype == np.uint8


def test_unique_colours_match_the_sprite(sample: tuple[np.ndarray, np.ndarray]) -> None:
    truth, image = sample
    expected = len(merge_palette(truth, to_lab(truth)))
    assert score_image(image, PROMPT).unique_colors == expected


def test_auto_scores_follow_the_documented_formulas(sample: tuple[np.ndarray, np.ndarray]) -> None:
    _, image = sample
    s = score_image(image, PROMPT)
    assert s.style_score == pytest.approx(1 + 9 * s.style_quality / 100)
    assert s.prompt_score == pytest.approx(1 + 9 * s.color_accuracy / 100)
    wrong = score_image(image, "brown hair (#603015), lips (#d29985), pink background (#ff66cc)")
    assert wrong.background_match is False
    assert wrong.prompt_score == pytest.approx(1 + 9 * wrong.color_accuracy / 100)
    assert wrong.prompt_score < s.prompt_score
    # issue 13: a missed background costs visual its MISS_PENALTY share
    assert wrong.visual_score == pytest.approx(1 + (s.visual_score - 1) * (1 - MISS_PENALTY["background"]))
    assert wrong.overall_score < s.overall_score


def _before(s: ImageScore) -> float:
    """The overall before issue 25's fault points: the mean of the three scores."""
    parts = [v for v in (s.visual_score, s.style_score, s.prompt_score) if v is not None]
    return sum(parts) / len(parts)


def test_a_wrong_background_or_a_broken_image_loses_its_fault_points(
        sample: tuple[np.ndarray, np.ndarray]) -> None:
    truth, image = sample
    right = score_image(image, PROMPT)
    wrong = score_image(image, "brown hair (#603015), lips (#d29985), pink background (#ff66cc)")
    broken = score_image(smooth_upscale(truth, np.random.default_rng(0)), PROMPT)
    assert not {"wrong_background", "not_pixel_art"} & set(right.issues)
    assert right.overall_score == pytest.approx(_before(right))  # a clean image keeps its score
    for s, fault in ((wrong, "wrong_background"), (broken, "not_pixel_art")):
        assert fault in s.issues and FAULT_POINTS[fault] > 0
        expected = _before(s) - sum(FAULT_POINTS.get(issue, 0.0) for issue in s.issues)
        assert expected > 1  # not floored: the whole penalty shows
        assert s.overall_score == pytest.approx(expected)
        assert s.overall_score <= _before(s) - FAULT_POINTS[fault] + 1e-9
    # the epoch aggregate takes the same points, by the share of images showing the fault
    epoch = aggregate_epoch([right.to_dict(), wrong.to_dict()])
    mean_of_three = (epoch["visual_score"] + epoch["style_score"] + epoch["prompt_score"]) / 3
    shares = sum(FAULT_POINTS.get(issue, 0.0) for issue in (*right.issues, *wrong.issues)) / 2
    assert epoch["overall_score"] == pytest.approx(mean_of_three - shares, abs=1e-3)


def test_blank_image_is_flagged() -> None:
    blank = np.full((512, 512, 3), (0, 255, 0), dtype=np.uint8)
    s = score_image(blank, "green background (#00ff00)")
    assert s.background_match is True
    assert {"empty_image", "too_few_colors"} <= set(s.issues)
    assert s.unique_colors == 1 and s.visual_score < 5


def test_aggregate_epoch_means_rates_and_counts() -> None:
    def item(match: bool | None, acc: float | None, style: float, v: float, st: float,
             p: float | None, uniq: int, bg: str, issues: list[str]) -> dict:
        return {"background_match": match, "color_accuracy": acc, "style_quality": style,
                "visual_score": v, "style_score": st, "prompt_score": p, "unique_colors": uniq,
                "background_hex": bg, "issues": issues}

    scores = [
        item(True, 90.0, 80.0, 8.0, 8.2, 9.1, 10, "#00ff00", []),
        item(False, 40.0, 60.0, 6.0, 6.4, 3.0, 14, "#ff66cc", ["wrong_background"]),
        item(True, 80.0, 70.0, 7.0, 7.3, 8.2, 11, "#00ff00", ["off_palette", "wrong_background"]),
        item(None, None, 50.0, 5.0, 5.5, None, 40, "#00ff00", ["too_many_colors"]),
        {"image": "broken.png", "error": "not an image"},
    ]
    agg = aggregate_epoch(scores)
    assert agg["n_images"] == 4
    assert agg["background_match_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert agg["color_accuracy"] == pytest.approx(70.0)
    assert agg["style_quality"] == pytest.approx(65.0)
    assert agg["prompt_score"] == pytest.approx((9.1 + 3.0 + 8.2) / 3, abs=1e-4)
    # the mean of the three, less each fault's points times the share of images showing it
    points = FAULT_POINTS["wrong_background"] * 2 / 4 + FAULT_POINTS["off_palette"] * 1 / 4
    assert agg["overall_score"] == pytest.approx(
        (agg["visual_score"] + agg["style_score"] + agg["prompt_score"]) / 3 - points, abs=1e-3)
    assert agg["unique_colors"] == 12.5
    assert agg["background_hex"] == "#00ff00"
    assert agg["issues"] == ["off_palette", "too_many_colors", "wrong_background"]
    assert agg["issue_counts"] == {"off_palette": 1, "too_many_colors": 1, "wrong_background": 2}


def test_aggregate_of_nothing_and_of_real_scores(sample: tuple[np.ndarray, np.ndarray]) -> None:
    empty = aggregate_epoch([])
    assert empty["n_images"] == 0 and empty["background_match_rate"] is None
    assert empty["color_accuracy"] is None and empty["issues"] == []
    _, image = sample
    real = aggregate_epoch([score_image(image, PROMPT).to_dict()] * 2)
    assert real["background_match_rate"] == 1.0 and real["n_images"] == 2


def test_scoring_imports_no_torch_and_touches_no_files(tmp_path: Path) -> None:
    code = (
        "import sys, builtins, numpy as np\n"
        "import evaluators, watcher.commands.score, watcher.commands.downscale\n"
        "img = np.zeros((96, 96, 3), np.uint8); img[40:60, 40:60] = 200\n"
        # A first call loads what the evaluators load once (scipy/skimage on first use, the
        # colour-name table); scoring itself, the second call, must touch no file.
        "evaluators.score_image(img, 'red hair (#ff0000), green background (#0f0)')\n"
        "real_open = builtins.open\n"
        "def no_open(*a, **k): raise AssertionError(f'evaluators opened {a[0]!r}')\n"
        "builtins.open = no_open\n"
        "img = np.zeros((96, 96, 3), np.uint8); img[40:60, 40:60] = 200\n"
        "evaluators.score_image(img, 'red hair (#ff0000), green background (#0f0)')\n"
        "builtins.open = real_open\n"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
                            timeout=120)
    assert result.returncode == 0, result.stderr


@settings(max_examples=40, deadline=None)
@given(
    cells=st.integers(1, 32),
    extra_h=st.integers(0, 150),
    extra_w=st.integers(0, 150),
    kind=st.sampled_from(["noise", "blocks", "flat"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_image_gets_a_complete_score(cells: int, extra_h: int, extra_w: int, kind: str,
                                         seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = cells + extra_h, cells + extra_w
    if kind == "noise":
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    elif kind == "blocks":
        small = rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8)
        ys = np.minimum(np.arange(h) * cells // h, cells - 1)
        xs = np.minimum(np.arange(w) * cells // w, cells - 1)
        image = small[ys[:, None], xs[None, :]]
    else:
        image = np.full((h, w, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    d = score_image(image, "red hair (#f00), teal background (#008080)", cells=cells).to_dict()
    assert json.loads(json.dumps(d)) == d                 # no NaN, no numpy types
    # issue 13: cells_x / cells_y are measured; a size other than --cells is an issue
    size = (d["grid"]["cells_x"], d["grid"]["cells_y"])
    assert min(size) >= 1 and ("grid_size_mismatch" in d["issues"]) == (size != (cells, cells))
    if kind == "blocks" and cells >= 8:
        assert size == (cells, cells)
    assert 0 <= d["style_quality"] <= 100 and 0 <= d["color_accuracy"] <= 100
    assert 1 <= d["visual_score"] <= 10 and 1 <= d["style_score"] <= 10 and 1 <= d["prompt_score"] <= 10
    assert 1 <= d["unique_colors"] <= size[0] * size[1]
    assert isinstance(d["background_match"], bool)


def test_speed_benchmark_reports_its_ratio() -> None:
    """The benchmark's bookkeeping only; speed itself is reported by bench/, not asserted."""
    from bench.bench_score import measure_score_vs_floor

    result = measure_score_vs_floor(repeats=2)
    assert result["repeats"] == 2
    assert result["floor_ms"] > 0 and result["score_ms"] > 0
    assert result["score_vs_floor"] == pytest.approx(result["score_ms"] / result["floor_ms"], rel=0.01)
