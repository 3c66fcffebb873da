"""The run page's training part: the trainer's loss and learning-rate curves as inline SVG
(epoch boundaries and the decisions marked), the trainer log's tail (secrets and terminal
escapes removed), and the overlay of several runs' curves for the compare view."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from watcher.redact import redact
from watcher.training.figures import EpochEnd, Series, epoch_ends, loss_series, lr_tag
from watcher.training.points import LOSS_CURRENT, VALIDATION_EPOCH, Point

W, H = 640, 200
LEFT, RIGHT, TOP, BOTTOM = 52, 150, 16, 28
MAX_DRAWN = 600  # points drawn per line; the state keeps more
LOG_TAIL_LINES = 50
_TAIL_BYTES = 64 * 1024
# what may follow "key=" in a trainer log and is a secret (wandb, Hugging Face, ...)
_SECRET_ARG = re.compile(r"((?:api[_-]?key|token|secret|password)[\"']?\s*[=:]\s*[\"']?)[^\s\"',]+", re.I)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|[\x00-\x08\x0b-\x1f\x7f]")
PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#8e24aa", "#ef6c00", "#00838f")
DECISION_COLOURS = {"stop": "#c62828", "alert": "#b26a00"}


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> list[str]:
    """The last lines of the trainer's log (tqdm redraws: the last of each), redacted."""
    if path is None:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - _TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    out = []
    for line in text.split("\n")[-lines - 1:]:
        line = line.rstrip("\r").split("\r")[-1]  # what a terminal shows: the last redraw
        line = _HF_TOKEN.sub("***", _SECRET_ARG.sub(r"\1***", redact(_ESCAPES.sub("", line))))
        out.append(line)
    while out and not out[0].strip():
        out.pop(0)
    return out[-lines:]


def _thin(points: Sequence[Point]) -> list[Point]:
    stride = max(1, math.ceil(len(points) / MAX_DRAWN))
    kept = list(points[::stride])
    if points and kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


class _Axes:
    def __init__(self, x_max: float, y_min: float, y_max: float) -> None:
        self.x_max, self.y_min, self.y_max = max(x_max, 1e-9), y_min, y_max if y_max > y_min else y_min + 1

    def x(self, v: float) -> float:
        return LEFT + v / self.x_max * (W - LEFT - RIGHT)

    def y(self, v: float) -> float:
        v = min(max(v, self.y_min), self.y_max)
        return TOP + (1 - (v - self.y_min) / (self.y_max - self.y_min)) * (H - TOP - BOTTOM)


def _frame(title: str, ax: _Axes, y_fmt: str, x_label: str) -> list[str]:
    out = [f'<svg class="curve" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="11" class="ctitle">{escape(title)}</text>']
    for k in range(5):
        v = ax.y_min + (ax.y_max - ax.y_min) * k / 4
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{ax.y(v):.1f}" y2="{ax.y(v):.1f}" class="grid"/>'
                   f'<text x="{LEFT - 4}" y="{ax.y(v) + 4:.1f}" class="tick" text-anchor="end">{format(v, y_fmt)}</text>')
    out.append(f'<text x="{W - RIGHT}" y="{H - 4}" class="tick" text-anchor="end">{escape(x_label)}</text>')
    return out


def _line(ax: _Axes, pts: Sequence[tuple[float, float]], colour: str, label: str, cls: str = "line") -> str:
    if not pts:
        return ""
    path = " ".join(f"{ax.x(a):.1f},{ax.y(b):.1f}" for a, b in pts)
    return f'<polyline points="{path}" stroke="{colour}" class="{cls}"><title>{escape(label)}</title></polyline>'


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    out, y = [], TOP + 4
    for label, colour in items:
        out.append(f'<rect x="{W - RIGHT + 10}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{W - RIGHT + 24}" y="{y + 1}" class="legend">{escape(label)}</text>')
        y += 16
    return out


def _epoch_marks(ax: _Axes, ends: Sequence[EpochEnd], decisions: Mapping[int, str]) -> list[str]:
    """A dotted line at each epoch's end, labelled; a stop or alert decision as a flag."""
    out = []
    for end in ends:
        x = ax.x(end.step)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="epochline"/>'
                   f'<text x="{x:.1f}" y="{H - BOTTOM + 12}" class="tick" text-anchor="middle">e{end.epoch}</text>')
        word = decisions.get(end.epoch)
        if word in DECISION_COLOURS:
            out.append(f'<path d="M{x:.1f},{TOP} l8,4 l-8,4 z" fill="{DECISION_COLOURS[word]}" class="decision">'
                       f'<title>epoch {end.epoch}: {word}</title></path>')
    return out


