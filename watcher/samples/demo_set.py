"""The demo's 10-epoch replay folder: stand-in images that tell a known story.

Not the output of any model. Each "sample" is a real pixel-art portrait (DiceBear "Pixel
Art", CC0, from tests/fixtures/pixelart/avatars/) drawn at 512 px the way a generated image
looks (a ~21 px grid, blur, noise, colours drifting), degraded less as the epochs go on:
- epochs 1-2: the background is pink, not the prompt's green; blurry and noisy;
- epoch 3: the background turns green; quality keeps rising;
- epoch 6: three of four backgrounds fall back to pink (the oscillation alert);
- epochs 7-10: clean enough for the production-candidate mark.
`epochwatch demo --replay` replays it; the tests build smaller variants of the same story.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from watcher.samples.names import sample_name

AVATARS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "pixelart" / "avatars"
GREEN = (0x00, 0xFF, 0x00)
PINK = (0xFF, 0x66, 0xCC)

# (sprite, prompt): each prompt names colours the sprite really has, by hex code.
DEMO_SUBJECTS: tuple[tuple[str, str], ...] = (
    ("avatar_000.png", "pixel art portrait, dark red hair (#611c17), red shirt (#ae0001), "
                       "solid green background (#00ff00)"),
    ("avatar_002.png", "pixel art portrait, brown hair (#603015), red shirt (#ae0001), "
                       "solid green background (#00ff00)"),
    ("avatar_015.png", "pixel art portrait, red hair (#bd1700), solid green background (#00ff00)"),
    ("avatar_019.png", "pixel art portrait, brown hair (#612616), navy blue shirt (#03396c), "
                       "solid green background (#00ff00)"),
)  # clear colours, named by their hex codes, so any colour judge reads them the same way


@dataclass(frozen=True)
class EpochLook:
    """How one epoch's stand-in samples are drawn."""

    wrong_background: int  # how many of the images get PINK instead of green
    blur: float  # gaussian sigma, px
    noise: float  # gaussian noise sigma, 0-255
    drift: float  # 0-1: how far every colour is pulled toward grey


DEMO_STORY: tuple[EpochLook, ...] = (
    EpochLook(4, 6.0, 14.0, 0.35),
    EpochLook(4, 4.5, 11.0, 0.25),
    EpochLook(0, 3.5, 8.0, 0.16),  # epoch 3: green
    EpochLook(0, 3.2, 8.0, 0.14),
    EpochLook(0, 3.0, 8.0, 0.12),
    EpochLook(3, 3.0, 7.0, 0.12),  # epoch 6: the background regresses
    EpochLook(0, 2.6, 6.0, 0.08),
    EpochLook(0, 2.4, 5.0, 0.06),
    EpochLook(0, 1.0, 3.0, 0.03),
    EpochLook(0, 0.6, 2.0, 0.0),
)

README = """\
STAND-IN IMAGES, NOT MODEL OUTPUT.

This folder was written by epochwatch (watcher/samples/demo_set.py) for `epochwatch demo
--replay`. No model drew these images: each is a pixel-art portrait from DiceBear's "Pixel
Art" style (CC0 1.0, design by DiceBear; rendering code MIT), drawn at {size} px and degraded
on purpose so that the run tells a known story: a pink background at epochs 1-2, green from
epoch 3, a regression at epoch 6, and clean images at epochs 7-10.
"""


def _sprite(name: str, cells: int) -> np.ndarray:
    """The 16x16 sprite centred on a cells x cells canvas of its own green background."""
    with Image.open(AVATARS / name) as im:
        sprite = np.asarray(im.convert("RGB"))
    canvas = np.empty((cells, cells, 3), dtype=np.uint8)
    canvas[:] = GREEN
    h, w = sprite.shape[:2]
    y, x = cells - h, (cells - w) // 2  # standing on the bottom edge, as a portrait does
    canvas[y:, x: x + w] = sprite
    return canvas


def draw(cells_rgb: np.ndarray, look: EpochLook, wrong_bg: bool, rng: np.random.Generator,
         size: int) -> np.ndarray:
    """One stand-in sample: recolour, drift, upscale on a ~size/cells px grid, blur, noise."""
    cells = cells_rgb.copy()
    if wrong_bg:
        cells[(cells == GREEN).all(axis=-1)] = PINK
    grey = cells.astype(np.float32).mean(axis=-1, keepdims=True)
    art = cells.astype(np.float32) * (1 - look.drift) + grey * look.drift
    n = cells.shape[0]
    pitch = size / n * rng.uniform(0.985, 1.015)
    offset = rng.uniform(-0.3, 0.3) * pitch
    index = np.clip(((np.arange(size) + 0.5 - offset - (size - n * pitch) / 2) // pitch)
                    .astype(int), 0, n - 1)
    image = art[index[:, None], index[None, :]]
    if look.blur > 0:
        image = gaussian_filter(image, sigma=(look.blur, look.blur, 0))
    if look.noise > 0:
        image = image + rng.normal(0.0, look.noise, size=image.shape)
    pixels: np.ndarray = np.clip(np.rint(image), 0, 255)
    return pixels.astype(np.uint8)


def write_epoch(out: Path | str, epoch: int, look: EpochLook, *,
                subjects: tuple[tuple[str, str], ...] = DEMO_SUBJECTS, size: int = 512,
                cells: int = 24, layout: str = "folders", output_name: str = "demo_lora",
                seed: int = 0) -> list[Path]:
    """One epoch's stand-in samples: `out/epoch_NN/II.png`, or with layout="kohya" the names
    sd-scripts gives them, written in place by PIL as sd-scripts does."""
    rng = np.random.default_rng([seed, epoch])
    folder = Path(out) / f"epoch_{epoch:02d}" if layout == "folders" else Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for idx, (sprite_name, _) in enumerate(subjects):
        rgb = draw(_sprite(sprite_name, cells), look, idx < look.wrong_background, rng, size)
        name = (f"{idx:02d}.png" if layout == "folders" else
                sample_name(output_name, epoch, idx, time.strftime("%Y%m%d%H%M%S"), 1))
        Image.fromarray(rgb).save(folder / name)
        written.append(folder / name)
    return written


def build(out: Path | str, *, story: tuple[EpochLook, ...] = DEMO_STORY,
          subjects: tuple[tuple[str, str], ...] = DEMO_SUBJECTS, size: int = 512,
          layout: str = "folders", output_name: str = "demo_lora", seed: int = 0) -> Path:
    """Write the replay folder `out` (epoch_NN/ folders, or kohya-named files with
    layout="kohya"), its README.txt and, beside it, `<out>.prompts.txt`. Returns `out`."""
    out = Path(out)
    for epoch, look in enumerate(story, 1):
        write_epoch(out, epoch, look, subjects=subjects, size=size, layout=layout,
                    output_name=output_name, seed=seed)
    (out / "README.txt").write_text(README.format(size=size))
    write_prompts(prompts_file(out), subjects)
    return out


def write_prompts(path: Path, subjects: tuple[tuple[str, str], ...] = DEMO_SUBJECTS) -> Path:
    """The kohya prompt file of the story: one line per subject, seed 1 (as the names say)."""
    path.write_text("".join(f"{prompt} --d 1\n" for _, prompt in subjects))
    return path


def prompts_file(out: Path | str) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".prompts.txt")
