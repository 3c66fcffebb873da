"""Root-cause findings from one run's epoch timeline.

Each check reads the per-epoch aggregate metrics and names what went wrong, when, and the
numbers behind it: background late or never right, oscillation, quality falling while the
background is learnt, colour drift, loss of pixel-art style, and the score trend at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.metrics import BACKGROUND_METRIC
from watcher.report.history import GREEN_RATE, RunHistory
from watcher.rules import Rule

SCORE_DROP = 0.2           # an overall_score fall that counts (1-10 scale)
RATE_RISE = 0.25           # a background_match_rate rise that counts as "learning it"
COLOR_DRIFT = 10.0         # colour accuracy points lost from its peak
STYLE_DROP = 10.0          # style quality points lost from its peak
STYLE_FLOOR = 50.0         # style quality below this is no longer clean pixel art
PALETTE_GROWTH = 1.5       # unique colours grown by this factor over the run's smallest
PALETTE_FLOOR = 32         # ... and above this many colours in the 24 x 24 image
SEVERITIES = ("critical", "warning", "info")


@dataclass(frozen=True)
class Finding:
    kind: str              # background_never | background_late | background_on_time | ...
    severity: str          # critical | warning | info
    epochs: tuple[int, ...]
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "severity": self.severity, "epochs": list(self.epochs),
                "message": self.message, "evidence": self.evidence}


def on_time_epoch(rules: Sequence[Rule]) -> int | None:
    """The epoch the run's rules want the background right by (a by / at rule on
    background_match_rate), or None: then "late" cannot be said, only "never"."""
    return next((r.epoch for r in rules if r.metric == BACKGROUND_METRIC
                 and r.mode in ("by", "at") and r.epoch), None)


def _background(run: RunHistory, on_time: int | None) -> list[Finding]:
    rates = run.series(BACKGROUND_METRIC)
    if not rates:
        return [Finding("background_unmeasured", "info", (),
                        "background not measured (no prompt names a background colour)")]
    first = run.first_green()
    last = max(rates)
    if first is None:
        best = max(rates, key=lambda e: (rates[e], -e))
        hexes = [str(run.epochs[e]["background_hex"]) for e in rates if run.epochs[e].get("background_hex")]
        # sorted first: a tie between colours resolves the same way every time
        common = max(sorted(set(hexes)), key=hexes.count) if hexes else None
        ev = {"best_rate": rates[best], "best_epoch": best, "background_hex": common,
              "evaluated": sorted(rates)}
        over = run.max_epochs is not None and last >= run.max_epochs or run.status in (
            "stopped", "finished", "failed", "stopping")
        if (last < on_time) if on_time is not None else not over:
            judged = f"judged at epoch {on_time}" if on_time is not None else "no rule says by when"
            return [Finding("background_not_yet", "info", tuple(rates),
                            f"background not right yet at epoch {last} ({judged})", ev)]
        tail = f"; mostly {common}" if common else ""
        return [Finding("background_never", "critical", tuple(rates),
                        f"background never right in {len(rates)} evaluated epochs "
                        f"(best rate {rates[best]:.2f} at epoch {best}{tail})", ev)]
    ev = {"first_green_epoch": first, "rate": rates[first]}
    if on_time is None:
        return [Finding("background_on_time", "info", (first,),
                        f"background right from epoch {first}", ev)]
    if first > on_time:
        return [Finding("background_late", "warning", (first,),
                        f"background late: first right at epoch {first} (rules: by epoch {on_time})", ev)]
    return [Finding("background_on_time", "info", (first,),
                    f"background right from epoch {first} (rules: by epoch {on_time})", ev)]


def _oscillation(run: RunHistory) -> list[Finding]:
    green = run.green()
    rates = run.series(BACKGROUND_METRIC)
    epochs = list(green)
    out = []
    for prev, cur in zip(epochs, epochs[1:], strict=False):
        if green[prev] and not green[cur]:
            out.append(Finding("oscillation", "warning", (prev, cur),
                               f"oscillation: background right at epoch {prev} "
                               f"(rate {rates[prev]:.2f}), wrong again at epoch {cur} "
                               f"(rate {rates[cur]:.2f})",
                               {"from": prev, "to": cur, "rates": [rates[prev], rates[cur]]}))
    return out


def _quality_vs_background(run: RunHistory) -> list[Finding]:
    rates, scores = run.series(BACKGROUND_METRIC), run.series("overall_score")
    both = [e for e in run.evaluated if e in rates and e in scores]
    out = []
    for prev, cur in zip(both, both[1:], strict=False):
        learnt = rates[cur] - rates[prev] >= RATE_RISE or (
            rates[prev] < GREEN_RATE <= rates[cur])
        fell = scores[prev] - scores[cur] >= SCORE_DROP
        if learnt and fell:
            out.append(Finding("quality_traded_for_background", "warning", (prev, cur),
                               f"quality fell while the background was learnt: epoch {prev}->{cur} "
                               f"background {rates[prev]:.2f}->{rates[cur]:.2f}, "
                               f"score {scores[prev]:.1f}->{scores[cur]:.1f}",
                               {"rates": [rates[prev], rates[cur]],
                                "scores": [scores[prev], scores[cur]]}))
    return out


def _drop_from_peak(series: dict[int, float], drop: float) -> tuple[int, int] | None:
    """(peak epoch, later epoch) of the largest fall of at least `drop` after a peak."""
    worst: tuple[float, int, int] | None = None
    peak_e: int | None = None
    for e, v in series.items():
        if peak_e is None or v > series[peak_e]:
            peak_e = e
            continue
        fall = series[peak_e] - v
        if fall >= drop and (worst is None or fall > worst[0]):
            worst = (fall, peak_e, e)
    return (worst[1], worst[2]) if worst else None


def _dropped(series: dict[int, float], drop: float, kind: str, what: str) -> list[Finding]:
    """A warning when `series` fell `drop` or more below an earlier peak (`what` names it)."""
    hit = _drop_from_peak(series, drop)
    if not hit:
        return []
    p, e = hit
    return [Finding(kind, "warning", (p, e), f"{what} {series[p]:.1f} at epoch {p}, "
                    f"{series[e]:.1f} at epoch {e}", {"peak": series[p], "later": series[e]})]


def _color_drift(run: RunHistory) -> list[Finding]:
    out = _dropped(run.series("color_accuracy"), COLOR_DRIFT, "color_drift",
                   "colour drift: colour accuracy")
    wrong = [run.epochs[e].get("background_hex") for e, ok in run.green().items() if not ok]
    path = [h for i, h in enumerate(wrong) if h and (i == 0 or h != wrong[i - 1])]
    if len(path) >= 3:
        out.append(Finding("background_hue_wanders", "info", tuple(e for e, ok in run.green().items() if not ok),
                           "the wrong background keeps changing colour: " + " -> ".join(path),
                           {"path": path}))
    return out


def _style(run: RunHistory) -> list[Finding]:
    style = run.series("style_quality")
    out = _dropped(style, STYLE_DROP, "style_loss", "pixel-art style lost: style quality")
    if style and style[max(style)] < STYLE_FLOOR:
        last = max(style)
        out.append(Finding("style_poor", "warning", (last,),
                           f"style quality {style[last]:.1f} at the last epoch ({last}) is below "
                           f"{STYLE_FLOOR:g}: not clean pixel art", {"style_quality": style[last]}))
    colors = run.series("unique_colors")
    if colors:
        low = min(colors, key=lambda e: (colors[e], e))
        high = max((e for e in colors if e > low), key=lambda e: colors[e], default=None)
        if high is not None and colors[high] >= PALETTE_GROWTH * max(colors[low], 1) \
                and colors[high] > PALETTE_FLOOR:
            out.append(Finding("palette_growth", "warning", (low, high),
                               f"palette grows: {colors[low]:.0f} colours at epoch {low}, "
                               f"{colors[high]:.0f} at epoch {high} (smoothing / anti-aliasing)",
                               {"from": colors[low], "to": colors[high]}))
    return out


def _trend(run: RunHistory) -> list[Finding]:
    scores = run.series("overall_score")
    epochs = sorted(scores)
    if len(epochs) < 3:
        return []
    a, b, c = (scores[e] for e in epochs[-3:])
    if a < b < c:
        return [Finding("still_improving", "info", tuple(epochs[-3:]),
                        f"overall score still rising at the last epochs ({a:.1f}, {b:.1f}, {c:.1f}): "
                        "more epochs may help", {"scores": [a, b, c]})]
    if abs(c - a) < SCORE_DROP and abs(c - b) < SCORE_DROP:
        return [Finding("plateau", "info", tuple(epochs[-3:]),
                        f"overall score flat at the last epochs ({a:.1f}, {b:.1f}, {c:.1f})",
                        {"scores": [a, b, c]})]
    return []


def _stopped(run: RunHistory) -> list[Finding]:
    for epoch in sorted(run.decisions):
        stops = [d for d in run.decisions[epoch] if d.stops]
        if stops:
            return [Finding("stopped", "info", (epoch,), f"stopped at epoch {epoch}: {stops[0].message}",
                            {"criterion": stops[0].criterion})]
    return []


def root_cause(run: RunHistory, on_time: int | None = None) -> list[Finding]:
    """All findings, most severe first, then by epoch. `on_time`: the epoch the background
    should be right by (`on_time_epoch` of the run's rules)."""
    found = (_background(run, on_time) + _oscillation(run) + _quality_vs_background(run)
             + _color_drift(run) + _style(run) + _trend(run) + _stopped(run))
    return sorted(found, key=lambda f: (SEVERITIES.index(f.severity), f.epochs[:1] or (0,)))


def render_findings(run: RunHistory, findings: list[Finding]) -> str:
    lines = [f"root cause: {run.name} ({len(run.epochs)} evaluated epochs)"]
    if not run.epochs:
        lines.append("  nothing evaluated yet")
    for f in findings:
        lines.append(f"  [{f.severity}] {f.message}")
    return "\n".join(lines)
