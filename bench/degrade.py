"""Degraded "fake pixel art" built from real sprites, the way generated 512 px images look.

A logical N x N sprite is drawn at a non-integer pitch (512/N x U(0.97, 1.03) per axis),
its grid offset from centred by up to half a cell, every grid line and every block
jittered by a pixel or two, then blurred (gaussian sigma up to 2 px), noised and
JPEG-compressed (quality 70-90). Also: sprites padded onto N x N canvases, smooth /
blurred upscales and photographs (the negatives for the style score).
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pixelart"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon",
          "immunohistochemistry", "hubble_deep_field", "retina", "cell", "grass", "gravel", "brick")


@dataclass(frozen=True)
class DegradeParams:
    pitch_x: float
    pitch_y: float
    origin_x: float       # leading edge of cell 0 (px)
    origin_y: float
    line_jitter: float    # max shift of a whole grid line (px)
    block_jitter: float   # max extra shift of one block's edges (px)
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Sprite:
    name: str
    rgb: np.ndarray       # (n, n, 3) uint8
    background: str       # "#rrggbb"


def load_avatars(folder: Path = FIXTURES / "avatars") -> list[Sprite]:
    """The 96 DiceBear 16x16 portraits with their background hex (avatars.json)."""
    meta = json.loads((folder / "avatars.json").read_text())
    sprites = []
    for entry in meta:
        with Image.open(folder / entry["image"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        sprites.append(Sprite(entry["image"], rgb, entry["background"].lower()))
    return sprites


def pad_sprite(sprite: np.ndarray, cells: int, background: tuple[int, int, int],
               x: int, y: int) -> np.ndarray:
    """The sprite pasted at (x, y) on a cells x cells canvas of `background` (cropped
    where it sticks out)."""
    canvas = np.empty((cells, cells, 3), dtype=np.uint8)
    canvas[:] = background
    h, w = sprite.shape[:2]
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, cells), min(y + h, cells)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = sprite[y0 - y: y1 - y, x0 - x: x1 - x]
    return canvas


def placements(sprite_size: int, cells: int) -> list[tuple[str, int, int]]:
    """Where a sprite goes on the canvas: centred, touching the bottom, the bottom corners,
    and cropped by one cell so that it really touches a side."""
    free = cells - sprite_size
    mid = free // 2
    return [
        ("centre", mid, mid),
        ("bottom", mid, free),
        ("bottom_left", 0, free),
        ("bottom_right", free, free),
        ("cropped_left", -1, free),
        ("cropped_right", free + 1, free),
        ("cropped_bottom", mid, free + 1),
    ]


def random_params(rng: np.random.Generator, cells: int, size: int = 512) -> DegradeParams:
    nominal = size / cells
    pitch_x = nominal * rng.uniform(0.97, 1.03)
    pitch_y = nominal * rng.uniform(0.97, 1.03)
    return DegradeParams(
        pitch_x=pitch_x, pitch_y=pitch_y,
        origin_x=(size - cells * pitch_x) / 2 + rng.uniform(-0.5, 0.5) * pitch_x,
        origin_y=(size - cells * pitch_y) / 2 + rng.uniform(-0.5, 0.5) * pitch_y,
        line_jitter=0.05 * nominal, block_jitter=0.05 * nominal,
        blur_sigma=float(rng.uniform(0.0, 2.0)),
        noise_sigma=float(rng.uniform(0.0, 5.0)),
        jpeg_quality=int(rng.integers(70, 91)),
    )


def _cell_table(coords: np.ndarray, origin: float, pitch: float, cells: int,
                line_shift: np.ndarray, block_shift: np.ndarray) -> np.ndarray:
    """(cells, len(coords)): cell index of every coordinate, for each block of the other axis."""
    lines = origin + np.arange(1, cells) * pitch + line_shift           # interior lines
    per_block = lines[None, :] + block_shift                             # (cells, cells-1)
    return np.stack([np.searchsorted(row, coords, side="right") for row in per_block])


def render(cells_rgb: np.ndarray, params: DegradeParams, rng: np.random.Generator,
           size: int = 512) -> np.ndarray:
    """Draw, blur, noise and JPEG-compress a logical image (see module docstring)."""
    n = cells_rgb.shape[0]
    centres = np.arange(size) + 0.5
    pos = np.arange(size)
    jit = rng.uniform(-1, 1, size=(4, n, n - 1))
    line_x = params.line_jitter * jit[0, 0]
    line_y = params.line_jitter * jit[1, 0]
    # Rows on plain lines first, then columns per block row, then rows per block column.
    rows0 = np.searchsorted(params.origin_y + np.arange(1, n) * params.pitch_y + line_y,
                            centres, side="right")
    table_x = _cell_table(centres, params.origin_x, params.pitch_x, n, line_x,
                          params.block_jitter * jit[2])
    ix = table_x[rows0[:, None], pos[None, :]]                           # (rows, cols)
    table_y = _cell_table(centres, params.origin_y, params.pitch_y, n, line_y,
                          params.block_jitter * jit[3])
    iy = table_y[ix, pos[:, None]]
    image = cells_rgb[iy, ix].astype(np.float32)
    if params.blur_sigma > 0:
        image = gaussian_filter(image, sigma=(params.blur_sigma, params.blur_sigma, 0))
    if params.noise_sigma > 0:
        image += rng.normal(0.0, params.noise_sigma, size=image.shape).astype(np.float32)
    return jpeg(np.clip(np.rint(image), 0, 255).astype(np.uint8), params.jpeg_quality)


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def degrade(cells_rgb: np.ndarray, rng: np.random.Generator,
            size: int = 512) -> tuple[np.ndarray, DegradeParams]:
    params = random_params(rng, cells_rgb.shape[0], size)
    return render(cells_rgb, params, rng, size), params


def smooth_upscale(cells_rgb: np.ndarray, rng: np.random.Generator, size: int = 512) -> np.ndarray:
    """A negative: the sprite enlarged smoothly (bilinear / bicubic / lanczos) or
    nearest-neighbour then heavily blurred; no hard block edges left."""
    kind = int(rng.integers(0, 4))
    im = Image.fromarray(cells_rgb)
    if kind < 3:
        method = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)[kind]
        out = np.asarray(im.resize((size, size), method), dtype=np.float32)
    else:
        sharp = np.asarray(im.resize((size, size), Image.NEAREST), dtype=np.float32)
        sigma = rng.uniform(0.25, 0.45) * size / cells_rgb.shape[0]
        out = gaussian_filter(sharp, sigma=(sigma, sigma, 0))
    out = out + rng.normal(0.0, rng.uniform(0.0, 3.0), size=out.shape)
    return jpeg(np.clip(np.rint(out), 0, 255).astype(np.uint8), int(rng.integers(75, 95)))


def photographs(rng: np.random.Generator, per_photo: int = 3, size: int = 512) -> list[tuple[str, np.ndarray]]:
    """Negatives: photographs shipped with scikit-image, random square crops at size x size."""
    import skimage.data

    out = []
    for name in PHOTOS:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = np.asarray(img[..., :3], dtype=np.uint8)
        h, w = img.shape[:2]
        for i in range(per_photo):
            side = int(min(h, w) * (1.0 if i == 0 else rng.uniform(0.5, 0.9)))
            y = int(rng.integers(0, h - side + 1))
            x = int(rng.integers(0, w - side + 1))
            crop = Image.fromarray(img[y: y + side, x: x + side]).resize((size, size), Image.BICUBIC)
            out.append((f"{name}-{i}", jpeg(np.asarray(crop), int(rng.integers(75, 95)))))
    return out


def replace_background(canvas: np.ndarray, background: tuple[int, int, int],
                       new: tuple[int, int, int], region: str = "all") -> np.ndarray:
    """The canvas with its background pixels recoloured, everywhere or in one half
    (`left`, `top`, `diagonal`): the "half green, half pink" case."""
    n = canvas.shape[0]
    rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    where = {
        "all": np.ones((n, n), dtype=bool),
        "left": cols < n // 2,
        "top": rows < n // 2,
        "diagonal": rows + cols < n - 1,
    }[region]
    is_bg = np.all(canvas == np.array(background, dtype=np.uint8), axis=-1)
    out = canvas.copy()
    out[is_bg & where] = new
    return out


def near_miss_colors(target: tuple[int, int, int], rng: np.random.Generator, count: int,
                     low: float = 15.0, high: float = 30.0) -> list[tuple[int, int, int]]:
    """Greens and teals at a CIEDE2000 distance in [low, high] from `target`."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    target_lab = rgb2lab(np.array(target, dtype=np.uint8)[None, None, :])[0, 0]
    found: list[tuple[int, int, int]] = []
    while len(found) < count:
        cand = np.stack([rng.integers(0, 140, 256), rng.integers(110, 256, 256),
                         rng.integers(0, 230, 256)], axis=1).astype(np.uint8)
        green = (cand[:, 1].astype(int) > cand[:, 0] + 40) & (cand[:, 1].astype(int) >= cand[:, 2] - 10)
        d = deltaE_ciede2000(rgb2lab(cand[:, None, :])[:, 0, :], target_lab[None, :])
        ok = green & (d >= low) & (d <= high)
        found.extend(tuple(int(v) for v in c) for c in cand[ok])
    return found[:count]


def drift_colors(cells_rgb: np.ndarray, magnitude: float, rng: np.random.Generator) -> np.ndarray:
    """Every distinct colour moved by `magnitude` (CIELAB units) in its own random direction."""
    from skimage.color import lab2rgb, rgb2lab

    flat = cells_rgb.reshape(-1, 3)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    lab = rgb2lab(uniq[:, None, :].astype(np.uint8))[:, 0, :]
    direction = rng.normal(size=lab.shape)
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    moved = lab + magnitude * direction
    moved[:, 0] = np.clip(moved[:, 0], 0, 100)
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, as intended
        warnings.simplefilter("ignore")
        rgb = np.clip(np.rint(lab2rgb(moved[:, None, :])[:, 0, :] * 255), 0, 255).astype(np.uint8)
    return rgb[inverse.reshape(-1)].reshape(cells_rgb.shape)
