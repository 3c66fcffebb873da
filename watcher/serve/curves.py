"""The run's curves as inline SVG: the same two panels as `curves.png` (rates in %, and the
1-10 scores, with the rules' thresholds and people's reviews), drawn as text so the page
updates them with the rest of its live part and no plotting library runs per request."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from watcher.metrics import COLOURS, LABELS, PERCENT_METRICS, percent_scale

W, H = 640, 210                 # one panel, in SVG units (scaled by CSS)
LEFT, RIGHT, TOP, BOTTOM = 44, 150, 14, 26
RATES = {m: (LABELS[m], percent_scale(m), COLOURS[m]) for m in PERCENT_METRICS}
SCORES = {m: (label, COLOURS[m]) for m, label in (("overall_score", "overall"), ("visual_score", "visual"),
                                                  ("style_score", "style"), ("prompt_score", "prompt"))}


def _panel(title: str, last_epoch: int, y_min: float, y_max: float,
           series: Sequence[tuple[str, str, dict[int, float]]],
           thresholds: Sequence[tuple[str, float, str]], points: Sequence[tuple[int, float]] = ()) -> str:
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(e: float) -> float:
        return LEFT + (e - 0.5) / max(last_epoch, 1) * pw

    def y(v: float) -> float:
        return TOP + (1 - (min(max(v, y_min), y_max) - y_min) / (y_max - y_min)) * ph

    out = [f'<svg class="curve" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
           f'<text x="{LEFT}" y="10" class="ctitle">{escape(title)}</text>']
    for k in range(5):
        v = y_min + (y_max - y_min) * k / 4
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                   f'<text x="{LEFT - 4}" y="{y(v) + 4:.1f}" class="tick" text-anchor="end">{v:g}</text>')
    for e in range(1, last_epoch + 1):
        out.append(f'<text x="{x(e):.1f}" y="{H - 8}" class="tick" text-anchor="middle">{e}</text>')
    names: dict[float, list[str]] = {}
    for label, value, colour in thresholds:
        out.append(f'<line x1="{LEFT}" x2="{LEFT + pw}" y1="{y(value):.1f}" y2="{y(value):.1f}" '
                   f'stroke="{colour}" class="threshold"><title>{escape(label)}</title></line>')
        names.setdefault(value, []).append(label.split(": ")[0])
    # Labelled on the line: the rules' names and the target in this panel's unit; rules on
    # one line share a label, and neighbouring lines alternate sides so labels do not overlap.
    for k, (value, rules_here) in enumerate(sorted(names.items())):
        x_text, anchor = (LEFT + pw - 2, "end") if k % 2 == 0 else (LEFT + 2, "start")
        out.append(f'<text x="{x_text}" y="{y(value) - 3:.1f}" class="tlabel" text-anchor="{anchor}">'
                   f'{escape(", ".join(rules_here))} ({value:g})</text>')
    legend_y = TOP + 4
    # Drawn last to first, so the first series (the plan's key metric) stays on top, and its
    # markers are larger rings, visible even where another series has the same values.
    for k, (label, colour, s) in reversed(list(enumerate(series))):
        if s:
            pts = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in sorted(s.items()))
            dot = (f'r="5" fill="none" stroke="{colour}" stroke-width="2"' if k == 0
                   else f'r="3" fill="{colour}"')
            out.append(f'<polyline points="{pts}" stroke="{colour}" class="line"/>')
            out += [f'<circle cx="{x(e):.1f}" cy="{y(v):.1f}" {dot}>'
                    f'<title>{escape(label)} epoch {e}: {v:.2f}</title></circle>' for e, v in sorted(s.items())]
    for label, colour, _ in series:
        out.append(f'<rect x="{W - RIGHT + 10}" y="{legend_y - 8}" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{W - RIGHT + 24}" y="{legend_y + 1}" class="legend">{escape(label)}</text>')
        legend_y += 16
    if points:
        for e, v in points:
            out.append(f'<path d="M{x(e) - 5:.1f},{y(v) - 5:.1f} l10,10 m0,-10 l-10,10" class="review">'
                       f'<title>review epoch {e}: {v:.1f}</title></path>')
        out.append(f'<path d="M{W - RIGHT + 10:.1f},{legend_y - 8} l10,10 m0,-10 l-10,10" class="review"/>'
                   f'<text x="{W - RIGHT + 24}" y="{legend_y + 1}" class="legend">review (mean)</text>')
    out.append("</svg>")
    return "".join(out)


def curves_svg(run: Any, rules: Sequence[Any]) -> str:
    """Both panels for a `RunHistory`; `rules` are `watcher.epoch.decide.Rule`s."""
    last = max([*run.evaluated, run.max_epochs or 1, 1])
    rate_series = [(label, colour, {e: v * scale for e, v in run.series(m).items()})
                   for m, (label, scale, colour) in RATES.items()]
    score_series = [(label, colour, run.series(m)) for m, (label, colour) in SCORES.items()]
    rate_th = [(f"{r.name}: {r.metric} {r.comparison} {r.threshold:g}", r.threshold * RATES[r.metric][1],
                RATES[r.metric][2]) for r in rules if r.metric in RATES]
    score_th = [(f"{r.name}: {r.metric} {r.comparison} {r.threshold:g}", r.threshold, SCORES[r.metric][1])
                for r in rules if r.metric in SCORES]
    reviews = [(e, sum(r[k] for k in ("visual", "style", "prompt")) / 3) for e, r in sorted(run.reviews.items())]
    return (_panel("background, colour and style (%)", last, 0, 100, rate_series, rate_th)
            + _panel("scores (1-10)", last, 0, 10, score_series, score_th, reviews))
