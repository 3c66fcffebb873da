"""Grid recovery on degraded real sprites (DiceBear avatars, Pyxel sprites)."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from bench.degrade import (
    DegradeParams,
    degrade,
    load_avatars,
    pad_sprite,
    placements,
    render,
)
from evaluators import recover_grid
from evaluators.color import delta_e, hex_to_rgb, to_lab


def _share_within(recovered: np.ndarray, truth: np.ndarray, limit: float = 5.0) -> float:
    return float((delta_e(to_lab(recovered), to_lab(truth)) < limit).mean())


@pytest.fixture(scope="module")
def avatars() -> list:
    return load_avatars()


def test_recovers_padded_avatars_at_24_cells(avatars: list) -> None:
    rng = np.random.default_rng(11)
    spots = placements(16, 24)
    shares = []
    for i, sprite in enumerate(avatars[::8]):        # 12 sprites, every placement used
        name, x, y = spots[i % len(spots)]
        truth = pad_sprite(sprite.rgb, 24, hex_to_rgb(sprite.background), x, y)
        image, _ = degrade(truth, rng)
        grid = recover_grid(image, 24)
        assert grid.cells.shape == (24, 24, 3) and grid.cells.dtype == np.uint8
        shares.append(_share_within(grid.cells, truth))
    assert np.mean(shares) >= 0.98, shares


def test_recovers_avatars_directly_at_16_cells(avatars: list) -> None:
    rng = np.random.default_rng(12)
    shares = []
    for sprite in avatars[3::12]:
        image, _ = degrade(sprite.rgb, rng)
        grid = recover_grid(image, 16)
        assert grid.cells.shape == (16, 16, 3)
        shares.append(_share_within(grid.cells, sprite.rgb))
    assert np.mean(shares) >= 0.98, shares


def test_pitch_and_offset_match_the_drawing(avatars: list) -> None:
    truth = pad_sprite(avatars[5].rgb, 24, (0, 255, 0), 4, 8)
    nominal = 512 / 24
    params = DegradeParams(
        pitch_x=nominal * 1.025, pitch_y=nominal * 0.975,
        origin_x=(512 - 24 * nominal * 1.025) / 2 + 0.3 * nominal,
        origin_y=(512 - 24 * nominal * 0.975) / 2 - 0.35 * nominal,
        line_jitter=1.0, block_jitter=1.0, blur_sigma=1.8, noise_sigma=4.0, jpeg_quality=72)
    image = render(truth, params, np.random.default_rng(3))
    grid = recover_grid(image, 24)
    assert grid.pitch_x == pytest.approx(params.pitch_x, abs=0.15)
    assert grid.pitch_y == pytest.approx(params.pitch_y, abs=0.15)
    assert grid.offset_x == pytest.approx(params.origin_x, abs=1.5)
    assert grid.offset_y == pytest.approx(params.origin_y, abs=1.5)
    assert _share_within(grid.cells, truth) == 1.0
    assert grid.to_dict() == {
        "cells_x": 24, "cells_y": 24, "pitch_x": round(grid.pitch_x, 4),
        "pitch_y": round(grid.pitch_y, 4), "offset_x": round(grid.offset_x, 3),
        "offset_y": round(grid.offset_y, 3)}


def test_non_square_image_gets_a_pitch_per_axis(avatars: list) -> None:
    truth = pad_sprite(avatars[20].rgb, 24, (0, 255, 0), 4, 8)
    big = np.repeat(np.repeat(truth, 24, axis=1), 16, axis=0)   # 576 x 384, pitches 24 and 16
    grid = recover_grid(big, 24)
    assert grid.pitch_x == pytest.approx(24.0, abs=0.05)
    assert grid.pitch_y == pytest.approx(16.0, abs=0.05)
    np.testing.assert_array_equal(grid.cells, truth)


@pytest.mark.parametrize("cells", [24, 16, 7])
def test_output_is_always_n_by_n(cells: int) -> None:
    photo = skimage.data.astronaut()
    assert recover_grid(photo, cells).cells.shape == (cells, cells, 3)
    flat = np.full((300, 200, 3), 40, dtype=np.uint8)
    grid = recover_grid(flat, cells)
    assert grid.cells.shape == (cells, cells, 3)
    assert np.all(grid.cells == 40)


def test_image_at_one_pixel_per_cell_is_returned_as_is(avatars: list) -> None:
    truth = pad_sprite(avatars[1].rgb, 24, (0, 255, 0), 4, 8)
    np.testing.assert_array_equal(recover_grid(truth, 24).cells, truth)


def test_bad_arrays_raise() -> None:
    with pytest.raises(ValueError, match="smaller than the 24-cell grid"):
        recover_grid(np.zeros((20, 30, 3), dtype=np.uint8), 24)
    with pytest.raises(ValueError, match="uint8"):
        recover_grid(np.zeros((64, 64, 3), dtype=np.float32), 24)
    with pytest.raises(ValueError, match="uint8"):
        recover_grid(np.zeros((64, 64), dtype=np.uint8), 24)
