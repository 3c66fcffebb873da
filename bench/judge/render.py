"""Pixels for a bench.judge recipe: the sprite recoloured as the recipe says, on its
background structure, drawn the way real 512 px outputs look (soft cell edges, blur, noise,
JPEG; uneven 19-26 px cells for SDXL-like items; a smooth upscale for broken ones)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from bench.degrade import Sprite, degrade, jpeg, load_avatars, smooth_upscale


@lru_cache(maxsize=1)
def sprites() -> list[Sprite]:
    return load_avatars()


def _hex(code: str) -> np.ndarray:
    return np.array([int(code[i: i + 2], 16) for i in (1, 3, 5)], dtype=np.uint8)


def _most_common(pixels: np.ndarray, exclude: list[np.ndarray]) -> np.ndarray | None:
    keep = np.ones(len(pixels), dtype=bool)
    for colour in exclude:
        keep &= ~(pixels == colour).all(1)
    if not keep.any():
        return None
    values, counts = np.unique(pixels[keep], axis=0, return_counts=True)
    return values[int(np.argmax(counts))]


def sprite_roles(sprite: Sprite) -> dict[str, np.ndarray | None]:
    """The sprite's own background, skin (face box) and hair (top rows) colours."""
    bg = _hex(sprite.background)
    skin = _most_common(sprite.rgb[5:11, 4:12].reshape(-1, 3), [bg])
    hair = _most_common(sprite.rgb[0:5].reshape(-1, 3), [bg] + ([skin] if skin is not None else []))
    return {"background": bg, "skin": skin, "hair": hair}


def _shade(colour: np.ndarray, t: np.ndarray) -> np.ndarray:
    """t in [0, 1]: 0 = the colour lightened by a third, 1 = darkened by a quarter."""
    c = colour.astype(float)
    light = c + (255 - c) * 0.33
    dark = c * 0.75
    return light + (dark - light) * t[..., None]


def logical_image(item: dict, n: int) -> np.ndarray:
    sprite = sprites()[item["sprite"]]
    roles = sprite_roles(sprite)
    rgb = sprite.rgb.copy()
    if item["hair"] and roles["hair"] is not None:
        rgb[(sprite.rgb == roles["hair"]).all(-1)] = _hex(item["hair"]["colour"])
    if item["skin"] and roles["skin"] is not None:
        rgb[(sprite.rgb == roles["skin"]).all(-1)] = _hex(item["skin"]["colour"])
    bg = item["background"]
    colour, second = _hex(bg["colour"]), _hex(bg["second"])
    canvas = np.zeros((n, n, 3), dtype=float)
    yy, xx = np.mgrid[0:n, 0:n]
    if bg["structure"] == "gradient":
        canvas[:] = _shade(colour, yy / max(n - 1, 1))
    elif bg["structure"] == "gradient2":   # "X to Y gradient": X at the top, Y at the bottom
        t = (yy / max(n - 1, 1))[..., None]
        canvas[:] = colour.astype(float) * (1 - t) + second.astype(float) * t
    elif bg["structure"] == "checkered":
        canvas[:] = np.where((((yy // 2) + (xx // 2)) % 2 == 0)[..., None], colour, second)
    elif bg["structure"] == "two_tone":
        canvas[:] = np.where((xx < n // 2)[..., None], second, colour)
    else:
        canvas[:] = colour
    x0, y0 = (n - 16) // 2, n - 16
    patch = canvas[y0:, x0: x0 + 16]
    own_bg = (sprite.rgb == roles["background"]).all(-1)
    patch[~own_bg] = rgb[~own_bg]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def render(item: dict) -> np.ndarray:
    rng = np.random.default_rng(item["seed"])
    grid = item["grid"]
    if not item["uneven"]:
        logical = logical_image(item, 24)
        if item["broken"]:
            return smooth_upscale(logical, rng)
        return degrade(logical, rng)[0]
    n = grid["cells"] + 1
    logical = logical_image(item, n)
    ys = np.repeat(np.arange(len(grid["widths_y"])), grid["widths_y"])[grid["offset_y"]: grid["offset_y"] + 512]
    xs = np.repeat(np.arange(len(grid["widths_x"])), grid["widths_x"])[grid["offset_x"]: grid["offset_x"] + 512]
    image = logical[np.minimum(ys, n - 1)[:, None], np.minimum(xs, n - 1)[None, :]].astype(float)
    image = gaussian_filter(image, sigma=(rng.uniform(0.4, 1.2), rng.uniform(0.4, 1.2), 0))
    image += rng.normal(0, rng.uniform(0, 3), image.shape)
    out = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    if item["broken"]:
        return smooth_upscale(logical, rng)
    return jpeg(out, int(rng.integers(75, 92)))
