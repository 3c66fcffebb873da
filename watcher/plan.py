"""A run's plan as data (`plan.toml`, named by the watcher config's `[run] plan`): what the run
tries, its success criteria, decision points, outcome branches, baselines and next steps.

The rules (`[[criteria]]` of the watcher config) stay the one source for what is judged: a
plan's criterion names a rule, or a check on a metric with its own target; it never restates
a rule's numbers. Validated at load like the config (unknown keys refused; a rule, metric,
branch, finding or baseline that does not exist, a target outside its metric's range, a plan
for another run: one line naming the file and the line). Schema: docs/plan.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, Strict

from watcher.epoch.decide import QUALITY_METRIC, quality_rule
from watcher.errors import ConfigError
from watcher.rules import METRIC_RANGES, METRICS, Rule, range_problem
from watcher.tomllines import Loc, dotted_key

PathT = Annotated[Path, Strict(False)]
# The root-cause findings (watcher.report.rootcause) a step or its evidence may name.
FINDING_KINDS = (
    "background_unmeasured", "background_not_yet", "background_never", "background_late",
    "background_on_time", "oscillation", "quality_traded_for_background", "color_drift",
    "background_hue_wanders", "style_loss", "style_poor", "palette_growth", "still_improving",
    "plateau", "stopped",
)
CHECKS = ("smooth", "kept_while_learnt", "near_baseline", "named_colours")
if TYPE_CHECKING:  # Literal of a runtime tuple: pydantic validates it, mypy sees plain str
    Metric: TypeAlias = str
    Finding: TypeAlias = str
    Check: TypeAlias = str
else:
    Metric, Finding, Check = Literal[METRICS], Literal[FINDING_KINDS], Literal[CHECKS]



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PlanInfo(_Model):
    run: str = Field(min_length=1)          # the run this plan is for
    goal: str = Field(min_length=1)
    expected: str = ""
    confidence: float | None = Field(None, ge=0, le=1)
    source: str = ""                        # where the plan was written down
    tries: dict[str, Any] = {}              # the kohya changes this run makes
    compare_at_epoch: int | None = Field(None, ge=1)  # the baselines table's "score at N"
    # a best overall_score below this is a failure, from it up to the target a partial success
    partial_at_least: float | None = None


class Criterion(_Model):
    """One success criterion: a rule of the config, or a check with its own target."""

    name: str = Field(min_length=1)
    group: Literal["primary", "secondary"] = "primary"
    rule: str | None = None
    judge: Literal["value", "first"] = "value"  # a by/at rule: its value then, or first reached
    check: Check | None = None
    metric: Metric = "overall_score"
    max_drop: float | None = Field(None, ge=0)       # smooth
    baseline: str | None = None                      # near_baseline
    within: float | None = Field(None, ge=0)         # near_baseline
    role: str | None = None                          # named_colours: hair | accessory | ...
    share: float = Field(0.8, ge=0, le=1)            # named_colours
    delta_e: float = Field(10.0, gt=0, le=100)       # named_colours
    epoch: int | None = Field(None, ge=1)            # named_colours: else the best epoch
    issue: list[str] = []                            # named_colours: words of a failing issue


class Expectation(_Model):
    epochs: list[int] = Field(min_length=1)
    title: str = ""
    expect: list[str] = []


class DecisionPoint(_Model):
    after_epoch: int = Field(ge=1)
    question: str = Field(min_length=1)
    rule: str | None = None                  # answered by this rule's decisions
    metric: Metric | None = None             # or by the best value of a metric so far
    at_least: float | None = None
    if_yes: list[str] = Field(min_length=1)
    if_no: list[str] = Field(min_length=1)


class Branch(_Model):
    """An outcome of the run; the first whose condition holds is the run's branch."""

    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    when_fails: list[str] = []               # rules: any failed
    before_epoch: int | None = Field(None, ge=1)  # too early: last evaluated epoch below it
    metric: Metric = "overall_score"
    best_at_least: float | None = None
    steps: list[str] = []                    # the plan's words for this outcome


