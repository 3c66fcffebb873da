"""What each page shows, as plain dicts for the templates, built from `watcher.serve.data`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from watcher.metrics import BACKGROUND_METRIC
from watcher.serve import data
from watcher.serve import training as training_view
from watcher.serve.curves import curves_svg
from watcher.summary import fmt

if TYPE_CHECKING:
    from watcher.report.history import RunHistory

METRIC_ROWS = (("background_match_rate", "bg match", ".0%"), ("color_accuracy", "colour", ".1f"),
               ("style_quality", "style q.", ".1f"), ("visual_score", "visual", ".1f"),
               ("style_score", "style", ".1f"), ("prompt_score", "prompt", ".1f"),
               ("overall_score", "overall", ".2f"))


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s} s ago" if s < 120 else f"{s // 60} min ago" if s < 7200 else f"{s // 3600} h ago"


def run_url(src: data.RunSource) -> str:
    return f"/run/{quote(src.name, safe='')}"


def _calibration(run: RunHistory) -> dict[str, Any]:
    n, fits = data.calibration(run)
    return {"reviewed": n, "needed": data.min_reviews(), "fits": fits}


def live(src: data.RunSource) -> dict[str, Any]:
    """The run page's live part: state, decision, epochs, plan criteria, curves."""
    state = data.run_state(src)
    run = data.history(src)
    rules = data.rules(src)
    epochs = []
    for e in (state or {}).get("epochs", []):
        n = e["epoch"]
        review = run.reviews.get(n) if n is not None else None
        epochs.append({**e, "review": review, "evaluated": n in run.epochs,
                       "issues": (run.epochs.get(n) or {}).get("issues") or []})
    verdict = data.verdict(src, run) if run.epochs else {"verdict": "pending", "reasons": []}
    return {
        "state": state, "epochs": epochs, "verdict": verdict,
        "criteria": data.plan_table(run, src) if run.epochs else [],
        "curves": curves_svg(run, rules), "calibration": _calibration(run),
        "training": _training(src, state, epochs),
        "generated": time.strftime("%H:%M:%S"),
    }


def _training(src: data.RunSource, state: dict[str, Any] | None,
              epochs: list[dict[str, Any]]) -> dict[str, Any]:
    """The trainer's figures, curves, GPU and log tail for the run page."""
    series, stored = data.training(src)
    figures = (state or {}).get("training") or {}
    decisions = {e["epoch"]: e["decision"] for e in epochs if e.get("decision")}
    log = (state or {}).get("trainer", {}).get("log") or src.cfg.trainer.log_file
    return {"figures": figures, "rows": training_view.figures_rows(figures),
            "svg": training_view.training_svg(series, decisions),
            "health": figures.get("health") or [], "gpu": figures.get("gpu"),
            "source": figures.get("source"), "log": training_view.log_tail(Path(log)),
            "log_path": str(log), "stored": stored is not None}


def parameters(src: data.RunSource) -> dict[str, Any]:
    """The run's parameters (flattened) and plan (its rules, in words)."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append((prefix, "-" if value is None else str(value)))

    walk("", src.cfg.params())
    plan = [{"name": r.name, "rule": r.describe(), "action": r.action} for r in data.rules(src)]
    return {"params": rows, "plan": plan}


def strip(src: data.RunSource) -> dict[str, Any]:
    """Every sample, prompt by epoch: the recovered pixel grids (small files, shown crisp)."""
    run = data.history(src)
    rows: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for epoch in run.evaluated:
        for img in run.images.get(epoch, []):
            if not img.get("sample_24px"):
                continue
            rows.setdefault((img.get("prompt", ""), img.get("seed")), []).append({
                "epoch": epoch, "url": _file_url(src, run.result_dirs.get(epoch), epoch, img["sample_24px"]),
                "page": f"{run_url(src)}/epoch/{epoch}"})
    return {"rows": [{"prompt": p, "seed": seed, "cells": cells} for (p, seed), cells in rows.items()],
            "epochs": run.evaluated}


def compare_runs(sources: list[data.RunSource]) -> dict[str, Any]:
    """Several runs' curves overlaid: loss by epoch, overall score, background match (%)."""
    loss, score, background = [], [], []
    for src in sources:
        series, _ = data.training(src)
        run = data.history(src)
        loss.append((src.name, training_view.loss_by_epoch(series)))
        score.append((src.name, [(float(e), v) for e, v in sorted(run.series("overall_score").items())]))
        background.append((src.name, [(float(e), v * 100) for e, v in
                                      sorted(run.series(BACKGROUND_METRIC).items())]))
    return {"names": [s.name for s in sources], "svgs": [
        training_view.overlay_svg("loss (kohya's average) by epoch", loss, y_fmt=".3g", x_label="epoch"),
        training_view.overlay_svg("overall score (1-10) by epoch", score, y_fmt="g", x_label="epoch",
                                  y_range=(0.0, 10.0)),
        training_view.overlay_svg("background match (%) by epoch", background, y_fmt="g",
                                  x_label="epoch", y_range=(0.0, 100.0))]}


