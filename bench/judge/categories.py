"""Validate the colour-category model on the xkcd survey's own names.

    .venv/bin/python -m bench.judge.categories [--markdown]

For every xkcd colour whose name ends in a basic colour word (red, orange, yellow, green,
blue, purple, pink, brown, grey/gray, black, white), the judge classifies the colour with
that very name left out of the vote (leave-one-out) and we check that it agrees with the
name: the judged category is one the name's category accepts (evaluators.colornames.ACCEPT:
a light brown filed as beige counts as brown). The name's category is its head word, except
that a teal or olive modifier makes it teal / olive ("teal green", "olive green"), as the
judge defines those apart. Reported on all such names, and on the names whose other words
name no second hue ("dark green" yes, "blue green" no: those sit between two categories by
their very name). Prints both, the misses, the confusion matrix, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import numpy as np

from evaluators.color import hex_to_rgb, to_lab
from evaluators.colornames import (
    ACCEPT,
    BASIC,
    CATEGORIES,
    XKCD_COLORS,
    accepted,
    categories_of,
    classify_lab,
    head_category,
    other_hue,
)


def rows(borderline: bool = False) -> list[tuple[str, str, str, bool]]:
    """(name, name's category, judged category, name names a second hue); with `borderline`
    the judged entry is evaluators.colornames.categories_of's ("olive|green")."""
    names = [k[5:] for k in XKCD_COLORS if k[5:].replace("gray", "grey").split()[-1] in BASIC]
    rgb = np.array([hex_to_rgb(XKCD_COLORS["xkcd:" + n]) for n in names], dtype=np.uint8)
    judged = (categories_of if borderline else classify_lab)(to_lab(rgb), exclude_self=True)
    out = []
    for name, got in zip(names, judged, strict=True):
        clean = name.replace("gray", "grey")
        out.append((name, head_category(clean) or "", got, other_hue(clean)))
    return out


def agreement(items: list[tuple[str, str, str, bool]]) -> float:
    return float(np.mean([accepted(got, ACCEPT[want]) for _, want, got, _ in items]))


def borderline_figures() -> dict[str, float]:
    """Borderline colours (a runner-up category with BORDER_SHARE of the vote) meet targets
    of either category: how often the name's own category is met that way, and how often a
    single-hue name would also meet a target of another category (the cost)."""
    single = [r for r in rows(borderline=True) if not r[3]]
    wrong_too = [accepted(got, frozenset(c for c in CATEGORIES if c not in ACCEPT[want]))
                 for _, want, got, _ in single]
    return {"single_hue_agreement_borderline": round(agreement(single), 4),
            "single_hue_also_another": round(float(np.mean(wrong_too)), 4)}


def confusion_markdown(items: list[tuple[str, str, str, bool]]) -> str:
    wants = [c for c in CATEGORIES if any(w == c for _, w, _, _ in items)]
    counts = Counter((w, g) for _, w, g, _ in items)
    head = "| name's category \\ judged | " + " | ".join(CATEGORIES) + " | agree |"
    lines = [head, "|---" * (len(CATEGORIES) + 2) + "|"]
    for w in wants:
        row = [counts[(w, g)] for g in CATEGORIES]
        total = sum(row)
        ok = sum(counts[(w, g)] for g in ACCEPT[w])
        lines.append(f"| {w} | " + " | ".join(str(v) if v else "." for v in row) + f" | {ok}/{total} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the confusion matrices")
    args = parser.parse_args(argv)
    items = rows()
    single = [r for r in items if not r[3]]
    misses = [(n, w, g) for n, w, g, two in items if g not in ACCEPT[w] and not two]
    print(f"single-hue names: {agreement(single):.4f} agree (n={len(single)}); "
          f"all names ending in a basic colour word: {agreement(items):.4f} (n={len(items)})")
    print("single-hue misses: " + ", ".join(f"{n} ({w}->{g})" for n, w, g in misses))
    if args.markdown:
        print("\nSingle-hue names:\n\n" + confusion_markdown(single))
        print("\nAll names:\n\n" + confusion_markdown(items))
    border = borderline_figures()
    print(f"borderline colours meet either category: single-hue names met {border['single_hue_agreement_borderline']:.4f}; "
          f"also met as another category {border['single_hue_also_another']:.4f}")
    print(json.dumps({"single_hue_agreement": round(agreement(single), 4), "n_single_hue": len(single),
                      "all_agreement": round(agreement(items), 4), "n_all": len(items), **border}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
