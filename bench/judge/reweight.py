"""Fit the reviewer's fault points (evaluators.faults.FAULT_POINTS) on some labelled seeds and
report, on held-out seeds, how the 1-10 overall ranks like the reviewer before -> after.

    .venv/bin/python -m bench.judge.reweight [--fit-seeds 14 15 16] [--report-seeds 13 17]

Sets: bench.judge.build's recipes (seed 13 is labels.json, 180 images; any other seed is built
the same way, --n images), labelled by the builder's written rule before anything is scored.
The fit: non-negative least squares of (reviewer - overall before) on the issues each image
shows, with a free offset that is NOT applied (the reviewer's level is calibration's job,
watcher.report.calibration; a clean image keeps its score): each fault's points are what the
reviewer takes off beyond what the visual, style and prompt scores already take. A fault seen
on fewer than MIN_SEEN fit images is not fitted (0). "Before" is overall = mean(visual, style,
prompt); "after" is the product's overall_score with the table in evaluators/faults.py.

Reported per held-out seed and pooled, before -> after: Spearman with the reviewer over all
images and per family (SD 1.5-like: even 24-cell grid; SDXL-like: uneven cells), the mean
Spearman within pseudo-runs (--run-size images of one family stand for one run's epochs, as
in bench.judge.calibrate) and the share of runs whose best epoch (the earliest highest score,
as RunHistory.best) is one the reviewer scores highest.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import lsq_linear
from scipy.stats import spearmanr

from bench.judge.agreement import evaluate
from bench.judge.build import LABELS, build
from bench.judge.calibrate import judge_run, pseudo_runs
from evaluators.faults import FAULT_POINTS

# Faults a reviewer weighs that the evaluators report as issues (evaluators.score._issues).
FAULTS = ("wrong_background", "wrong_background_structure", "not_pixel_art", "wrong_hair",
          "wrong_skin", "missing_colors", "off_palette")
MIN_SEEN = 10
STEP = 0.25  # the table is rounded to quarter points: finer is noise


def rows_of(seed: int, n: int) -> list[dict[str, Any]]:
    """One row per image: the set, family, reviewer's 1-10, issues, overall before and after."""
    items = json.loads(LABELS.read_text())["items"] if seed == 13 else build(n, seed)
    _, scored = evaluate(items)
    out = []
    for r in scored:
        parts = [v for v in (r["visual"], r["style"], r["prompt"]) if v is not None]
        out.append({"set": f"seed{seed}", "id": r["id"], "family": "sdxl" if r["uneven"] else "sd15",
                    "human": float(r["labels"]["overall"]), "issues": r["issues"],
                    "before": round(sum(parts) / len(parts), 2), "after": r["overall"]})
    return out


