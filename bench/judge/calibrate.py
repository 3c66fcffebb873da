"""Calibration from reviews (watcher.report.calibration), measured leave-one-run-out on our
own labelled sets, and what the reviewer's score follows, per base-model family.

    .venv/bin/python -m bench.judge.calibrate [--seeds 13 14 15 16] [--draws 10]

The sets are OUR OWN rendered look-alikes (bench.judge.build: DiceBear sprites recoloured and
damaged by recipe, labelled by a written rule before scoring; seed 13 is labels.json, the
others are built the same way), not real held-out LoRA outputs. Each image stands for one
reviewed epoch; images are grouped into pseudo-runs of --run-size epochs of one family
(SD 1.5-like: even 24-cell grid; SDXL-like: uneven cells). For each held-out run and each
number of reviews n, n reviews are drawn from the OTHER runs (--draws times), the fit is made
on them and the held-out run is scored: mean absolute error against the reviewer (1-10),
Spearman within the run, and whether the run's best epoch by the score is one the reviewer
scores highest. Fits: raw (none), the least-squares line on overall_score, the ridge fit.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from bench.judge.build import LABELS, build
from bench.judge.render import render
from evaluators import aggregate_epoch, score_image
from watcher.report.calibration import TEAM_ALPHA, TEAM_FEATURES, _line, fit_team, team_features

REVIEWS = (3, 5, 10, 20, 40, 80, 160)
ALPHA = [TEAM_ALPHA]  # --alpha: to try another penalty without editing the product
# The recipe's faults a reviewer's rule weighs (bench.judge.build's docstring).
FAULTS = ("background_colour_wrong", "background_structure_wrong", "hair_wrong", "skin_wrong", "broken")


def _faults(item: dict) -> dict[str, float]:
    bg, hair, skin = item["background"], item.get("hair") or {}, item.get("skin") or {}
    return {"background_colour_wrong": float(not bg["colour_right"]),
            "background_structure_wrong": float(not bg["structure_right"]),
            "hair_wrong": float(hair.get("right") is False), "skin_wrong": float(skin.get("right") is False),
            "broken": float(item["broken"])}


def epochs_of(items: Sequence[dict], set_name: str) -> list[dict[str, Any]]:
    out = []
    for item in items:
        aggregate = aggregate_epoch([score_image(render(item), item["prompt"], cells=24).to_dict()])
        out.append({"set": set_name, "id": item["id"], "family": "sdxl" if item["uneven"] else "sd15",
                    "auto": aggregate["overall_score"], "features": team_features(aggregate),
                    "human": float(item["labels"]["overall"]), "faults": _faults(item)})
    return out


def pseudo_runs(epochs: list[dict], size: int) -> list[list[dict]]:
    runs = []
    for set_name in dict.fromkeys(e["set"] for e in epochs):
        for family in ("sd15", "sdxl"):
            part = [e for e in epochs if e["set"] == set_name and e["family"] == family]
            runs += [part[i:i + size] for i in range(0, len(part) - size + 1, size)]
    return runs


def judge_run(run: list[dict], predicted: np.ndarray) -> tuple[float, float | None, bool]:
    human = np.array([e["human"] for e in run])
    rho = spearmanr(predicted, human).statistic if np.ptp(predicted) and np.ptp(human) else np.nan
    best = int(np.argmax(predicted))  # the earliest of equal scores, as RunHistory.best does
    return float(np.abs(predicted - human).mean()), None if np.isnan(rho) else float(rho), \
        bool(human[best] == human.max())


def _predict(kind: str, train: list[dict], run: list[dict]) -> np.ndarray:
    auto = np.array([e["auto"] for e in run])
    if kind == "raw":
        return auto
    t_auto, t_human = np.array([e["auto"] for e in train]), np.array([e["human"] for e in train])
    if kind == "line":
        slope, intercept = _line(t_auto, t_human)
        return np.clip(slope * auto + intercept, 1, 10)
    fit = fit_team("overall", t_auto, [e["features"] for e in train], t_human, alpha=ALPHA[0],
                   bootstrap=0, loo=False)
    row = np.column_stack([np.ones(len(run)), [fit._z(e["features"]) for e in run]])
    return np.clip(auto + row @ fit.beta, 1, 10)


def leave_one_run_out(runs: list[list[dict]], draws: int, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    table: dict[str, Any] = {}
    for n in ("raw", *REVIEWS):
        found: dict[str, list[tuple[float, float | None, bool]]] = {"raw": [], "line": [], "ridge": []}
        for i, run in enumerate(runs):
            others = [e for j, r in enumerate(runs) if j != i for e in r]
            if n == "raw":
                found["raw"].append(judge_run(run, _predict("raw", [], run)))
                continue
            for _ in range(draws if n < len(others) else 1):
                train = [others[k] for k in rng.choice(len(others), min(int(n), len(others)), replace=False)]
                for kind in ("line", "ridge"):
                    found[kind].append(judge_run(run, _predict(kind, train, run)))
        for kind, results in found.items():
            if results:
                rhos = [r[1] for r in results if r[1] is not None]
                table[f"{n}/{kind}" if n != "raw" else "raw"] = {
                    "mae": round(float(np.mean([r[0] for r in results])), 3),
                    "spearman_in_run": round(float(np.mean(rhos)), 3),
                    "best_epoch_is_reviewers": round(float(np.mean([r[2] for r in results])), 3)}
    return table


def follows(epochs: list[dict], runs: list[list[dict]]) -> dict[str, Any]:
    """Per family: Spearman of the reviewer's score with each recipe fault, and of the raw and
    the ridge-calibrated (leave-one-run-out, all other runs' reviews) score with the reviewer."""
    calibrated: dict[str, float] = {}
    best: dict[str, list[tuple[bool, bool, float]]] = {"sd15": [], "sdxl": [], "all": []}
    for i, run in enumerate(runs):
        others = [e for j, r in enumerate(runs) if j != i for e in r]
        ridge = _predict("ridge", others, run)
        for e, value in zip(run, ridge, strict=True):
            calibrated[e["set"] + e["id"]] = float(value)
        human = np.array([e["human"] for e in run])
        # the third: a random epoch's chance of being one the reviewer scores highest
        hit = (judge_run(run, _predict("raw", [], run))[2], judge_run(run, ridge)[2],
               float(np.mean(human == human.max())))
        best[run[0]["family"]].append(hit)
        best["all"].append(hit)
    out: dict[str, Any] = {}
    for family in ("sd15", "sdxl", "all"):
        part = [e for e in epochs if family in ("all", e["family"]) and e["set"] + e["id"] in calibrated]
        human = [e["human"] for e in part]
        out[family] = {"n": len(part),
                       "raw": round(float(spearmanr([e["auto"] for e in part], human).statistic), 3),
                       "ridge": round(float(spearmanr([calibrated[e["set"] + e["id"]] for e in part],
                                                      human).statistic), 3),
                       "best_epoch_is_reviewers_raw": round(float(np.mean([b[0] for b in best[family]])), 3),
                       "best_epoch_is_reviewers_ridge": round(float(np.mean([b[1] for b in best[family]])), 3),
                       "best_epoch_by_chance": round(float(np.mean([b[2] for b in best[family]])), 3),
                       "n_runs": len(best[family]),
                       "faults": {f: round(float(spearmanr([e["faults"][f] for e in part], human).statistic), 3)
                                  for f in FAULTS}}
    fit = fit_team("overall", [e["auto"] for e in epochs], [e["features"] for e in epochs],
                   [e["human"] for e in epochs], loo=False)
    out["weights_all"] = {f: [round(w, 2), round(s, 2)] for f, (w, s) in fit.weights().items()
                          if f in TEAM_FEATURES}
    out["offset_all"] = round(float(fit.beta[0]), 2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[13, 14, 15, 16])
    parser.add_argument("--n", type=int, default=150, help="images per built set (seed 13: labels.json)")
    parser.add_argument("--run-size", type=int, default=10)
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--alpha", type=float, default=TEAM_ALPHA)
    args = parser.parse_args(argv)
    ALPHA[0] = args.alpha
    start = time.perf_counter()
    epochs: list[dict] = []
    for seed in args.seeds:
        items = json.loads(LABELS.read_text())["items"] if seed == 13 else build(args.n, seed)
        epochs += epochs_of(items, f"seed{seed}")
    runs = pseudo_runs(epochs, args.run_size)
    result = {"n_epochs": sum(len(r) for r in runs), "n_runs": len(runs),
              "runs_by_family": {f: sum(r[0]["family"] == f for r in runs) for f in ("sd15", "sdxl")},
              "loro": leave_one_run_out(runs, args.draws), "follows": follows(epochs, runs)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(f"{result['n_epochs']} reviewed epochs in {result['n_runs']} pseudo-runs "
          f"({result['runs_by_family']}); leave-one-run-out, {args.draws} draws of n reviews:")
    print(f"{'fit':>10} {'MAE':>6} {'rho/run':>8} {'best ok':>8}")
    for key, row in result["loro"].items():
        print(f"{key:>10} {row['mae']:>6.3f} {row['spearman_in_run']:>8.3f} {row['best_epoch_is_reviewers']:>8.3f}")
    for family in ("sd15", "sdxl", "all"):
        f = result["follows"][family]
        print(f"{family}: n={f['n']} Spearman raw {f['raw']}, ridge {f['ridge']}; best epoch the reviewer's "
              f"in {f['best_epoch_is_reviewers_raw']} of {f['n_runs']} runs (ridge {f['best_epoch_is_reviewers_ridge']}, "
              f"a random epoch {f['best_epoch_by_chance']}); "
              f"reviewer vs faults {f['faults']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
