"""The plan's success criteria (NEXT_TRAINING_RUN_PLAN.md, "Success Criteria"), each judged
on a run's history as met / not met / pending / not measurable, with the evidence.

"by epoch N" is judged on the first evaluated epoch >= N (as `watcher.criteria` does);
before that the criterion is pending and the evidence shows the best value so far.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcher.decide import verdict
from watcher.report.analysis import outcomes
from watcher.report.history import RunHistory
from watcher.report.rootcause import ON_TIME_EPOCH, Finding

MET, NOT_MET, PENDING, UNMEASURED = "met", "not met", "pending", "not measurable"
SMOOTH_DROP = 0.5         # an overall_score fall between consecutive epochs that is not smooth
COLOUR_MATCH_DE = 10.0    # CIEDE2000 within which a named hair / accessory colour counts as right
COLOUR_MATCH_SHARE = 0.8  # share of named hair / accessory colours that must be right


@dataclass(frozen=True)
class CriterionResult:
    group: str      # primary | secondary
    name: str
    target: str
    status: str     # met | not met | pending | not measurable
    evidence: str


def finished(run: RunHistory) -> bool:
    """The run is over: stopped, failed, or its last planned epoch evaluated."""
    last = max(run.epochs, default=0)
    return (run.max_epochs is not None and last >= run.max_epochs) or run.status in (
        "stopped", "finished", "failed", "stopping")


def _by(run: RunHistory, metric: str, epoch: int, threshold: float, unit: str = "") -> tuple[str, str]:
    s = run.series(metric)
    if not s:
        return UNMEASURED, f"no {metric} measured"
    judged = next((e for e in s if e >= epoch), None)
    if judged is None:
        best = max(s, key=lambda e: (s[e], -e))
        if finished(run):
            return NOT_MET, (f"the run ended at epoch {max(s)}, before epoch {epoch}; "
                             f"best {s[best]:.1f}{unit} at epoch {best}")
        return PENDING, (f"judged at epoch {epoch}; evaluated up to {max(s)}, "
                         f"best so far {s[best]:.1f}{unit} at epoch {best}")
    first = next((e for e in s if s[e] >= threshold), None)
    tail = f"; first {threshold:g}{unit}+ at epoch {first}" if first is not None else ""
    status = MET if s[judged] >= threshold else NOT_MET
    return status, f"{s[judged]:.1f}{unit} at epoch {judged}{tail}"


def _named_colours(run: RunHistory, epoch: int | None, role: str) -> tuple[int, int]:
    """(right, total) named colours of `role` in the epoch's images (delta E <= COLOUR_MATCH_DE)."""
    right = total = 0
    for img in run.images.get(epoch, []) if epoch is not None else []:
        for c in img.get("per_color") or []:
            if c.get("role") != role:
                continue
            de = c.get("delta_e")
            total += 1
            right += isinstance(de, (int, float)) and de <= COLOUR_MATCH_DE
    return right, total


def _colour_role(run: RunHistory, role: str, epoch: int | None, where: str) -> tuple[str, str]:
    right, total = _named_colours(run, epoch, role)
    if not total:
        return UNMEASURED, f"no {role} colour named in the prompts (or no per-colour scores)"
    share = right / total
    status = MET if share >= COLOUR_MATCH_SHARE else NOT_MET
    return status, (f"{right}/{total} {role} colours within delta E {COLOUR_MATCH_DE:g} "
                    f"at {where} epoch {epoch}")


