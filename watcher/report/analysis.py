"""Cross-run analysis: each tracked parameter against each run's outcomes.

Spearman rank correlation (average ranks for ties), computed only over the runs that have
both numbers, with that count beside it: with the handful of runs a LoRA project has, the
count matters more than the coefficient, so fewer than MIN_RUNS gives a warning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from watcher.epoch.decide import PLAN_RULES, verdict
from watcher.metrics import BACKGROUND_METRIC
from watcher.report.history import RunHistory, number
from watcher.summary import cell

DEFAULT_RULES_NOTE = "the default rules (its own were not recorded: a run from before they were)"
MIN_RUNS = 5  # below this a rank correlation says next to nothing
OUTCOMES = ("best_score", "best_epoch", "first_green_epoch", "oscillations")
OUTCOME_MEANING = {
    "best_score": "highest overall score (1-10)",
    "best_epoch": "epoch of the best score",
    "first_green_epoch": "first epoch with the right background (lower is better)",
    "oscillations": "times the background went from right back to wrong",
}


def oscillations(run: RunHistory) -> int:
    """Right -> wrong background transitions between consecutive evaluated epochs."""
    flags = list(run.green().values())
    return sum(1 for a, b in zip(flags, flags[1:], strict=False) if a and not b)


def outcomes(run: RunHistory) -> dict[str, Any]:
    """The run's outcomes; a baseline's stated ones win over what its few epochs show.

    `first_green_epoch` of a run that never got the background right is censored at the
    epoch after its last evaluated one (`first_green_censored` is then True): it ranks
    below every run that did.
    """
    best_epoch, best_score = run.best()
    first = run.first_green()
    censored = False
    if first is None and run.kind == "store" and run.series(BACKGROUND_METRIC):
        first, censored = max(run.series(BACKGROUND_METRIC)) + 1, True
    out: dict[str, Any] = {
        "best_score": best_score,
        "best_epoch": best_epoch,
        "first_green_epoch": first,
        "first_green_censored": censored,
        "oscillations": oscillations(run) if len(run.green()) >= 2 else None,
        "verdict": None,
        "judged_by": None,
    }
    if run.kind == "store" and run.epochs:
        # by its own rules and plan, as its daemon judged it; a run from before they were
        # recorded (Store.judged_by) by the default rules, and `judged_by` says so
        own = run.rules is not None
        rules = run.rules if run.rules is not None else list(PLAN_RULES)
        out["verdict"] = verdict(rules, run.records(), partial_at_least=run.partial_at_least).verdict
        out["judged_by"] = "own rules" if own else DEFAULT_RULES_NOTE
    for key, value in run.stated_outcomes.items():
        out[key] = value
    return out


def rank(values: Sequence[float]) -> list[float]:
    """1-based ranks; tied values share the average of their ranks."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho, or None when either side is constant or there are < 2 pairs."""
    if len(x) != len(y) or len(x) < 2:
        return None
    rx, ry = rank(x), rank(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


@dataclass(frozen=True)
class Correlation:
    parameter: str
    outcome: str
    rho: float | None
    n: int
    runs: tuple[str, ...]
    warning: str
    encoding: str = ""  # how a two-valued text parameter was turned into numbers


def _encode(values: dict[str, Any]) -> tuple[dict[str, float], str, str]:
    """run -> number for one parameter; text parameters with exactly two values become 0/1."""
    numeric = {r: number(v) for r, v in values.items()}
    if all(v is not None for v in numeric.values()):
        return {r: v for r, v in numeric.items() if v is not None}, "", ""
    texts = sorted({str(v) for v in values.values()})
    if len(texts) == 1:
        return {r: 0.0 for r in values}, "", ""
    if len(texts) == 2:
        code = {t: float(i) for i, t in enumerate(texts)}
        return ({r: code[str(v)] for r, v in values.items()},
                f"{texts[0]!r}=0, {texts[1]!r}=1", "")
    return {}, "", f"text with {len(texts)} values: cannot be ranked"


def correlations(runs: Sequence[RunHistory]) -> list[Correlation]:
    """Every tracked parameter against every outcome, over the runs that have both."""
    params: dict[str, dict[str, Any]] = {}
    for run in runs:
        for key, value in run.flat_params().items():
            if value is not None:
                params.setdefault(key, {})[run.name] = value
    results = {run.name: outcomes(run) for run in runs}
    # "Never right" must rank below every run that got the background, however late: put
    # the censored runs one epoch after the latest first-green epoch of any run.
    firsts = [o["first_green_epoch"] for o in results.values() if o["first_green_epoch"] is not None]
    for o in results.values():
        if o["first_green_censored"]:
            o["first_green_epoch"] = max(firsts) + 1
    out: list[Correlation] = []
    for param in sorted(params):
        encoded, encoding, problem = _encode(params[param])
        for outcome in OUTCOMES:
            pairs = [(name, x, number(results[name][outcome])) for name, x in encoded.items()]
            pairs = [(name, x, y) for name, x, y in pairs if y is not None]
            names = tuple(name for name, _, _ in pairs)
            xs = [x for _, x, _ in pairs]
            ys = [float(y) for _, _, y in pairs if y is not None]
            rho = spearman(xs, ys) if not problem else None
            if problem:
                warning = problem
            elif len(pairs) < 2:
                warning = f"only {len(pairs)} run(s) have both"
            elif len(set(xs)) == 1:
                warning = "the parameter does not vary across these runs"
            elif len(set(ys)) == 1:
                warning = "the outcome does not vary across these runs"
            elif len(pairs) < MIN_RUNS:
                warning = f"too few runs (n={len(pairs)} < {MIN_RUNS}): not evidence"
            else:
                warning = ""
            out.append(Correlation(param, outcome, rho, len(pairs), names, warning, encoding))
    return out


def _fmt(value: Any) -> str:
    return cell(value, ".3g")


def render_correlations(runs: Sequence[RunHistory], rows: Sequence[Correlation]) -> str:
    """The runs behind the analysis, then one line per parameter x outcome."""
    lines = [f"{len(runs)} run(s): " + ", ".join(
        f"{r.name} ({'baseline' if r.kind == 'baseline' else f'{len(r.epochs)} epochs'})" for r in runs)]
    lines.append("")
    header = f"{'run':<34} {'best':>5} {'at':>3} {'green':>8} {'osc':>4}  verdict"
    lines.append(header)
    by_default = False
    for run in runs:
        o = outcomes(run)
        green = (f"never<={o['first_green_epoch'] - 1}" if o["first_green_censored"]
                 else _fmt(o["first_green_epoch"]))
        star = "*" if o["judged_by"] == DEFAULT_RULES_NOTE else ""
        by_default |= bool(star)
        lines.append(f"{run.name[:34]:<34} {_fmt(o['best_score']):>5} {_fmt(o['best_epoch']):>3} "
                     f"{green:>8} {_fmt(o['oscillations']):>4}  {o['verdict'] or '-'}{star}")
    lines.append("(green: first epoch with the right background; never<=N: not by epoch N, "
                 "ranked after every run that got it)")
    if by_default:
        lines.append(f"(*: verdict by {DEFAULT_RULES_NOTE})")
    lines.append("")
    by_param: dict[str, list[Correlation]] = {}
    for c in rows:
        by_param.setdefault(c.parameter, []).append(c)
    single = [p for p, cs in by_param.items() if all(c.n < 2 for c in cs)]
    constant = [p for p, cs in by_param.items() if p not in single
                and all(c.n < 2 or "parameter does not vary" in c.warning for c in cs)]
    shown = [c for c in rows if c.parameter not in single and c.parameter not in constant]
    lines.append(f"{'parameter':<22} {'outcome':<18} {'rho':>6} {'n':>3}  note")
    for c in shown:
        note = "; ".join(x for x in (c.encoding, c.warning) if x)
        rho = "-" if c.rho is None else f"{c.rho:+.2f}"
        lines.append(f"{c.parameter[:22]:<22} {c.outcome:<18} {rho:>6} {c.n:>3}  {note}")
    if not shown:
        lines.append("(no parameter varies across runs with known outcomes)")
    if constant:
        lines.append(f"same value in every run that records it: {', '.join(constant)}")
    if single:
        lines.append(f"recorded for one run only: {', '.join(single)}")
    few = sum(1 for c in rows if c.rho is not None and c.n < MIN_RUNS)
    if few:
        lines.append("")
        lines.append(f"WARNING: {few} correlation(s) rest on fewer than {MIN_RUNS} runs; "
                     "treat them as hints for the next experiment, not findings.")
    return "\n".join(lines)