def fit_points(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Non-negative points per fault (and the unapplied offset), least squares, on `rows`."""
    seen = {f: sum(f in r["issues"] for r in rows) for f in FAULTS}
    fitted = [f for f in FAULTS if seen[f] >= MIN_SEEN]
    x = np.column_stack([np.ones(len(rows))] + [[-float(f in r["issues"]) for r in rows] for f in fitted])
    y = np.array([r["human"] - r["before"] for r in rows])
    lower = [-np.inf] + [0.0] * len(fitted)
    solution = lsq_linear(x, y, bounds=(lower, np.inf)).x
    points = {f: 0.0 for f in FAULTS}
    for f, p in zip(fitted, solution[1:], strict=True):
        points[f] = float(np.round(p / STEP) * STEP)
    return {"points": points, "offset": round(float(solution[0]), 2), "seen": seen, "n": len(rows)}


def _spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return round(float(spearmanr(a, b).statistic), 3)


def ranking(rows: Sequence[dict[str, Any]], key: str, run_size: int) -> dict[str, Any]:
    """How `key` (a 1-10 score in each row) ranks rows like the reviewer ("human")."""
    out: dict[str, Any] = {"n": len(rows)}
    for family in ("all", "sd15", "sdxl"):
        part = [r for r in rows if family in ("all", r["family"])]
        out[f"spearman_{family}"] = _spearman([r[key] for r in part], [r["human"] for r in part])
    runs = pseudo_runs(list(rows), run_size)
    judged = [judge_run(run, np.array([e[key] for e in run])) for run in runs]
    out["n_runs"] = len(runs)
    out["spearman_by_run"] = [None if j[1] is None else round(j[1], 3) for j in judged]
    for family in ("all", "sd15", "sdxl"):
        part = [j for j, run in zip(judged, runs, strict=True) if family in ("all", run[0]["family"])]
        rhos = [j[1] for j in part if j[1] is not None]
        suffix = "" if family == "all" else f"_{family}"
        out[f"spearman_in_run{suffix}"] = round(float(np.mean(rhos)), 3) if rhos else None
        out[f"best_epoch_is_reviewers{suffix}"] = round(float(np.mean([j[2] for j in part])), 3) if part else None
    return out


def compare(rows: Sequence[dict[str, Any]], run_size: int) -> dict[str, Any]:
    before, after = ranking(rows, "before", run_size), ranking(rows, "after", run_size)
    pairs = [(b, a) for b, a in zip(before["spearman_by_run"], after["spearman_by_run"], strict=True)
             if b is not None and a is not None]
    runs = {"better": sum(a > b for b, a in pairs), "same": sum(a == b for b, a in pairs),
            "worse": sum(a < b for b, a in pairs)}
    return {"before": before, "after": after, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit-seeds", type=int, nargs="+", default=[14, 15, 16])
    parser.add_argument("--report-seeds", type=int, nargs="+", default=[13, 17])
    parser.add_argument("--n", type=int, default=150, help="images per built set (seed 13: labels.json)")
    parser.add_argument("--run-size", type=int, default=10)
    args = parser.parse_args(argv)
    if set(args.fit_seeds) & set(args.report_seeds):
        parser.error("a seed cannot be both fitted on and reported on")
    start = time.perf_counter()
    fit_rows = [r for seed in args.fit_seeds for r in rows_of(seed, args.n)]
    fit = fit_points(fit_rows)
    result: dict[str, Any] = {"fit_seeds": args.fit_seeds, "fit": fit, "table": dict(FAULT_POINTS),
                              "table_is_fit": all(FAULT_POINTS.get(f, 0.0) == p for f, p in fit["points"].items()),
                              "in_sample": compare(fit_rows, args.run_size), "held_out": {}}
    held: list[dict[str, Any]] = []
    for seed in args.report_seeds:
        rows = rows_of(seed, args.n)
        held += rows
        result["held_out"][f"seed{seed}"] = compare(rows, args.run_size)
    result["held_out"]["pooled"] = compare(held, args.run_size)
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"fitted on seeds {args.fit_seeds} ({fit['n']} images): points {fit['points']}, "
          f"offset {fit['offset']} (not applied); seen {fit['seen']}")
    print(f"evaluators.faults.FAULT_POINTS {'is' if result['table_is_fit'] else 'IS NOT'} this fit")
    print(f"{'set':>14} {'rho all':>15} {'rho sd15':>15} {'rho sdxl':>15} {'rho in run':>15} {'best epoch':>15} "
          "runs (rho in run after vs before)")
    for name, part in [("fit (in sample)", result["in_sample"]), *result["held_out"].items()]:
        b, a = part["before"], part["after"]
        cells = [f"{b[k]} -> {a[k]}" for k in ("spearman_all", "spearman_sd15", "spearman_sdxl",
                                                 "spearman_in_run", "best_epoch_is_reviewers")]
        runs = part["runs"]
        print(f"{name:>14} " + " ".join(f"{c:>15}" for c in cells)
              + f" {a['n_runs']} ({runs['better']} better, {runs['same']} same, {runs['worse']} worse)")
        for family in ("sd15", "sdxl"):
            print(f"{family + ' runs':>14} {'':>15} {'':>15} {'':>15} "
                  + " ".join(f"{str(b[k]) + ' -> ' + str(a[k]):>15}"
                             for k in (f"spearman_in_run_{family}", f"best_epoch_is_reviewers_{family}")))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