def plan_criteria(run: RunHistory, findings: Sequence[Finding],
                  baselines: Sequence[RunHistory] = ()) -> list[CriterionResult]:
    green, rates = run.green(), run.series("background_match_rate")
    first, last = run.first_green(), max(run.epochs, default=0)
    out: list[CriterionResult] = []

    def add(group: str, name: str, target: str, status_evidence: tuple[str, str]) -> None:
        out.append(CriterionResult(group, name, target, *status_evidence))

    # 1. Early background convergence
    if not rates:
        bg = (UNMEASURED, "no prompt names a background colour")
    elif first is not None and first <= ON_TIME_EPOCH:
        bg = (MET, f"first right at epoch {first} (match rate {rates[first]:.2f})")
    elif last >= ON_TIME_EPOCH:
        judged = next(e for e in rates if e >= ON_TIME_EPOCH)
        tail = f"first right at epoch {first}" if first is not None else f"never right up to epoch {last}"
        bg = (NOT_MET, f"match rate {rates[judged]:.2f} at epoch {judged}; {tail}")
    else:
        bg = (PENDING, f"not right yet at epoch {last}")
    add("primary", "Early background convergence", f"green background by epoch 3-{ON_TIME_EPOCH}", bg)

    flips = [f for f in findings if f.kind == "oscillation"]
    over = finished(run)
    if first is None:
        stable = (UNMEASURED if over or not rates else PENDING,
                  "no background measured" if not rates else
                  "the background was never right" if over else "background never right yet")
    elif flips:
        stable = (NOT_MET, "; ".join(f"right at {f.epochs[0]}, wrong at {f.epochs[1]}" for f in flips))
    else:
        stable = (MET, f"right at every evaluated epoch from {first} to {max(green)}")
    add("primary", "Background stays right", "no oscillation once green", stable)

    # 2. Quality target
    add("primary", "Quality target", "overall score 8+/10 by epoch 7", _by(run, "overall_score", 7, 8.0, "/10"))
    traded = [f for f in findings if f.kind == "quality_traded_for_background"]
    if traded:
        q = (NOT_MET, "; ".join(f.message.split(": ", 1)[1] for f in traded))
    elif first is None:
        q = (UNMEASURED, "the background was never learnt") if over else (PENDING, "background not learnt yet")
    else:
        q = (MET, "no epoch where the score fell as the background was learnt")
    add("primary", "No quality loss while learning the background",
        "score does not fall as the background turns right", q)

    # 3. Training stability
    scores = run.series("overall_score")
    drops = [(a, b) for a, b in zip(scores, list(scores)[1:], strict=False) if scores[a] - scores[b] > SMOOTH_DROP]
    if len(scores) < 3:
        st = (PENDING, f"{len(scores)} scored epoch(s); needs 3")
    elif flips or drops:
        parts = [f"background oscillates ({len(flips)}x)"] if flips else []
        parts += [f"score {scores[a]:.1f}->{scores[b]:.1f} at epoch {a}->{b}" for a, b in drops]
        st = (NOT_MET, "; ".join(parts))
    else:
        st = (MET, f"no background oscillation; no score drop over {SMOOTH_DROP:g} between epochs")
    add("primary", "Training stability", f"smooth convergence (no oscillation, no drop > {SMOOTH_DROP:g})", st)

    # Secondary: production ready, colour accuracy, accessories, hair
    best_epoch, best = run.best()
    if best is not None and best >= 8.5:
        prod = (MET, f"{best:.1f}/10 at epoch {best_epoch}")
    elif best is None:
        prod = (UNMEASURED, "no overall score")
    else:
        prod = (NOT_MET if finished(run) else PENDING, f"best {best:.1f}/10 at epoch {best_epoch}")
    add("secondary", "Production ready", "an epoch at 8.5+/10", prod)
    perfect = next((b for b in baselines if "PERFECT" in b.name), None)
    if perfect is not None and best is not None:
        target = outcomes(perfect)["best_score"]
        status = MET if best >= target - 0.5 else (NOT_MET if finished(run) else PENDING)
        add("secondary", f"Comparable to {perfect.name}", f"within 0.5 of its {target:g}/10",
            (status, f"best {best:.1f}/10 vs {target:g}/10 ({best - target:+.1f})"))
    add("secondary", "Colour accuracy", "80%+ by epoch 5", _by(run, "color_accuracy", 5, 80.0, "%"))
    add("secondary", "Accessories accurate", f"{COLOUR_MATCH_SHARE:.0%} of named accessory colours right",
        _colour_role(run, "accessory", best_epoch, "the best"))
    hair_epoch = next((e for e in run.evaluated if e >= 7), None)
    hair = _colour_role(run, "hair", hair_epoch, "the judged") if hair_epoch is not None else (
        (UNMEASURED, f"the run ended at epoch {last}, before epoch 7") if over
        else (PENDING, f"judged at epoch 7; evaluated up to {last}"))
    two_tone = sorted({i for e in run.evaluated for i in (run.epochs[e].get("issues") or [])
                       if "two" in str(i) and "ton" in str(i)})
    if two_tone and hair[0] == MET:
        hair = (NOT_MET, hair[1] + f"; issues: {', '.join(two_tone)}")
    add("secondary", "Hair colours", "right, no two-toning by epoch 7", hair)
    return out


def verdict_of(run: RunHistory, rules: Sequence[Any]) -> dict[str, Any]:
    """The run's verdict as `watcher.criteria.verdict` gives it (success / partial / failure /
    pending), from the same rules the daemon judged with."""

    return verdict(list(rules), run.records())
