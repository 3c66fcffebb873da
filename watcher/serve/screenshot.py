"""Screenshots of a run page and an epoch page, for the README.

    python -m watcher.serve.screenshot --config demo-work/config.toml --out docs/img [--epoch N]

Starts `epochwatch serve` on a free loopback port in this process, opens the pages in headless
chromium and writes `serve-run.png` and `serve-epoch.png` (palette PNGs: the pages are flat
colours, and no resampling touches the pixel art).
"""

from __future__ import annotations

import argparse
import io
import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(configs: list[str], port: int) -> tuple[object, threading.Thread]:
    import uvicorn

    from watcher.serve import data
    from watcher.serve.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(data.load_sources(configs)), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server, thread


def _save(png: bytes, path: Path, crop_height: int | None) -> None:
    image = Image.open(io.BytesIO(png)).convert("RGB")
    if crop_height and image.height > crop_height:
        image = image.crop((0, 0, image.width, crop_height))
    _palette_png(image).save(path, optimize=True)


UI_COLOURS = 48


def _palette_png(image: Image.Image, colours: int = 256, block: int = 4, solid: int = 40) -> Image.Image:
    """A 256-colour PNG a third the size, nothing moved or scaled. Colours that fill solid
    areas (the enlarged 24 px cells, the swatches, the page's own colours: pixels whose
    block x block neighbourhood is one colour) keep exact palette entries;
    the rest of the palette is a median cut of the image, for the 512 px samples."""
    a = np.asarray(image, dtype=np.int32)
    packed = (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]
    same = np.ones((packed.shape[0] - block, packed.shape[1] - block), dtype=bool)
    core = packed[:-block, :-block]
    for dy in range(block + 1):
        for dx in range(block + 1):
            same &= packed[dy:dy + core.shape[0], dx:dx + core.shape[1]] == core
    values, counts = np.unique(core[same], return_counts=True)
    keep = counts >= solid
    values, counts = values[keep], counts[keep]
    order = list(np.argsort(-counts))
    # The page's own colours (the largest areas) first, then the smallest solid areas (the
    # swatches before the enlarged cells): with more solid colours than entries, as with the
    # demo's noisy recoveries, the swatches stay exact and some cells are approximated.
    order = order[:UI_COLOURS] + order[UI_COLOURS:][::-1]
    exact = [int(values[i]) for i in order][: colours - 32]
    fill = colours - len(exact)
    cut = (image.quantize(fill, method=Image.Quantize.MEDIANCUT).getpalette() or [])[: fill * 3]
    palette = [c for v in exact for c in ((v >> 16) & 255, (v >> 8) & 255, v & 255)] + cut
    holder = Image.new("P", (1, 1))
    holder.putpalette(palette + [0] * (768 - len(palette)))
    return image.quantize(palette=holder, dither=Image.Dither.NONE)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m watcher.serve.screenshot")
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epoch", type=int, default=None, help="default: the first stop epoch, else the last")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)

    from watcher.serve import browser, data, pages

    if (missing := browser.available()) is not None:
        print(f"screenshot: {missing}", file=sys.stderr)
        return 1
    src = data.load_sources([args.config])[0]
    run = data.history(src)
    if not run.epochs:
        print(f"screenshot: {src.name} has no evaluated epoch yet", file=sys.stderr)
        return 1
    stops = [e for e in run.evaluated if pages.decision(run, e)["outcome"] == "stop"]
    epoch = args.epoch if args.epoch is not None else (stops[0] if stops else run.evaluated[-1])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server, thread = _serve([args.config], port)
    base = f"http://127.0.0.1:{port}{pages.run_url(src)}"
    try:
        with browser.chromium(args.width) as driver:
            for name, url, crop in (("serve-run.png", base, 1500),
                                    ("serve-epoch.png", f"{base}/epoch/{epoch}", 1060)):
                driver.set_window_size(args.width, 900)
                driver.get(url)
                driver.execute_script("return document.fonts.ready")
                time.sleep(0.5)  # images decoded
                _save(browser.full_page_png(driver, args.width), out / name, crop)
                print(out / name)
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