class Evidence(_Model):
    """Moves a next step's confidence when what it names is true of this run."""

    findings: list[Finding] = []             # any of these root-cause findings
    branch: str | None = None                # the run is on this branch
    baseline: str | None = None              # the baseline is known
    earlier_than: str | None = None          # the background was right earlier than in it
    by: float = Field(ge=-1, le=1)
    says: str = ""  # may use {found}, {baseline}, {best_score}, {first}, {baseline_first}


class NextStep(_Model):
    name: str = Field(min_length=1)
    title: str = Field(min_length=1)
    why: str = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)
    branches: list[str] = []
    findings: list[Finding] = []             # also offered on any of these findings
    changes: dict[str, Any] = {}             # kohya option -> value (network_args: a table)
    actions: list[str] = []
    evidence: list[Evidence] = []


class Summary(_Model):
    verdict: Literal["success", "partial", "failure"] | None = None
    best_epoch: int | None = Field(None, ge=0)
    best_score: float | None = Field(None, ge=0, le=10)
    first_green_epoch: int | None = Field(None, ge=0)
    notes: str = ""


class Baseline(_Model):
    name: str = Field(min_length=1)
    role: str = ""
    source: Literal["file", "store", "supabase", "summary"] = "file"
    file: PathT | None = None                # file: else configs/baselines/<name>.toml
    store: PathT | None = None               # store: else the run's own state store
    summary: Summary | None = None


class Plan(_Model):
    plan: PlanInfo
    criteria: list[Criterion] = []
    expectations: list[Expectation] = []
    decision_points: list[DecisionPoint] = []
    branches: list[Branch] = []
    next_steps: list[NextStep] = []
    baselines: list[Baseline] = []
    path: PathT | None = None                # where it was loaded from

    def baseline(self, name: str) -> Baseline | None:
        return next((b for b in self.baselines if b.name == name), None)


def _in_range(metric: str, value: float, *, span: bool = False) -> str | None:
    """A target outside the metric's range, or (span) a difference wider than the range."""
    if not span:
        return range_problem(metric, value)
    low, high = METRIC_RANGES.get(metric, (float("-inf"), None))
    top = float("inf") if high is None else high
    ok = 0 <= value <= top - low
    return None if ok else f"{value:g} is more than {metric}'s whole range ({low:g}..{top:g})"


def _checks(plan: Plan, rules: dict[str, Rule]) -> list[tuple[Loc, str]]:
    """What is wrong beyond the schema, as (key, message), in file order."""
    bad: list[tuple[Loc, str]] = []
    known = {b.name for b in plan.baselines}
    floor, quality = plan.plan.partial_at_least, quality_rule(list(rules.values()))
    if floor is not None and (why := _in_range(QUALITY_METRIC, floor)):
        bad.append((("plan", "partial_at_least"), why))
    elif floor is not None and quality is not None and floor > quality.threshold:
        bad.append((("plan", "partial_at_least"), f"{floor:g} is above the quality target "
                    f"{quality.threshold:g} of rule {quality.name!r}"))
    for i, c in enumerate(plan.criteria):
        at: Loc = ("criteria", i)
        if (c.rule is None) == (c.check is None):
            bad.append((at, "give exactly one of rule and check"))
        elif c.rule is not None and c.rule not in rules:
            bad.append(((*at, "rule"), f"no rule {c.rule!r} in the config's [[criteria]]"))
        elif c.check == "smooth" and c.max_drop is None:
            bad.append((at, "check 'smooth' needs max_drop"))
        elif c.check == "smooth" and (why := _in_range(c.metric, c.max_drop or 0, span=True)):
            bad.append(((*at, "max_drop"), why))
        elif c.check == "near_baseline" and (c.baseline is None or c.within is None):
            bad.append((at, "check 'near_baseline' needs baseline and within"))
        elif c.check == "near_baseline" and (why := _in_range(c.metric, c.within or 0, span=True)):
            bad.append(((*at, "within"), why))
        elif c.check == "named_colours" and not c.role:
            bad.append((at, "check 'named_colours' needs role"))
        if c.baseline is not None and c.baseline not in known:
            bad.append(((*at, "baseline"), f"no baseline {c.baseline!r} in [[baselines]]"))
    branches = {b.name for b in plan.branches}
    for i, d in enumerate(plan.decision_points):
        at = ("decision_points", i)
        if (d.rule is None) == (d.metric is None):
            bad.append((at, "give exactly one of rule and metric"))
        elif d.rule is not None and d.rule not in rules:
            bad.append(((*at, "rule"), f"no rule {d.rule!r} in the config's [[criteria]]"))
        elif d.metric is not None and d.at_least is None:
            bad.append((at, "a metric needs at_least"))
        elif d.metric is not None and (why := _in_range(d.metric, d.at_least or 0)):
            bad.append(((*at, "at_least"), why))
    for i, b in enumerate(plan.branches):
        for j, r in enumerate(b.when_fails):
            if r not in rules:
                bad.append((("branches", i, "when_fails", j), f"no rule {r!r} in the config's [[criteria]]"))
        if b.best_at_least is not None and (why := _in_range(b.metric, b.best_at_least)):
            bad.append((("branches", i, "best_at_least"), why))
    for i, s in enumerate(plan.next_steps):
        for j, name in enumerate(s.branches):
            if name not in branches:
                bad.append((("next_steps", i, "branches", j), f"no branch {name!r} in [[branches]]"))
        for j, e in enumerate(s.evidence):
            if e.branch is not None and e.branch not in branches:
                bad.append((("next_steps", i, "evidence", j, "branch"), f"no branch {e.branch!r} in [[branches]]"))
            for key in ("baseline", "earlier_than"):
                name = getattr(e, key)
                if name is not None and name not in known:
                    bad.append((("next_steps", i, "evidence", j, key), f"no baseline {name!r} in [[baselines]]"))
    return bad


