"""Baseline runs from `configs/baselines/*.toml`: what the plan knows of earlier runs,
loaded as `RunHistory`s so the report and the analyses treat them like stored runs.

File shape: `[run]` (name, source, notes), `[params.<group>]` (the plan's "Parameters to
Track" groups), `[outcomes]` (verdict, best_epoch, best_score, first_green_epoch as the plan
states them) and `[[epochs]]` (epoch plus any `aggregate` metric names, and a `note`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from watcher.report.history import RunHistory, number

BASELINES_DIR = Path(__file__).resolve().parents[2] / "configs" / "baselines"
EPOCH_METRICS = frozenset({
    "background_match_rate", "color_accuracy", "style_quality", "visual_score", "style_score",
    "prompt_score", "overall_score", "unique_colors",
})
OUTCOME_KEYS = frozenset({"verdict", "best_epoch", "best_score", "first_green_epoch"})


class BaselineError(ValueError):
    """A baseline file that cannot be used; the message names the file and the key."""


def load_baseline(path: Path) -> RunHistory:
    where = path.name
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise BaselineError(f"{where}: cannot read baseline: {exc}") from None
    run = data.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not run["name"]:
        raise BaselineError(f"{where}: [run] name is required")
    params = data.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise BaselineError(f"{where}: [params] must hold tables such as [params.data]")
    outcomes = data.get("outcomes", {})
    if not isinstance(outcomes, dict) or not set(outcomes) <= OUTCOME_KEYS:
        raise BaselineError(f"{where}: [outcomes] keys must be among {', '.join(sorted(OUTCOME_KEYS))}")
    history = RunHistory(name=run["name"], params=params, kind="baseline", source=str(path),
                         notes=str(run.get("notes", "")), stated_outcomes=dict(outcomes))
    for i, entry in enumerate(data.get("epochs", [])):
        epoch = entry.get("epoch") if isinstance(entry, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise BaselineError(f"{where}: epochs[{i}].epoch must be a whole number >= 0")
        metrics: dict[str, Any] = {}
        for key, value in entry.items():
            if key in ("epoch", "note"):
                continue
            if key not in EPOCH_METRICS:
                raise BaselineError(f"{where}: epochs[{i}].{key}: unknown metric")
            if number(value) is None:
                raise BaselineError(f"{where}: epochs[{i}].{key}: not a number")
            metrics[key] = float(value)
        if "note" in entry:
            metrics["note"] = str(entry["note"])
        history.epochs[epoch] = metrics
    return history


def load_baselines(folder: Path | None = None) -> list[RunHistory]:
    """Every `*.toml` in the baselines folder, by file name."""
    folder = BASELINES_DIR if folder is None else folder
    return [load_baseline(p) for p in sorted(folder.glob("*.toml"))]


def supabase_rows(run: RunHistory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A baseline as a `training_runs` row (kind 'baseline', migration 0004) and its
    `epoch_evaluations` rows, for `epochwatch baselines push`. Reading them back
    (`watcher.report.remote`) gives the same RunHistory as the file."""
    from watcher.publish.supabase import _json_safe, epoch_row, run_row

    outcomes = run.stated_outcomes
    best = outcomes.get("best_epoch")
    row = run_row(run.name, "finished", run.params, verdict=outcomes.get("verdict"),
                  best_epoch=best if isinstance(best, int) and not isinstance(best, bool) else None)
    row.update(_json_safe({"kind": "baseline", "notes": run.notes, "stated_outcomes": outcomes}))
    epochs = []
    for epoch, metrics in sorted(run.epochs.items()):
        e = epoch_row(run.name, epoch, {"aggregate": metrics}, None, "baseline")
        e["observations"] = str(metrics.get("note", ""))
        e["evaluated_at"] = None  # the plan's numbers, not an evaluation made now
        epochs.append(e)
    return row, epochs


def plan_baselines(plan: Any, state_db: Path | None,
                   remote: bool = True) -> tuple[list[RunHistory], list[str]]:
    """The runs a plan (`watcher.plan.Plan`) compares with, and a line for each one that
    cannot be had now (a Supabase baseline while Supabase is down): the report says so and
    is written all the same. remote=False leaves the Supabase ones out."""
    from watcher.report.history import load_run
    from watcher.store import Store

    runs: list[RunHistory] = []
    missing: list[str] = []
    found: dict[str, RunHistory] | None = None  # Supabase's runs, read once
    down = ""
    for b in plan.baselines:
        if b.source == "file":
            try:
                runs.append(load_baseline(b.file or BASELINES_DIR / f"{b.name}.toml"))
            except BaselineError as exc:  # edited since the config was loaded
                missing.append(f"baseline {b.name}: {exc}")
        elif b.source == "summary":
            s = b.summary
            stated = {k: v for k, v in s.model_dump().items() if k != "notes" and v is not None}
            runs.append(RunHistory(name=b.name, kind="baseline", source=str(plan.path),
                                   notes=s.notes, stated_outcomes=stated))
        elif b.source == "store":
            db = b.store or state_db
            if db is None or not Path(db).is_file():
                missing.append(f"baseline {b.name}: no state store at {db}")
                continue
            with Store(Path(db)) as store:
                if store.run_row(b.name) is None:
                    missing.append(f"baseline {b.name}: not in the state store {db}")
                    continue
                runs.append(load_run(store, b.name))
        elif remote:
            if found is None:
                try:
                    found = _remote_runs()
                except Exception as exc:  # noqa: BLE001 - Supabase down: say so, go on
                    found, down = {}, " ".join(str(exc).split())[:200]
            if b.name in found:
                runs.append(found[b.name])
            elif down:
                missing.append(f"baseline {b.name} is only in Supabase, which cannot be read "
                               f"now ({down}); compared without it")
            else:
                missing.append(f"baseline {b.name}: not in Supabase")
    return runs, missing


def _remote_runs() -> dict[str, RunHistory]:
    from watcher.report.remote import SupabaseReader, load_records

    with SupabaseReader.from_env() as reader:
        return {r.history.name: r.history for r in load_records(reader)}
