"""Colour accuracy: the prompt's colours against the recovered image's palette."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from bench.degrade import degrade, drift_colors, load_avatars, pad_sprite
from evaluators import score_image
from evaluators.accuracy import FULL_MISS_DELTA_E, MISS_CEILING
from evaluators.color import delta_e, hex_to_rgb, rgb_to_hex, to_lab

GREEN = (0, 255, 0)


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return pad_sprite(load_avatars()[0].rgb, 24, GREEN, 4, 8)


def _prompt_for(canvas: np.ndarray) -> str:
    colours = [rgb_to_hex(c) for c in np.unique(canvas.reshape(-1, 3), axis=0)]
    parts = [f"colour {i} ({c})" for i, c in enumerate(colours) if c != "#00ff00"]
    return ", ".join(parts) + ", solid green background (#00ff00)"


def test_exact_colours_score_near_100(truth: np.ndarray) -> None:
    image, _ = degrade(truth, np.random.default_rng(0))
    score = score_image(image, _prompt_for(truth))
    assert score.color_accuracy is not None and score.color_accuracy >= 95
    assert all(m.delta_e is not None and m.delta_e < 5 for m in score.per_color)
    assert score.per_color[0].role == "background"
    # the same colour: the palette entry and the background estimate may differ by a level
    matched, background = (np.array([hex_to_rgb(h)], dtype=np.uint8)
                           for h in (str(score.per_color[0].matched_hex), score.background_hex))
    assert float(delta_e(to_lab(matched), to_lab(background))[0]) < 1.0
    assert "off_palette" not in score.issues and "missing_colors" not in score.issues


def test_accuracy_falls_steadily_with_drift(truth: np.ndarray) -> None:
    prompt = _prompt_for(truth)
    drifts, accuracies = [], []
    for i, magnitude in enumerate([0, 5, 10, 15, 20, 25, 30, 40, 50, 60]):
        moved = drift_colors(truth, magnitude, np.random.default_rng(100 + i))
        drifts.append(float(np.mean(delta_e(to_lab(truth), to_lab(moved)))))
        image, _ = degrade(moved, np.random.default_rng(i))
        accuracies.append(score_image(image, prompt).color_accuracy)
    assert accuracies[0] > 90
    assert spearmanr(drifts, accuracies).statistic <= -0.8, list(zip(drifts, accuracies, strict=True))


def test_optimal_assignment_beats_greedy_nearest() -> None:
    """Prompt A sits between palette colours P and Q, prompt B is close to P only: the
    one-to-one optimum gives B -> P and A -> Q (greedy nearest would take P for A)."""
    p, q = (200, 40, 40), (150, 40, 90)
    canvas = np.zeros((24, 24, 3), dtype=np.uint8)
    canvas[:] = GREEN
    canvas[6:12, 6:18] = p
    canvas[12:18, 6:18] = q
    image = np.repeat(np.repeat(canvas, 20, axis=0), 20, axis=1)
    a, b = "#b4283c", "#c42a2a"           # a: between p and q; b: next to p
    score = score_image(image, f"shirt ({a}), scarf ({b}), green background (#00ff00)")
    matched = {m.hex: m.matched_hex for m in score.per_color}
    assert matched[b] == rgb_to_hex(p)
    assert matched[a] == rgb_to_hex(q)


def test_missing_and_off_palette_colours_are_flagged(truth: np.ndarray) -> None:
    image, _ = degrade(truth, np.random.default_rng(1))
    off = "#7a4a30"   # a brown about 14 from the sprite's nearest colour; pure blue is nowhere
    nearest = delta_e(to_lab(np.array(hex_to_rgb(off), dtype=np.uint8))[None],
                      to_lab(np.unique(truth.reshape(-1, 3), axis=0))).min()
    assert 12 < nearest < 18
    score = score_image(image, f"scarf ({off}), green background (#00ff00)", colour_match="exact")
    assert "off_palette" in score.issues and "missing_colors" not in score.issues
    score = score_image(image, "hair (#611c17), eyes (#0000ff), green background (#00ff00)")
    assert "missing_colors" in score.issues
    blue = next(m for m in score.per_color if m.hex == "#0000ff")
    assert blue.delta_e is not None and blue.delta_e > 20
    # issue 13: a missed colour scores at most MISS_CEILING
    assert blue.match is False
    assert blue.score == pytest.approx(MISS_CEILING * max(0.0, 1 - blue.delta_e / (1.5 * FULL_MISS_DELTA_E)))


def test_more_prompt_colours_than_palette_colours_still_scores() -> None:
    image = np.zeros((240, 240, 3), dtype=np.uint8)
    image[:] = GREEN
    image[100:140, 100:140] = (255, 0, 0)
    score = score_image(image, "red (#ff0000), darker red (#f00008), blue (#0000ff), bg background (#0f0)")
    assert score.color_accuracy is not None and 0 <= score.color_accuracy <= 100
    assert [m.matched_hex for m in score.per_color][1:3] == ["#ff0000", "#ff0000"]


def test_no_codes_means_no_accuracy(truth: np.ndarray) -> None:
    score = score_image(np.repeat(np.repeat(truth, 10, 0), 10, 1), "a pixel art portrait")
    assert score.color_accuracy is None and score.per_color == ()
    assert score.prompt_score is None