def training_svg(series: Series, decisions: Mapping[int, str]) -> str:
    """Loss (kohya's average, the per-step loss faint, validation) and learning rate by
    global step; '' when there are no points."""
    losses = loss_series(series)
    if not losses:
        return ""
    ends = epoch_ends(series)
    current = series.get(LOSS_CURRENT, ())
    finite = [p.value for p in (*losses, *current, *series.get(VALIDATION_EPOCH, ())) if p.finite]
    last_step = max(p.step for p in losses)
    ax = _Axes(last_step, 0.0, max(finite, default=1.0) * 1.05)
    out = _frame("loss (kohya's average; per step faint)", ax, ".3g", "step")
    out += _epoch_marks(ax, ends, decisions)
    out.append(_line(ax, [(p.step, p.value) for p in _thin(current) if p.finite], "#90a4ae", "loss/current", "line faint"))
    out.append(_line(ax, [(p.step, p.value) for p in _thin(losses) if p.finite], "#1565c0", "loss/average"))
    validation = {e.epoch: e.step for e in ends}
    for p in series.get(VALIDATION_EPOCH, ()):
        if p.finite and p.step in validation:
            out.append(f'<circle cx="{ax.x(validation[p.step]):.1f}" cy="{ax.y(p.value):.1f}" r="4" fill="#2e7d32">'
                       f'<title>validation loss epoch {p.step}: {p.value:.4g}</title></circle>')
    bad = next((p for p in (*current, *losses) if not p.finite), None)
    if bad is not None:
        x = ax.x(bad.step)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{H - BOTTOM}" class="nan"/>'
                   f'<text x="{x + 3:.1f}" y="{TOP + 10}" class="nanlabel">{escape(str(bad.value))} from step {bad.step}</text>')
    out += _legend([("loss/average", "#1565c0"), ("loss/current", "#90a4ae"),
                    *([("validation", "#2e7d32")] if series.get(VALIDATION_EPOCH) else [])])
    out.append("</svg>")
    tag = lr_tag(series)
    if tag:
        lrs = [p for t in sorted(series) if t.startswith("lr/") and "d*lr" not in t for p in series[t]]
        ax2 = _Axes(last_step, 0.0, max((p.value for p in lrs if p.finite), default=1.0) * 1.1)
        out += _frame("learning rate", ax2, ".2g", "step")
        out += _epoch_marks(ax2, ends, decisions)
        tags = [t for t in sorted(series) if t.startswith("lr/") and "d*lr" not in t]
        for k, t in enumerate(tags):
            out.append(_line(ax2, [(p.step, p.value) for p in _thin(series[t]) if p.finite], PALETTE[k % 6], t))
        out += _legend([(t, PALETTE[k % 6]) for k, t in enumerate(tags)])
        out.append("</svg>")
    return "".join(out)


def overlay_svg(title: str, runs: Sequence[tuple[str, Sequence[tuple[float, float]]]], *,
                y_fmt: str, x_label: str, y_range: tuple[float, float] | None = None) -> str:
    """Several runs' series on one panel, one colour each (the compare view)."""
    values = [v for _, pts in runs for _, v in pts if math.isfinite(v)]
    if not values:
        return ""
    x_max = max(x for _, pts in runs for x, _ in pts)
    low, high = y_range or (min(0.0, min(values)), max(values) * 1.05)
    ax = _Axes(x_max, low, high)
    out = _frame(title, ax, y_fmt, x_label)
    every = max(1, math.ceil(x_max / 20))
    for tick in range(every, math.floor(x_max) + 1, every):
        out.append(f'<text x="{ax.x(tick):.1f}" y="{H - BOTTOM + 12}" class="tick" text-anchor="middle">{tick}</text>')
    for k, (name, pts) in enumerate(runs):
        out.append(_line(ax, [(x, v) for x, v in pts if math.isfinite(v)], PALETTE[k % 6], name))
    out += _legend([(name, PALETTE[k % 6]) for k, (name, _) in enumerate(runs)])
    out.append("</svg>")
    return "".join(out)


def loss_by_epoch(series: Series) -> list[tuple[float, float]]:
    """kohya's average loss against fractional epochs (step / steps per epoch), so runs of
    different lengths line up; by step when no epoch has ended yet."""
    ends = epoch_ends(series)
    per_epoch = ends[-1].step / ends[-1].epoch if ends and ends[-1].step else None
    return [(p.step / per_epoch if per_epoch else p.step, p.value) for p in _thin(loss_series(series))]


def figures_rows(training: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The figures as (label, text) with one unit each, for the page's table."""
    def dur(s: float | None) -> str:
        if s is None:
            return "-"
        m = int(s) // 60
        return f"{m // 60} h {m % 60:02d} min" if m >= 60 else f"{m} min {int(s) % 60:02d} s"

    def num(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    loss = "NaN" if training.get("loss_finite") is False else num(training.get("loss"), ".4g")
    return [("step", num(training.get("step"), "d") + (f" of {training['total_steps']}" if training.get("total_steps") else "")),
            ("epoch", num(training.get("epoch"), "d")), ("loss", loss), ("learning rate", num(training.get("lr"), ".3g")),
            ("validation loss", num(training.get("validation_loss"), ".4g")),
            ("speed", num(training.get("steps_per_s"), ".2f") + " steps/s" if training.get("steps_per_s") else "-"),
            ("time per epoch", dur(training.get("epoch_s"))), ("ETA (last epoch)", dur(training.get("eta_s")))]
