"""How often the background verdict agrees with the labels of bench/judge/compound_labels.json
(compound and structured requests, written by bench.judge.compound_build before scoring).

    .venv/bin/python -m bench.judge.compound [--colour-match category|exact]

Prints the share of images whose `background_outcome` (match / partly / miss) is the
reviewer's, the share whose `background_match` is (a match or not), both per kind of
request, the confusion matrix and the disagreements; then one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from bench.judge.compound_build import LABELS
from bench.judge.render import render
from evaluators import score_image

OUTCOMES = ("match", "partly", "miss")


def evaluate(items: list[dict], colour_match: str = "category") -> list[dict[str, Any]]:
    rows = []
    for item in items:
        score = score_image(render(item), item["prompt"], cells=24, colour_match=colour_match).to_dict()
        rows.append({"id": item["id"], "kind": item["kind"], "prompt": item["prompt"],
                     "drawn": item["background"], "want": item["labels"]["background_outcome"],
                     "got": score.get("background_outcome"), "match": score["background_match"],
                     "seen": [m["seen_category"] for m in score["per_color"] if m["role"] == "background"]})
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_kind[r["kind"]].append(r)

    def share(items: list[dict[str, Any]], key: str) -> float:
        if key == "outcome":
            return round(float(np.mean([r["got"] == r["want"] for r in items])), 4)
        return round(float(np.mean([bool(r["match"]) == (r["want"] == "match") for r in items])), 4)

    return {
        "n_images": len(rows),
        "outcome_agreement": share(rows, "outcome"), "match_agreement": share(rows, "match"),
        "by_kind": {k: {"n": len(v), "outcome": share(v, "outcome"), "match": share(v, "match")}
                    for k, v in sorted(by_kind.items())},
        "confusion": {f"{w}->{g}": n for (w, g), n in sorted(Counter((r["want"], r["got"]) for r in rows).items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--colour-match", choices=("category", "exact"), default="category")
    args = parser.parse_args(argv)
    items = json.loads(LABELS.read_text())["items"]
    rows = evaluate(items, args.colour_match)
    out = summarise(rows)
    print(f"background outcome (match / partly / miss) agrees: {out['outcome_agreement']}; "
          f"match or not agrees: {out['match_agreement']} ({out['n_images']} images)")
    for kind, v in out["by_kind"].items():
        print(f"  {kind:<11} n={v['n']:<3} outcome {v['outcome']:.3f}  match {v['match']:.3f}")
    for r in rows:
        if r["got"] != r["want"]:
            print(f"  disagrees: {r['id']} {r['prompt']!r} drawn {r['drawn']} -> {r['got']} "
                  f"(seen {', '.join(r['seen'])}), label {r['want']}")
    print(json.dumps({**out, "colour_match": args.colour_match}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
