"""Per-epoch aggregate of image score dicts (as from ImageScore.to_dict)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from statistics import mean, median
from typing import Any

from evaluators.faults import reviewed_overall
from evaluators.prompt import ParsedPrompt

# Epoch metrics that exist only when some prompt names what they judge; every other metric
# of aggregate_epoch is produced for any prompt.
NEEDS_BACKGROUND = frozenset({"background_match_rate", "background_partly_rate"})
NEEDS_COLOR = frozenset({"color_accuracy", "prompt_score"})
# Only with a learned judge configured ([evaluation] clip_model: watcher.clipjudge).
NEEDS_CLIP = frozenset({"clip_score"})


def judgeable_metrics(prompts: Iterable[ParsedPrompt], clip: bool = False) -> frozenset[str]:
    """The epoch metrics these prompts (and a CLIP judge, with clip=True) let the evaluators
    produce (for refusing, at config load, a rule that could never be judged)."""
    prompts = list(prompts)
    always = frozenset(aggregate_epoch([])) - NEEDS_BACKGROUND - NEEDS_COLOR - NEEDS_CLIP
    out = set(always) | (NEEDS_CLIP if clip else set())
    if any(p.background is not None for p in prompts):
        out |= NEEDS_BACKGROUND
    if any(p.colors for p in prompts):
        out |= NEEDS_COLOR
    return frozenset(out)


def _mean_of(scores: list[Mapping[str, Any]], key: str) -> float | None:
    values = [float(s[key]) for s in scores if s.get(key) is not None]
    return round(mean(values), 4) if values else None


def aggregate_epoch(scores: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Epoch metrics; the keys are the metric names criteria refer to."""
    items = [s for s in scores if "error" not in s]
    matches = [bool(s["background_match"]) for s in items if s.get("background_match") is not None]
    # `partly` (evaluators.bgjudge) is not a match: counted apart, never in the match rate
    partly = [s.get("background_outcome") == "partly" for s in items if s.get("background_match") is not None]
    visual, style, prompt = (_mean_of(items, k) for k in ("visual_score", "style_score", "prompt_score"))
    parts = [v for v in (visual, style, prompt) if v is not None]
    issue_counts = Counter(issue for s in items for issue in s.get("issues", []))
    backgrounds = Counter(s["background_hex"] for s in items if s.get("background_hex"))
    uniques = [int(s["unique_colors"]) for s in items if s.get("unique_colors") is not None]
    return {
        "background_match_rate": round(sum(matches) / len(matches), 4) if matches else None,
        "background_partly_rate": round(sum(partly) / len(partly), 4) if partly else None,
        "color_accuracy": _mean_of(items, "color_accuracy"),
        "style_quality": _mean_of(items, "style_quality"),
        "visual_score": visual,
        "style_score": style,
        "prompt_score": prompt,
        # less each fault's points times the share of images showing it (evaluators.score)
        "overall_score": round(reviewed_overall(mean(parts), {
            issue: count / len(items) for issue, count in issue_counts.items()}), 4) if parts else None,
        "unique_colors": median(uniques) if uniques else None,
        "background_hex": backgrounds.most_common(1)[0][0] if backgrounds else None,
        "issues": sorted(issue_counts),
        "issue_counts": dict(sorted(issue_counts.items())),
        "n_images": len(items),
        # CLIPScore 0-100 (watcher.clipjudge), only with [evaluation] clip_model: advisory
        "clip_score": _mean_of(items, "clip_score"),
    }
