"""Style quality: real pixel art high, photographs and smooth upscales low."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from PIL import Image
from scipy.ndimage import gaussian_filter

from bench.degrade import FIXTURES, degrade, load_avatars, pad_sprite, smooth_upscale
from evaluators import score_image
from evaluators.color import hex_to_rgb

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket"]


@pytest.fixture(scope="module")
def canvases() -> list[np.ndarray]:
    return [pad_sprite(s.rgb, 24, hex_to_rgb(s.background), 4, 8) for s in load_avatars()[::12]]


def _photo(name: str) -> np.ndarray:
    img = np.asarray(getattr(skimage.data, name)())
    side = min(img.shape[:2])
    crop = Image.fromarray(img[:side, :side, :3]).resize((512, 512), Image.BICUBIC)
    return np.asarray(crop)


def test_degraded_pixel_art_scores_high(canvases: list[np.ndarray]) -> None:
    rng = np.random.default_rng(0)
    scores = [score_image(degrade(c, rng)[0], "").style_quality for c in canvases]
    assert min(scores) >= 60 and float(np.median(scores)) >= 90, scores


def test_clean_pixel_art_is_near_100(canvases: list[np.ndarray]) -> None:
    clean = np.repeat(np.repeat(canvases[0], 21, axis=0), 21, axis=1)   # 504 px, integer pitch
    score = score_image(clean, "")
    assert score.style_quality >= 95
    assert "not_pixel_art" not in score.issues


def test_pyxel_sprite_at_16_cells_scores_high() -> None:
    with Image.open(FIXTURES / "pyxel" / "cat_16x16.png") as im:
        cat = np.asarray(im.convert("RGB"))
    image, _ = degrade(cat, np.random.default_rng(4))
    assert score_image(image, "", cells=16).style_quality >= 80


@pytest.mark.parametrize("name", PHOTOS)
def test_photographs_score_near_zero(name: str) -> None:
    score = score_image(_photo(name), "")
    assert score.style_quality <= 15
    assert "not_pixel_art" in score.issues


def test_smooth_and_blurred_upscales_score_low(canvases: list[np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    scores = [score_image(smooth_upscale(c, rng), "").style_quality for c in canvases]
    blurred = gaussian_filter(np.repeat(np.repeat(canvases[1], 21, 0), 21, 1).astype(float),
                              sigma=(7, 7, 0))
    scores.append(score_image(np.clip(blurred, 0, 255).astype(np.uint8), "").style_quality)
    assert max(scores) <= 25, scores


def test_style_separates_pixel_art_from_the_rest(canvases: list[np.ndarray]) -> None:
    rng = np.random.default_rng(2)
    positives = [score_image(degrade(c, rng)[0], "").style_quality for c in canvases]
    negatives = [score_image(smooth_upscale(c, rng), "").style_quality for c in canvases]
    negatives += [score_image(_photo(n), "").style_quality for n in PHOTOS]
    pairs = [(p > n) + 0.5 * (p == n) for p in positives for n in negatives]
    assert float(np.mean(pairs)) >= 0.98


def test_one_pixel_per_cell_still_gets_a_style(canvases: list[np.ndarray]) -> None:
    score = score_image(canvases[0], "", cells=24)
    assert score.style.grid is None and score.style.sharpness is None
    assert 90 <= score.style_quality <= 100
    thumb = np.asarray(Image.fromarray(skimage.data.astronaut()).resize((24, 24), Image.BICUBIC))
    assert score_image(thumb, "", cells=24).style_quality < score.style_quality - 30
