"""The one place where `epochwatch serve` reads and writes run state.

Every read goes through the public functions the other commands use (`status.collect`,
`report.history.load_run`, `report.plan.plan_criteria`, `report.calibration.calibrate`) and
the one write (a review) through the same functions as `epochwatch review`, so a change to the
store or its record types is adapted here and nowhere else in `watcher.serve`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watcher.commands._common import load
from watcher.commands.review import MAX_NOTES, clean_notes, enqueue_review, review_row
from watcher.config import WatchConfig
from watcher.rules import Decision, Rule
from watcher.store import Store

if TYPE_CHECKING:  # the report modules are imported when a page needs them
    from watcher.report.calibration import Calibration
    from watcher.report.history import RunHistory
    from watcher.report.plan import CriterionResult

SCORE_FIELDS = ("visual", "style", "prompt")


class ServeError(Exception):
    """Bad input from a page or a config that cannot be served; the message is shown as is."""


@dataclass(frozen=True)
class RunSource:
    """One served run: its config and where its state and results live."""

    name: str
    config_path: Path
    cfg: WatchConfig

    @property
    def state_db(self) -> Path:
        return Path(self.cfg.state_db)

    @property
    def results_dir(self) -> Path:
        return Path(self.cfg.run_results_dir)


def load_sources(paths: list[str]) -> list[RunSource]:
    """Load every config (one-line CommandError on a bad one); run names must be unique."""
    sources: list[RunSource] = []
    for p in paths:
        cfg = load(p)
        if any(s.name == cfg.run.name for s in sources):
            raise ServeError(f"two configs name the same run {cfg.run.name!r}: {p}")
        sources.append(RunSource(cfg.run.name, Path(p).resolve(), cfg))
    return sources


def _store(src: RunSource) -> Store | None:
    # Opening a Store creates the database; a page must never create state, so a run whose
    # daemon has not started yet is shown as such instead.
    return Store(src.state_db) if src.state_db.is_file() else None


def run_state(src: RunSource) -> dict[str, Any] | None:
    """What `epochwatch status --json` prints, or None before the daemon's first start."""
    from watcher.commands.status import collect

    store = _store(src)
    if store is None:
        return None
    with store:
        return collect(src.cfg, store)


def history(src: RunSource) -> RunHistory:
    """The run's `RunHistory` (aggregates, images, decisions, reviews), or an empty one."""
    from watcher.report.history import RunHistory, load_run

    store = _store(src)
    if store is None:
        return RunHistory(name=src.name, params=src.cfg.params())
    with store:
        run = load_run(store, src.name)
    if not run.params:
        run.params = src.cfg.params()
    # The pages read reviews as plain mappings, whatever the store returns.
    run.reviews = {e: plain(r) for e, r in run.reviews.items()}
    return run


def plain(row: Any) -> dict[str, Any]:
    """A store row (mapping, dataclass or record object) as a dict."""
    if isinstance(row, Mapping):
        return dict(row)
    if is_dataclass(row) and not isinstance(row, type):
        return asdict(row)
    return dict(vars(row))


def epoch_outcome(decisions: list[Decision]) -> str | None:
    """An epoch's decision (stop / alert / continue) as `epochwatch status` reports it."""
    from watcher.commands.status import _epoch_decision

    return _epoch_decision(decisions)


def plan_table(run: RunHistory, src: RunSource | None = None) -> list[CriterionResult]:
    """The run's success criteria judged on the history (`report.plan.plan_criteria`): its
    plan's when it has one, else its rules."""
    from watcher.report.baselines import plan_baselines
    from watcher.report.plan import plan_criteria
    from watcher.report.rootcause import on_time_epoch, root_cause

    plan = src.cfg.plan if src is not None else None
    found = rules(src) if src is not None else []
    # local baselines only: a page refresh must not wait on Supabase
    bases = plan_baselines(plan, src.cfg.state_db, remote=False)[0] if src is not None and plan else []
    return plan_criteria(run, root_cause(run, on_time_epoch(found)), bases, found, plan)


def verdict(src: RunSource, run: RunHistory) -> dict[str, Any]:
    from watcher.report.plan import verdict_of

    return verdict_of(run, rules(src), src.cfg.plan).to_dict()


def calibration(run: RunHistory) -> tuple[int, list[Calibration]]:
    """(reviewed epochs, calibrations); the list stays empty below MIN_REVIEWS."""
    from watcher.report.calibration import calibrate

    return len(run.reviews), calibrate(run)


def min_reviews() -> int:
    from watcher.report.calibration import MIN_REVIEWS

    return MIN_REVIEWS


def score(name: str, raw: str) -> float:
    """A whole number 1-10 in ASCII digits (not `5.5`, `1_0` or fullwidth digits, which
    float() accepts); a wrong value is echoed shortened."""
    if not re.fullmatch(r"10|[1-9]", raw):
        shown = raw if len(raw) <= 12 else raw[:12] + "..."
        raise ServeError(f"{name} must be a whole number from 1 to 10, not {shown!r}")
    return float(raw)


def save_review(src: RunSource, epoch: int, visual: float, style: float, prompt: float,
                notes: str) -> None:
    """Store a review exactly as `epochwatch review` does: the state store's reviews table,
    and the Supabase outbox (sent when Supabase is enabled)."""
    notes = clean_notes(notes)
    if len(notes) > MAX_NOTES:
        raise ServeError(f"notes are {len(notes)} characters; at most {MAX_NOTES}")
    store = _store(src)
    if store is None:
        raise ServeError(f"no state database at {src.state_db}: has the daemon run yet?")
    with store:
        evaluated = {e.epoch for e in store.evaluations(src.name)}
        if epoch not in evaluated:
            raise ServeError(f"epoch {epoch} of {src.name} has no evaluation")
        store.save_review(src.name, epoch, visual, style, prompt, notes)
        enqueue_review(store, src.name, epoch, review_row(src.name, epoch, visual, style, prompt, notes))


def rules(src: RunSource) -> list[Rule]:
    """The config's criteria as `watcher.rules.Rule`s."""
    return [Rule.from_config(c) for c in src.cfg.criteria]


def training(src: RunSource) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(tag -> points, the latest figures/health/gpu) of the trainer (watcher.training)."""
    from watcher.training.storage import load_series, load_state

    store = _store(src)
    if store is None:
        return {}, None
    with store:
        return load_series(store, src.name), load_state(store, src.name)