def _find_baselines(plan: Plan, base: Path, state_db: Path | None) -> list[tuple[Loc, str]]:
    """Each baseline can be found where it says (Supabase: only when the report asks)."""
    from watcher.report.baselines import BASELINES_DIR, BaselineError, load_baseline

    bad: list[tuple[Loc, str]] = []
    for i, b in enumerate(plan.baselines):
        at: Loc = ("baselines", i)
        if b.source == "file":
            path = (base / b.file) if b.file else BASELINES_DIR / f"{b.name}.toml"
            try:
                found = load_baseline(path) if path.is_file() else None
            except BaselineError as exc:
                bad.append((at, str(exc)))
                continue
            if found is None:
                bad.append((at, f"baseline {b.name!r}: no file {path}"))
            elif found.name != b.name:
                bad.append((at, f"baseline {b.name!r}: {path.name} is for {found.name!r}"))
        elif b.source == "summary" and b.summary is None:
            bad.append((at, f"baseline {b.name!r}: source 'summary' needs [baselines.summary]"))
        elif b.source == "store":
            db = (base / b.store) if b.store else state_db
            if db is None or not db.is_file() or not _store_has(db, b.name):
                bad.append((at, f"baseline {b.name!r}: not in the state store {db}"))
    return bad


def _store_has(db: Path, name: str) -> bool:
    from watcher.store import Store

    with Store(db) as store:
        return store.run_row(name) is not None


def load_plan(path: Path, *, run: str | None, rules: list[Rule], state_db: Path | None = None) -> Plan:
    """Read and validate a plan. `run`: the config's run name (None: any), `rules`: the
    config's rules, `state_db`: where `source = "store"` baselines are looked for."""
    from watcher.config import read_model

    plan, _, lines = read_model(path, "plan file", Plan)
    bad: list[tuple[Loc, str]] = []
    if run is not None and plan.plan.run != run:
        bad.append((("plan", "run"), f"this plan is for run {plan.plan.run!r}, the config's run is {run!r}"))
    base = path.resolve().parent
    bad += _checks(plan, {r.name: r for r in rules}) + _find_baselines(plan, base, state_db)
    if bad:
        loc, msg = min(bad, key=lambda b: lines.find(b[0]) or 0)
        line = lines.find(loc)
        raise ConfigError(f"{path}{f':{line}' if line else ''}: {dotted_key(loc)}: {msg}")
    return plan.model_copy(update={"path": path.resolve(), "baselines": [
        b.model_copy(update={"file": base / b.file if b.file else None,
                             "store": base / b.store if b.store else None})
        for b in plan.baselines]})


def partial_at_least(plan: Plan | None) -> float | None:
    """The plan's line between a partial success and a failure (None: no plan, or not set)."""
    return plan.plan.partial_at_least if plan is not None else None
