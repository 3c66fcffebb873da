"""Background estimation and the background_match decision, on degraded real sprites."""

from __future__ import annotations

import numpy as np
import pytest

from bench.degrade import degrade, load_avatars, near_miss_colors, pad_sprite, replace_background
from evaluators import score_image
from evaluators.color import delta_e, hex_to_rgb, to_lab

GREEN = (0, 255, 0)
PROMPT = "pixel art portrait, brown hair (#603015), solid green background (#00ff00)"


@pytest.fixture(scope="module")
def greens() -> list:
    return [s for s in load_avatars() if s.background == "#00ff00"]


@pytest.fixture(scope="module")
def pinks() -> list:
    return [s for s in load_avatars() if s.background != "#00ff00"]


@pytest.mark.parametrize("x,y", [(4, 4), (4, 8), (0, 8), (8, 8), (-1, 8), (9, 8), (4, 9)],
                         ids=["centre", "bottom", "bottom_left", "bottom_right",
                              "cropped_left", "cropped_right", "cropped_bottom"])
def test_green_background_matches_wherever_the_sprite_sits(greens: list, x: int, y: int) -> None:
    rng = np.random.default_rng((x + 2) * 31 + y)
    for sprite in greens[x + 5::16]:
        image, _ = degrade(pad_sprite(sprite.rgb, 24, GREEN, x, y), rng)
        score = score_image(image, PROMPT)
        assert score.background_match is True, (sprite.name, score.background_coverage)
        assert score.background_delta_e is not None and score.background_delta_e < 5
        assert "wrong_background" not in score.issues


def test_background_hex_is_the_drawn_colour(pinks: list) -> None:
    rng = np.random.default_rng(2)
    for sprite in pinks[::8]:
        image, _ = degrade(pad_sprite(sprite.rgb, 24, hex_to_rgb(sprite.background), 4, 8), rng)
        score = score_image(image, f"solid background ({sprite.background})")
        found = to_lab(np.array(hex_to_rgb(score.background_hex), dtype=np.uint8))
        truth = to_lab(np.array(hex_to_rgb(sprite.background), dtype=np.uint8))
        assert float(delta_e(found, truth)) < 3
        assert score.background_match is True


def test_pink_and_purple_backgrounds_are_not_green(pinks: list) -> None:
    rng = np.random.default_rng(3)
    for sprite in pinks[::4]:
        image, _ = degrade(pad_sprite(sprite.rgb, 24, hex_to_rgb(sprite.background), 4, 8), rng)
        score = score_image(image, PROMPT)
        assert score.background_match is False
        assert score.background_delta_e is not None and score.background_delta_e > 30
        assert "wrong_background" in score.issues
        assert "uneven_background" not in score.issues


def test_near_miss_greens_and_teals_are_not_an_exact_match(greens: list) -> None:
    """colour_match="exact" (issue 13: the default "category" calls a dull green green)."""
    rng = np.random.default_rng(4)
    target = to_lab(np.array(GREEN, dtype=np.uint8))
    colours = near_miss_colors(GREEN, rng, 12, low=15.0, high=22.0)
    for sprite, colour in zip(greens[::5], colours, strict=False):
        assert float(delta_e(to_lab(np.array(colour, dtype=np.uint8)), target)) >= 15
        canvas = replace_background(pad_sprite(sprite.rgb, 24, GREEN, 4, 8), GREEN, colour)
        image, _ = degrade(canvas, rng)
        score = score_image(image, PROMPT, colour_match="exact")
        assert score.background_match is False, (colour, score.background_delta_e)
        assert score.background_delta_e is not None and score.background_delta_e >= 12


@pytest.mark.parametrize("region", ["left", "top", "diagonal"])
def test_half_green_half_pink_is_not_a_match(greens: list, region: str) -> None:
    rng = np.random.default_rng(len(region))
    for sprite in greens[1::9]:
        canvas = replace_background(pad_sprite(sprite.rgb, 24, GREEN, 4, 8), GREEN,
                                    (255, 102, 204), region)
        image, _ = degrade(canvas, rng)
        score = score_image(image, PROMPT)
        assert score.background_match is False, score.background_coverage
        assert "wrong_background" in score.issues


def test_green_above_pink_below_is_reported_as_uneven(pinks: list) -> None:
    """The estimated background is the right green, but only on the top half."""
    sprite = pinks[0]
    pink = hex_to_rgb(sprite.background)
    canvas = replace_background(pad_sprite(sprite.rgb, 24, pink, 4, 8), pink, GREEN, "top")
    score = score_image(degrade(canvas, np.random.default_rng(1))[0], PROMPT)
    assert score.background_delta_e is not None and score.background_delta_e < 5
    assert score.background_match is False
    assert {"wrong_background", "uneven_background"} <= set(score.issues)
    assert score.background_coverage is not None
    assert score.background_coverage["top"] == 1.0 and score.background_coverage["ring"] < 0.6


def test_prompt_without_background_gives_none(greens: list) -> None:
    image, _ = degrade(pad_sprite(greens[2].rgb, 24, GREEN, 4, 8), np.random.default_rng(5))
    score = score_image(image, "brown hair (#603015)")
    assert score.background_match is None and score.background_delta_e is None
    assert score.background_hex.startswith("#") and len(score.background_hex) == 7
    assert "wrong_background" not in score.issues
