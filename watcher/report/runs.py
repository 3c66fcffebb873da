"""The runs list (`epochwatch runs`): one summary per run, from state stores or Supabase.

A `RunRecord` is what both sources give: the run's `RunHistory` plus the facts the list needs
besides metrics (the run's verdict, each epoch's decision word, the host it ran on). One
`summary()` turns it into the row shown, so both sources answer alike. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watcher.report.history import RunHistory, load_run, run_names
from watcher.store import Store
from watcher.summary import cell

SUMMARY_KEYS = ("run", "kind", "state", "epochs_evaluated", "first_green_epoch", "best_epoch",
                "best_score", "decision", "host", "gpu", "gpu_memory_mb", "results")


@dataclass
class RunRecord:
    history: RunHistory
    verdict: str | None = None
    decisions: dict[int, str] = field(default_factory=dict)  # epoch -> stop | alert | continue
    host: dict[str, Any] = field(default_factory=dict)  # watcher.publish.host.describe keys
    commits: dict[int, str] = field(default_factory=dict)


def _epoch_words(store: Store, run: str) -> dict[int, str]:
    """Each evaluated epoch's decision word, from the decisions its evaluation recorded (the
    same word the daemon sent to Supabase)."""
    from watcher.rules import decision_word

    words: dict[int, str] = {}
    for ev in store.evaluations(run):  # the latest evaluation of an epoch wins
        words[ev.epoch] = decision_word(ev.decisions)
    return words


def load_store_records(path: Path) -> list[RunRecord]:
    """Every run of one state database (it must exist: opening would create it)."""
    from watcher.publish.host import recorded

    if not path.is_file():
        raise FileNotFoundError(f"no state database at {path}")
    out = []
    with Store(path) as store:
        host = recorded(store.conn)
        for name in run_names(store):
            row = store.run_row(name)
            commits = {e.epoch: e.git_commit for e in store.evaluations(name) if e.git_commit}
            out.append(RunRecord(history=load_run(store, name), verdict=row.verdict if row else None,
                                 decisions=_epoch_words(store, name), host=dict(host), commits=commits))
    return out


def run_decision(record: RunRecord) -> str | None:
    """The run's decision: its verdict once it is over; else the first stop (it stands while
    the trainer winds down); else the latest epoch's word."""
    if record.history.kind == "baseline":
        return record.verdict or record.history.stated_outcomes.get("verdict")
    if record.verdict and record.verdict != "pending" and record.history.status != "running":
        return record.verdict
    words = record.decisions
    stops = sorted(e for e, w in words.items() if w == "stop")
    if stops:
        return f"stop at epoch {stops[0]}"
    if words:
        last = max(words)
        return f"{words[last]} (epoch {last})"
    return None


def summary(record: RunRecord) -> dict[str, Any]:
    """The runs-list row of one run (keys SUMMARY_KEYS)."""
    h = record.history
    best_epoch, best_score = h.best()
    first = h.first_green()
    if h.kind == "baseline":  # the plan's stated outcomes win over its few recorded epochs
        best_epoch = h.stated_outcomes.get("best_epoch", best_epoch)
        best_score = h.stated_outcomes.get("best_score", best_score)
        first = h.stated_outcomes.get("first_green_epoch", first)
    host = record.host
    results = host.get("results_location")
    if host.get("results_remote"):
        results = f"{results} (remote {host['results_remote']})" if results else host["results_remote"]
    return {
        "run": h.name,
        "kind": "baseline" if h.kind == "baseline" else "run",
        "state": "baseline" if h.kind == "baseline" else (h.status or "unknown"),
        "epochs_evaluated": len(h.epochs),
        "first_green_epoch": first,
        "best_epoch": best_epoch,
        "best_score": best_score,
        "decision": run_decision(record),
        "host": host.get("host"),
        "gpu": host.get("gpu_name"),
        "gpu_memory_mb": host.get("gpu_memory_mb"),
        "results": results,
    }


def sort_records(records: list[RunRecord]) -> list[RunRecord]:
    """Runs by name, then baselines by name: the same order from every source."""
    return sorted(records, key=lambda r: (r.history.kind == "baseline", r.history.name))


def _cell(value: Any) -> str:
    return cell(value, ".2f")


def render(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table, one run a line; the results location last (it is long)."""
    if not rows:
        return "no runs"
    header = ("run", "state", "epochs", "green", "best", "score", "decision", "host", "gpu", "results")
    table = [[_cell(r["run"]), _cell(r["state"]), _cell(r["epochs_evaluated"]),
              _cell(r["first_green_epoch"]), _cell(r["best_epoch"]), _cell(r["best_score"]),
              _cell(r["decision"]), _cell(r["host"]),
              _cell(r["gpu"]) + (f" {r['gpu_memory_mb'] // 1024} GiB" if r["gpu_memory_mb"] else ""),
              _cell(r["results"])] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(t, widths, strict=True)).rstrip() for t in table]
    lines.append("(green: first epoch with the right background; score: best overall score, 1-10)")
    return "\n".join(lines)


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps({"runs": rows}, default=str)
