"""Pictures committed with the results: the per-epoch contact sheet, the run grid (epochs down,
prompts across), the metric curves and the trainer's loss (`watcher.report.losscurve`).

Sheets and the grid are drawn with Pillow (exact pixels: the 24 px recoveries are enlarged
with nearest-neighbour so every logical pixel stays a crisp square); the curves with
matplotlib's Agg backend, imported only when a curve is drawn.
"""

from __future__ import annotations

import gc
import math
import os
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from watcher.config import WatchConfig
from watcher.metrics import (
    BACKGROUND_METRIC,
    COLOURS,
    LABELS,
    MARKERS,
    PERCENT_METRICS,
    percent_scale,
)
from watcher.report.baselines import plan_baselines
from watcher.report.history import RunHistory, load_run
from watcher.rules import Rule, decision_word
from watcher.store import Store

THUMB = 256                      # px of the 512 px sample in a contact sheet
GRID_SCALE = 4                   # 24 px recovery -> 96 px in the run grid
BORDER = 4
RIGHT, WRONG, NEUTRAL = (46, 160, 67), (215, 48, 39), (170, 170, 170)
INK, PAPER, MUTED = (20, 20, 20), (255, 255, 255), (110, 110, 110)


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _enlarge(cells: np.ndarray | Image.Image, side: int) -> Image.Image:
    img = cells if isinstance(cells, Image.Image) else Image.fromarray(np.asarray(cells, dtype=np.uint8))
    img = img.convert("RGB")
    scale = max(1, side // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)


def _save(image_or_fig: Any, path: Path) -> Path:
    """Write next to the target, then rename: git never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    if isinstance(image_or_fig, Image.Image):
        image_or_fig.save(tmp, format="PNG")
    else:
        image_or_fig.savefig(tmp, format="png", dpi=100)
        # A Figure is a web of reference cycles that only the cyclic collector frees; in the
        # long-lived daemon that showed as ~3.5 MB more memory per epoch. Free it now.
        image_or_fig.clear()
        gc.collect()
    os.replace(tmp, path)
    return path


# ---- contact sheet ----------------------------------------------------------------------------
def contact_sheet(rows: Sequence[tuple[Image.Image, np.ndarray, str]], columns: int | None = None,
                  title: str = "") -> Image.Image:
    """Tiles of (512 px sample, 24 px recovery shown large) with a caption under each, laid out
    `columns` tiles across (e.g. one column per seed, one row per prompt; default 2 from 4
    samples on)."""
    n = max(1, len(rows))
    columns = columns or (2 if n >= 4 else 1)
    big = (THUMB // 24) * 24 if rows else THUMB
    cap_font, title_font = font(14), font(18)
    line_h, cap_lines, gap = 17, 3, 16
    tile_w = THUMB + 8 + max(big, 1)
    tile_h = THUMB + 8 + cap_lines * line_h
    top = 52 if title else 30
    grid_rows = math.ceil(n / columns)
    sheet = Image.new("RGB", (columns * tile_w + (columns + 1) * gap, top + grid_rows * (tile_h + gap)), PAPER)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((gap, 8), title, fill=INK, font=title_font)
    # short enough for a one-column sheet
    draw.text((gap, top - 22), "left: sample; right: 24 px recovery (nearest-neighbour)",
              fill=MUTED, font=cap_font)
    wrap = max(20, tile_w // 8)
    for i, (image, cells, caption) in enumerate(rows):
        x = gap + (i % columns) * (tile_w + gap)
        y = top + (i // columns) * (tile_h + gap)
        sheet.paste(image.convert("RGB").resize((THUMB, THUMB), Image.Resampling.LANCZOS), (x, y))
        recovered = _enlarge(cells, big)
        sheet.paste(recovered, (x + THUMB + 8, y + (THUMB - recovered.height) // 2))
        for j, line in enumerate(textwrap.wrap(caption, wrap)[:cap_lines]):
            draw.text((x, y + THUMB + 6 + j * line_h), line, fill=INK, font=cap_font)
    return sheet


# ---- run grid ----------------------------------------------------------------------------------
def prompt_label(prompt: str, width: int = 16) -> list[str]:
    """Two short lines naming a prompt: its subject and first colours."""
    text = prompt.split("--")[0]
    parts = [p.strip() for p in text.split(",") if p.strip()]
    subject = parts[0] if parts else text
    for lead in ("pixel art portrait of an ", "pixel art portrait of a ", "pixel art portrait of ",
                 "pixel art "):
        if subject.lower().startswith(lead):
            subject = subject[len(lead):]
            break
    detail = parts[1].split("(")[0].strip() if len(parts) > 1 else ""
    return [subject[:width], detail[:width]]


def _columns(run: RunHistory) -> list[str]:
    """Prompts in order of first appearance over the epochs."""
    seen: dict[str, None] = {}
    for e in run.evaluated:
        for img in run.images.get(e, []):
            seen.setdefault(str(img.get("prompt", "")), None)
    return list(seen)


def _cell(run: RunHistory, epoch: int, prompt: str, side: int) -> tuple[Image.Image | None, Any]:
    """The 24 px recovery of the first sample of `prompt` at `epoch`, and its background match."""
    for img in run.images.get(epoch, []):
        if img.get("prompt") != prompt:
            continue
        folder = run.result_dirs.get(epoch)
        rel = img.get("sample_24px")
        if folder is None or not rel:
            return None, img.get("background_match")
        try:
            with Image.open(folder / rel) as im:
                return _enlarge(im, side), img.get("background_match")
        except OSError:
            return None, img.get("background_match")
    return None, None


def grid_image(run: RunHistory, cells: int = 24) -> Image.Image:
    """Epochs down, prompts across: each 24 px recovery enlarged, framed green when the
    background is right, red when wrong, grey when the prompt names none."""
    prompts = _columns(run)
    epochs = run.evaluated
    side = cells * GRID_SCALE
    cell = side + 2 * BORDER
    gap, left, top = 8, 190, 84
    legend_h = 34
    title_font, label_font, small = font(18), font(14), font(12)
    width = left + max(1, len(prompts)) * (cell + gap) + 190
    height = top + max(1, len(epochs)) * (cell + gap) + legend_h + 10
    img = Image.new("RGB", (width, height), PAPER)
    d = ImageDraw.Draw(img)
    d.text((12, 10), f"{run.name}: samples by epoch (24 px recovery)", fill=INK, font=title_font)
    for j, prompt in enumerate(prompts):
        x = left + j * (cell + gap)
        for k, line in enumerate(prompt_label(prompt, 13)):
            d.text((x, 40 + k * 16), line, fill=INK if k == 0 else MUTED, font=small)
    first = run.first_green()
    for i, epoch in enumerate(epochs):
        y = top + i * (cell + gap)
        agg = run.epochs[epoch]
        rate, score = run.value(epoch, BACKGROUND_METRIC), run.value(epoch, "overall_score")
        n = agg.get("n_images")
        d.text((12, y + 8), f"epoch {epoch}", fill=INK, font=label_font)
        if rate is not None:
            bg = f"bg {round(rate * n)}/{n} right" if isinstance(n, int) and n else f"bg {rate:.0%} right"
            d.text((12, y + 30), bg, fill=RIGHT if rate >= 0.5 else WRONG, font=small)
        if score is not None:
            d.text((12, y + 48), f"score {score:.1f}/10", fill=MUTED, font=small)
        if any(d.stops for d in run.decisions.get(epoch, [])):
            d.text((12, y + 66), "stop decided", fill=WRONG, font=label_font)
        for j, prompt in enumerate(prompts):
            x = left + j * (cell + gap)
            tile, match = _cell(run, epoch, prompt, side)
            frame = RIGHT if match is True else WRONG if match is False else NEUTRAL
            d.rectangle((x, y, x + cell - 1, y + cell - 1), fill=frame)
            if tile is not None:
                img.paste(tile.resize((side, side), Image.Resampling.NEAREST), (x + BORDER, y + BORDER))
            else:
                d.rectangle((x + BORDER, y + BORDER, x + BORDER + side - 1, y + BORDER + side - 1),
                            fill=(235, 235, 235))
                d.text((x + 14, y + cell // 2 - 8), "no image", fill=MUTED, font=small)
        if epoch == first:
            xr = left + len(prompts) * (cell + gap)
            d.text((xr, y + cell // 2 - 18), "<- background", fill=RIGHT, font=label_font)
            d.text((xr, y + cell // 2), "   first right here", fill=RIGHT, font=label_font)
    y = height - legend_h
    for k, (colour, text) in enumerate(((RIGHT, "background right"), (WRONG, "background wrong"),
                                        (NEUTRAL, "no background in prompt"))):
        x = 12 + k * 220
        d.rectangle((x, y + 6, x + 16, y + 22), fill=colour)
        d.text((x + 24, y + 6), text, fill=INK, font=label_font)
    return img


# ---- curves ------------------------------------------------------------------------------------
PERCENT = {m: (LABELS[m], percent_scale(m)) for m in PERCENT_METRICS}
SCORES = {"visual_score": "Visual", "style_score": "Style", "prompt_score": "Prompt",
          "overall_score": "overall"}


def _threshold_lines(ax: Any, rules: Sequence[Any], metrics: dict[str, Any], scale: dict[str, float],
                     x_max: float) -> None:
    seen = set()
    for rule in rules:
        if rule.metric not in metrics or rule.mode == "oscillation":
            continue
        y = rule.threshold * scale.get(rule.metric, 1.0)
        key = (rule.metric, y, rule.mode == "candidate")
        if key in seen:
            continue
        seen.add(key)
        start = rule.epoch if rule.mode in ("at", "by", "from") and rule.epoch else 0.5
        style = ":" if rule.mode == "candidate" else "--"
        name = LABELS.get(rule.metric, rule.metric.replace("_", " "))
        unit = "%" if rule.metric in scale else "/10" if rule.metric in SCORES else ""
        when = (f" {rule.mode} epoch {rule.epoch}" if rule.mode in ("at", "by", "from") and rule.epoch
                else ": production candidate" if rule.mode == "candidate" else "")
        label = f"{name} {rule.comparison} {y:g}{unit}{when}"
        ax.hlines(y, start, x_max, colors=metrics[rule.metric], linestyles=style, linewidth=1.2,
                  alpha=0.8, label=f"target: {label}", zorder=2)
        if rule.mode in ("at", "by"):
            ax.plot([rule.epoch], [y], marker="D", color=metrics[rule.metric], markersize=6)


def curves_figure(run: RunHistory, baselines: Sequence[RunHistory] = (), rules: Sequence[Any] = ()) -> Any:
    """Two panels against epoch: rates in % (background, colour, style) and the 1-10 scores,
    with the rules' thresholds, the baselines and any review scores drawn in."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(12, 8.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    last = max([*run.evaluated, *(e for b in baselines for e in b.evaluated), run.max_epochs or 1, 1])
    x_max = last + 0.5
    colours = COLOURS
    for metric, (label, scale) in PERCENT.items():
        s = run.series(metric)
        if s:
            on_top = metric == BACKGROUND_METRIC  # the plan's key metric stays visible
            top.plot(list(s), [v * scale for v in s.values()], marker=MARKERS[metric],
                     color=colours[metric], linewidth=2.6 if on_top else 1.8,
                     markersize=10 if on_top else 6, zorder=4 if on_top else 3,
                     markerfacecolor="none" if on_top else colours[metric],
                     markeredgewidth=2 if on_top else 1, label=f"{label} (%)")
    for metric, label in SCORES.items():
        s = run.series(metric)
        if s:
            thick = metric == "overall_score"
            bottom.plot(list(s), list(s.values()), marker=MARKERS[metric], color=colours[metric],
                        linewidth=2.6 if thick else 1.4, alpha=1 if thick else 0.85,
                        label=f"{label} score" if thick else label)
    _threshold_lines(top, rules, {m: colours[m] for m in PERCENT}, {m: v[1] for m, v in PERCENT.items()}, x_max)
    _threshold_lines(bottom, rules, {m: colours[m] for m in SCORES}, {}, x_max)
    for k, base in enumerate(baselines):
        marker, tone = ("s", "^", "v", "P")[k % 4], ("#9e9e9e", "#c62828", "#6d4c41", "#5e35b1")[k % 4]
        s = base.series("overall_score")
        if s:
            bottom.plot(list(s), list(s.values()), linestyle=(0, (4, 3)), marker=marker,
                        markersize=8, color=tone, label=f"baseline {base.name}")
        g = base.series(BACKGROUND_METRIC)
        if g:
            top.step(list(g), [v * 100 for v in g.values()], where="mid", linestyle=(0, (4, 3)),
                     color=tone, alpha=0.8, zorder=1, label=f"baseline {base.name}: background")
    stops = [e for e in sorted(run.decisions)
             if any(d.stops for d in run.decisions[e])]
    if stops:
        for ax in (top, bottom):
            ax.axvline(stops[0], color="#c62828", linestyle="-.", linewidth=1.2, alpha=0.8,
                       label=f"stop decision (epoch {stops[0]})")
    if run.reviews:
        epochs = sorted(run.reviews)
        means = [sum(run.reviews[e][k] for k in ("visual", "style", "prompt")) / 3 for e in epochs]
        bottom.scatter(epochs, means, marker="X", s=90, color="#d81b60", zorder=5,
                       label="human review (mean of 3)")
    top.set_ylabel("percent")
    top.set_ylim(-5, 105)
    top.set_title(f"{run.name}: background, colour and style", loc="left")
    bottom.set_ylabel("score (1-10)")
    bottom.set_ylim(0.5, 10.5)
    bottom.set_title("Visual / Style / Prompt scores", loc="left")
    bottom.set_xlabel("epoch")
    bottom.set_xlim(0.5, x_max)
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
        if not run.evaluated:
            ax.text(0.5, 0.5, "no evaluated epoch yet", transform=ax.transAxes, ha="center",
                    color="#757575")
    return fig


def write_run_pictures(cfg: WatchConfig, store: Store) -> list[Path]:
    """grid.png and curves.png in the run's results folder, from the store; cheap enough to
    redo after every epoch. Returns their paths."""

    run = load_run(store, cfg.run.name)
    out = Path(cfg.run_results_dir)
    rules = [Rule.from_config(c) for c in cfg.criteria]
    grid = _save(grid_image(run, cfg.evaluation.cells), out / "grid.png")
    # the plan's baselines, local ones only: pictures are redrawn after every epoch
    bases = plan_baselines(cfg.plan, cfg.state_db, remote=False)[0] if cfg.plan is not None else []
    curves = _save(curves_figure(run, bases, rules), out / "curves.png")
    return [grid, curves, *_loss_picture(store, run, out)]


def _loss_picture(store: Store, run: RunHistory, out: Path) -> list[Path]:
    """[loss.png] from the run's stored training figures, [] (and no file) without them."""
    from watcher.report.losscurve import LOSS_PNG, loss_figure
    from watcher.training.storage import load_series

    path = out / LOSS_PNG
    decisions = {e: decision_word(ds) for e, ds in run.decisions.items() if ds}
    fig = loss_figure(run.name, load_series(store, run.name), decisions)
    if fig is None:
        path.unlink(missing_ok=True)  # from figures since cleared: it would show a stale curve
        return []
    return [_save(fig, path)]
