"""Image loading for the commands: one clear line for every kind of bad input.

Only PIL decodes; anything it does not recognise is "not an image". Images over
MAX_PIXELS are refused from the header alone, before any pixel is decoded (PIL's own
decompression-bomb warning is an error here too). Every mode becomes 8-bit RGB:
grayscale and palette images are converted, 16-bit and float ones rescaled, and images
with transparency are composited over white.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 64_000_000   # 8000 x 8000; a 512 px sample is 0.26 megapixels
MIN_CELL_PX = 2           # a logical pixel must cover at least 2 x 2 image pixels
COMPOSITE_OVER = (255, 255, 255)


class ImageLoadError(Exception):
    """An image that cannot be scored; the message is one line for the user."""


def _to_rgb(im: Image.Image) -> np.ndarray:
    mode = im.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        under = np.array(COMPOSITE_OVER, dtype=np.float32)
        composited: np.ndarray = np.clip(np.rint(rgba[..., :3] * alpha + under * (1 - alpha)), 0, 255)
        return composited.astype(np.uint8)
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        gray = np.asarray(im, dtype=np.float64)
        top = float(gray.max()) if gray.size else 0.0
        if mode == "F" and top <= 1.0:
            scale = 255.0                       # float images in 0-1
        elif top > 255 or mode.startswith("I;16"):
            scale = 255.0 / 65535.0             # 16-bit data
        else:
            scale = 1.0
        gray8 = np.clip(np.rint(gray * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray8[..., None], 3, axis=2)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def load_rgb(path: str | Path, cells: int = 1) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the image's first frame, or ImageLoadError; the image must hold
    `cells` x `cells` cells of at least MIN_CELL_PX pixels (finer grids cost memory and mean
    nothing: a 512 px sample holds at most 256)."""
    file = Path(path)
    if not file.exists():
        raise ImageLoadError("no such file")
    if file.is_dir():
        raise ImageLoadError("is a directory, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file) as im:
                width, height = im.size
                if width * height > MAX_PIXELS:
                    raise ImageLoadError(
                        f"image is {width}x{height} px, over the {MAX_PIXELS // 1_000_000}-megapixel "
                        "limit (decompression bomb?)")
                im.seek(0)
                im.load()
                rgb = _to_rgb(ImageOps.exif_transpose(im) or im)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"refused as a decompression bomb: {exc}") from None
    except PermissionError:
        raise ImageLoadError("permission denied (cannot read the file)") from None
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageLoadError(f"truncated or corrupt image: {reason}") from None
    height, width = rgb.shape[:2]
    if min(height, width) < cells * MIN_CELL_PX:
        most = min(height, width) // MIN_CELL_PX
        raise ImageLoadError(
            f"image is {width}x{height} px, smaller than the {cells}-cell grid at {MIN_CELL_PX} px a cell "
            + (f"(--cells {most} at most)" if most else "(too small to score)"))
    return np.ascontiguousarray(rgb)
