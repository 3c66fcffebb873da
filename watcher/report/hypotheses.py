"""The next experiments, from the plan's decision tree and this run's findings.

Branch (NEXT_TRAINING_RUN_PLAN.md "Decision Points" and "Next Steps"):
- background still wrong by epoch 4 (or never): simplify captions, keep_tokens 5, restructure
  captions, return to SD15_PERFECT's approach;
- quality 7-7.9 (partial): 15 epochs, learning rate 5e-5, dataset expansion, conv_dim 8;
- quality 8+ (success): dataset expansion, conv_dim 8 / conv_alpha 4.

Confidence: the plan's own figure where it gives one (conv_dim 8: 45%), else a prior set
here, moved up or down by the evidence named in the rationale (findings, baselines). They
rank the options; they are not measured probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.config import kohya_network_arg
from watcher.report.analysis import outcomes
from watcher.report.history import RunHistory, number
from watcher.report.kohyaedit import with_network_args
from watcher.report.rootcause import ON_TIME_EPOCH, Finding


@dataclass
class Hypothesis:
    name: str
    title: str
    rationale: str
    confidence: float
    changes: dict[str, Any] = field(default_factory=dict)   # kohya option -> new value
    actions: list[str] = field(default_factory=list)        # steps outside the kohya config

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "rationale": self.rationale,
                "confidence": round(self.confidence, 2), "changes": self.changes,
                "actions": self.actions}


def branch(run: RunHistory, findings: Sequence[Finding]) -> str:
    """background | partial | success | early (not enough epochs to say)."""
    kinds = {f.kind for f in findings}
    if kinds & {"background_never", "background_late"}:
        return "background"
    _, best = run.best()
    if best is None or max(run.epochs, default=0) < ON_TIME_EPOCH:
        return "early"
    return "success" if best >= 8.0 else "partial"


def _clamp(x: float) -> float:
    return max(0.05, min(0.95, x))


def hypotheses(run: RunHistory, findings: Sequence[Finding], kohya: dict[str, Any],
               baselines: Sequence[RunHistory] = ()) -> list[Hypothesis]:
    """Next experiments for `run`, best first. `kohya` is this run's flattened kohya config
    (or {}), used for the current values the changes start from."""
    kinds = {f.kind for f in findings}
    params = {**run.flat_params(), **{k: v for k, v in kohya.items() if v is not None}}
    which = branch(run, findings)
    first = run.first_green()
    perfect = next((b for b in baselines if "PERFECT" in b.name), None)
    previous = next((b for b in baselines if "FINAL_CORRECTED" in b.name), None)
    out: list[Hypothesis] = []

    kt = number(params.get("keep_tokens"))
    if which == "background" and (kt is None or kt < 5):
        conf, why = 0.35, []
        kt_text = "unset" if kt is None else f"{kt:g}"
        prev_first = outcomes(previous)["first_green_epoch"] if previous else None
        prev_kt = number(previous.flat_params().get("keep_tokens")) if previous else None
        if first is not None and prev_first is not None and first < prev_first and prev_kt is not None:
            conf += 0.15
            why.append(f"keep_tokens {prev_kt:g} -> {kt_text} already moved the first green epoch "
                       f"from {prev_first} to {first}")
        elif first is None:
            conf -= 0.05
            why.append(f"keep_tokens {kt_text} gave no right background at all, so more of the "
                       "same may not be enough")
        out.append(Hypothesis(
            "keep_tokens_5", "keep_tokens 5", "The plan's alternative if the background is still "
            f"wrong at epoch {ON_TIME_EPOCH}: keep more leading caption tags fixed so the colour "
            "keywords are never shuffled out." + "".join(f" {w[0].upper()}{w[1:]}." for w in why),
            _clamp(conf),
            changes={"keep_tokens": 5}))
    if which == "background":
        conf = 0.45 + (0.15 if perfect is not None else 0.0)
        ev = (f" {perfect.name} reached {outcomes(perfect)['best_score']:g}/10 with simpler "
              "captions." if perfect else "")
        out.append(Hypothesis(
            "simplified_captions", "Simplified captions (6-8 core hex codes)",
            "The plan's first alternative: 12+ hex codes per caption may crowd out the "
            "background colour." + ev, _clamp(conf),
            actions=["re-caption the 203 images with 6-8 core hex codes (keep the background's)",
                     "set [run.dataset] caption_version in the watcher config"]))
        out.append(Hypothesis(
            "caption_restructure", "Background tag among the first keep_tokens tags",
            "keep_tokens only protects the first comma-separated tags: move "
            "'solid green background (#00ff00)' into them (plan: caption restructuring).",
            0.4, actions=["reorder every caption so the background tag comes first"]))
        out.append(Hypothesis(
            "baseline_return", "Return to SD15_PERFECT's simpler captions, add detail step by step",
            "The plan's fallback when the background stays wrong: start again from the "
            "production baseline and add hex codes incrementally.", 0.3,
            actions=["train on SD15_PERFECT's captions; add a few hex codes per run"]))
    if which in ("partial", "early") or kinds & {"oscillation", "quality_traded_for_background"}:
        epochs = number(params.get("max_train_epochs"))
        if which in ("partial", "early") and (epochs is None or epochs < 15):
            conf = 0.4 + (0.15 if "still_improving" in kinds else 0.0) - (0.15 if "plateau" in kinds else 0.0)
            out.append(Hypothesis(
                "epochs_15", "Longer training (15 epochs)",
                "Plan, partial success: same config, 15 epochs."
                + (" The score was still rising at the last epochs." if "still_improving" in kinds else "")
                + (" But the score had flattened out." if "plateau" in kinds else ""),
                _clamp(conf), changes={"max_train_epochs": 15}))
        lr = number(params.get("learning_rate"))
        if lr is None or lr > 5e-5:
            unstable = kinds & {"oscillation", "quality_traded_for_background"}
            conf = 0.4 + (0.15 if unstable else 0.0)
            changes: dict[str, Any] = {"learning_rate": 5e-5}
            for key in ("unet_lr", "text_encoder_lr"):  # these override learning_rate in kohya
                v = number(kohya.get(key))
                if v is not None and lr:
                    changes[key] = v * 5e-5 / lr
            out.append(Hypothesis(
                "learning_rate_5e-5", "Learning rate 5e-5",
                "Plan: a lower learning rate for more stable convergence."
                + (" This run " + " and ".join(sorted(
                    "oscillated" if k == "oscillation" else "lost quality while learning the background"
                    for k in unstable)) + "." if unstable else ""),
                _clamp(conf), changes=changes))
    if which in ("partial", "success", "early"):
        conf = 0.5 if which == "success" else 0.4
        out.append(Hypothesis(
            "dataset_expansion", "Dataset expansion (203 + 50 generated images)",
            "Plan: review the 203 generated images, re-caption the 50-100 best, train on 253; "
            "compare convergence speed and quality.", conf,
            actions=["re-caption 50-100 of the generated images", "add them to train_data_dir",
                     "set [run.dataset] num_images = 253"]))
        conv = number(params.get("conv_dim"))

        if not kohya_network_arg(kohya, "conv_dim") and not conv:

            out.append(Hypothesis(
                "conv_dim_8", "conv_dim 8 / conv_alpha 4",
                "Plan: accessory detail (crown, necklace); medium priority, 45% confidence.",
                0.45, changes={"network_args": with_network_args(
                    kohya.get("network_args"), {"conv_dim": 8, "conv_alpha": 4})}))
    return sorted(out, key=lambda h: -h.confidence)


def render_hypotheses(run: RunHistory, which: str, items: Sequence[Hypothesis]) -> str:
    names = {"background": "background wrong or late", "partial": "quality below 8/10",
             "success": "quality 8+/10", "early": "too early to judge quality"}
    lines = [f"next experiments for {run.name} (branch: {names[which]})"]
    if not items:
        lines.append("  none: nothing in the plan's decision tree applies")
    for i, h in enumerate(items, 1):
        lines.append(f"{i}. {h.title}  [confidence {h.confidence:.0%}]")
        lines.append(f"   why: {h.rationale}")
        for key, value in h.changes.items():
            lines.append(f"   kohya: {key} = {value!r}")
        for step in h.actions:
            lines.append(f"   todo: {step}")
    return "\n".join(lines)