def _file_url(src: data.RunSource, result_dir: Path | None, epoch: int, rel: str) -> str:
    base = src.results_dir.resolve()
    folder = f"epoch-{epoch:03d}"
    if result_dir is not None:
        try:
            folder = Path(result_dir).resolve().relative_to(base).as_posix()
        except ValueError:
            pass
    return f"{run_url(src)}/files/{quote(folder)}/{quote(rel)}"


def _swatches(image: dict[str, Any]) -> list[dict[str, Any]]:
    """Per named colour: role, phrase, asked hex, seen hex, delta E (from metrics' per_color)."""
    out = []
    for c in image.get("per_color") or []:
        de = c.get("delta_e")
        out.append({"role": c.get("role") or "-", "phrase": c.get("phrase") or "",
                    "asked": c.get("hex"), "seen": c.get("matched_hex"),
                    "delta_e": fmt(de), "ok": isinstance(de, (int, float)) and de <= 10.0})
    return out


def images(src: data.RunSource, run: RunHistory, epoch: int) -> list[dict[str, Any]]:
    out = []
    for img in run.images.get(epoch, []):
        out.append({
            "prompt": img.get("prompt", ""), "seed": img.get("seed"),
            "sample": _file_url(src, run.result_dirs.get(epoch), epoch, img["sample"]) if img.get("sample") else None,
            "small": _file_url(src, run.result_dirs.get(epoch), epoch, img["sample_24px"]) if img.get("sample_24px") else None,
            "background": img.get("background_hex"), "bg_match": img.get("background_match"),
            "scores": [(label, fmt(img.get(k), spec)) for k, label, spec in METRIC_ROWS
                       if k in img and k != "background_match_rate"],
            "unique_colors": img.get("unique_colors"), "issues": img.get("issues") or [],
            "swatches": _swatches(img),
        })
    return out


def decision(run: RunHistory, epoch: int) -> dict[str, Any]:
    ds = run.decisions.get(epoch, [])
    return {"outcome": data.epoch_outcome(ds), "criteria": ds}


def epoch_page(src: data.RunSource, epoch: int) -> dict[str, Any] | None:
    run = data.history(src)
    if epoch not in run.epochs:
        return None
    evaluated = run.evaluated
    i = evaluated.index(epoch)
    agg = run.epochs[epoch]
    return {
        "epoch": epoch, "evaluated": evaluated,
        "prev": evaluated[i - 1] if i > 0 else None,
        "next": evaluated[i + 1] if i + 1 < len(evaluated) else None,
        "aggregate": [(label, fmt(agg.get(k), spec)) for k, label, spec in METRIC_ROWS],
        "issues": agg.get("issues") or [], "images": images(src, run, epoch),
        "decision": decision(run, epoch), "review": run.reviews.get(epoch),
        "earlier_reviews": run.review_history.get(epoch, [])[:-1][::-1],  # newest first
        "calibration": _calibration(run),
    }


def compare_page(src: data.RunSource, a: int, b: int) -> dict[str, Any] | None:
    run = data.history(src)
    if a not in run.epochs or b not in run.epochs:
        return None
    ia, ib = images(src, run, a), images(src, run, b)
    rows = []
    for k in range(max(len(ia), len(ib))):
        left, right = (ia[k] if k < len(ia) else None), (ib[k] if k < len(ib) else None)
        rows.append({"prompt": (left or right or {}).get("prompt", ""), "a": left, "b": right})
    metrics = [(label, fmt(run.epochs[a].get(k), spec), fmt(run.epochs[b].get(k), spec))
               for k, label, spec in METRIC_ROWS]
    return {"a": a, "b": b, "evaluated": run.evaluated, "rows": rows, "metrics": metrics,
            "decision_a": decision(run, a), "decision_b": decision(run, b)}
