"""`epochwatch replay --config FILE --images DIR [--json]`: judge a past run's images.

The epochs found in DIR (watcher.samples.layout) go through the same path as the daemon's
(watcher.epoch.path.EpochPath: score -> decide -> publish -> act), in epoch order, so the rules
apply as they would have live: a stop decided at epoch 4 is recorded as the run's decision
and the later epochs are still judged, shown as coming after it. No trainer is signalled
(there is none). Each epoch is recorded under the digest of its images and prompts, so a
second replay of the same folder finds everything done and changes nothing.
"""

from __future__ import annotations

import json
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.preflight import check_writable
from watcher import logs
from watcher.commands._common import load, run_lock
from watcher.commands.status import _epoch_decision
from watcher.config import WatchConfig
from watcher.epoch.act import FINAL_RUN_STATES
from watcher.errors import CommandError
from watcher.progress import Batch
from watcher.publish.gitrepo import ResultsRepo
from watcher.report.history import load_run
from watcher.report.plan import verdict_of
from watcher.samples.layout import LayoutError, ReplayEpoch, ReplayLayout, scan
from watcher.samples.source import identity, open_images, trainer_prompts
from watcher.store import Store
from watcher.summary import SUMMARY_METRICS, metric_cells, table_header


@dataclass
class EpochLine:
    epoch: int
    state: str  # judged | already judged | not judged | failed | failed before
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    after_stop: int | None = None  # the epoch of the stop this one came after
    partial: bool = False
    candidate: bool = False  # a production candidate (a "candidate" rule marked it)
    reasons: list[str] = field(default_factory=list)  # the failed rules behind a stop or alert
    problems: list[str] = field(default_factory=list)
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "state": self.state, "decision": self.decision,
                "candidate": self.candidate, "reasons": self.reasons,
                "after_stop": self.after_stop is not None, "stop_epoch": self.after_stop,
                "partial": self.partial, "problems": self.problems, "commit": self.commit,
                **{k: self.metrics.get(k) for k in (*SUMMARY_METRICS, "n_images")}}


def find_layout(cfg: WatchConfig, images: str) -> ReplayLayout:
    """The epochs in DIR, or a one-line CommandError."""
    try:
        return scan(Path(images), cfg.prompts(), trainer_prompts(cfg), cfg.run.output_name)
    except LayoutError as exc:
        raise CommandError(str(exc)) from None


def replay(cfg: WatchConfig, layout: ReplayLayout,
           batch: Batch | None = None) -> tuple[list[EpochLine], dict[str, Any]]:
    """Judge every epoch of `layout` as the daemon would; (one line per epoch, the run).

    When every epoch is already judged (same images) and the run is over, nothing is opened
    for writing: no outbox worker, no Supabase upsert, no commit. Running it again changes
    nothing."""
    from watcher.epoch.path import EpochPath

    idents = {ep.epoch: identity(ep.samples) for ep in layout.epochs if ep.judged and ep.samples}
    if _all_judged(cfg, idents):
        with Store(cfg.state_db) as store:
            status = {c.sha256: c.status for c in store.checkpoints(cfg.run.name)}
            word = {"evaluated": "already judged", "failed": "failed before"}
            lines = [EpochLine(ep.epoch, word[status[idents[ep.epoch][0]]] if ep.epoch in idents
                               else "not judged", partial=ep.partial, problems=list(ep.problems))
                     for ep in layout.epochs]
            return lines, _fill(store, cfg, lines)
    path = EpochPath.open(cfg)
    try:
        lines = []
        for ep in layout.epochs:  # each judged epoch is committed before the next starts
            lines.append(_judge(path, ep, idents.get(ep.epoch)))
            if batch is not None:
                batch.advance()
        if lines:
            path.end_run(last_epoch_done=True)  # a past run: it is over, stopped or not
        summary = _fill(path.store, cfg, lines)
    finally:
        path.close()
    return lines, summary


def _all_judged(cfg: WatchConfig, idents: dict[int, tuple[str, int]]) -> bool:
    """Every epoch recorded with these very images, the run over and its report committed."""
    if not idents or not cfg.state_db.exists():
        return False
    with Store(cfg.state_db) as store:
        if store.run_status(cfg.run.name) not in FINAL_RUN_STATES:
            return False
        done = {c.sha256 for c in store.checkpoints(cfg.run.name) if c.status in ("evaluated", "failed")}
        if any(sha not in done for sha, _ in idents.values()) or store.unpublished(cfg.run.name):
            return False
    report = (cfg.run_results_dir / "report.md").relative_to(cfg.results_repo)
    return bool(ResultsRepo(cfg.results_repo).commits_touching(str(report)))


def _fill(store: Store, cfg: WatchConfig, lines: list[EpochLine]) -> dict[str, Any]:
    """Each line's metrics and decision from the state; the run's summary (its verdict and
    best epoch computed as the report computes them, from every evaluated epoch)."""
    run = cfg.run.name
    # a replay's stop requests are all tied to an epoch (only a launcher's signal is not)
    stops = sorted((r for r in store.stop_requests(run) if r.epoch is not None),
                   key=lambda r: r.epoch or 0)
    latest = {e.epoch: e for e in store.evaluations(run)}
    for line in lines:
        ev = latest.get(line.epoch)
        if ev is not None:
            line.metrics = ev.aggregate.to_dict()
            decisions = ev.decisions
            line.decision = _epoch_decision(decisions)
            line.candidate = any(d.marked for d in decisions)
            # the failed rules behind a stop or alert, and a stop rule passed (the continue path)
            line.reasons = [d.message for d in decisions
                            if (d.outcome == "fail" and d.action in ("stop", "alert"))
                            or (d.outcome == "pass" and d.evidence.get("rule_action") == "stop")]
            line.commit = ev.git_commit
        stop_epoch = stops[0].epoch if stops else None
        if stop_epoch is not None and line.epoch > stop_epoch:
            line.after_stop = stop_epoch
    row = store.run_row(run)
    # the report's own verdict (same records, rules and plan), so the two never disagree
    summary = verdict_of(load_run(store, run), cfg.rules(), cfg.plan)
    return {"run": run, "status": row.status if row else None,
            "verdict": summary.verdict, "best_epoch": summary.best_epoch,
            "stop_epoch": stops[0].epoch if stops else None,
            "stop_reason": stops[0].reason if stops else None}


def _judge(path: Any, ep: ReplayEpoch, ident: tuple[str, int] | None) -> EpochLine:
    line = EpochLine(ep.epoch, "not judged", partial=ep.partial, problems=list(ep.problems))
    if ident is None:
        return line
    sha256, size = ident
    checkpoint = path.add_source(ep.source, ep.epoch, sha256, size,
                                 {"source": "replay", "images": str(len(ep.samples))})
    if checkpoint.status in ("evaluated", "failed"):
        line.state = "already judged" if checkpoint.status == "evaluated" else "failed before"
        return line
    try:
        images = open_images(ep.samples)
    except OSError as exc:  # unreadable after all: never half-judged
        line.problems.append(f"epoch {ep.epoch}: cannot read an image: {exc}")
        return line
    try:
        path.judge_images(checkpoint, images)
    except ValueError as exc:  # images the evaluators cannot score (e.g. smaller than the grid)
        line.problems.append(f"epoch {ep.epoch}: {path.fail(checkpoint, exc)}")
        line.state = "failed"
        return line
    line.state = "judged"
    return line


def render(layout: ReplayLayout, lines: list[EpochLine], summary: dict[str, Any]) -> str:
    kind = "epoch folders" if layout.kind == "folders" else "kohya sample names"
    out = [f"replay {summary['run']} from {layout.folder} ({kind}): {len(layout.epochs)} epochs"]
    out += [f"  skipped: {p}" for p in layout.problems]
    out.append(f"{'epoch':>5}  {table_header()}  decision")
    for line in lines:
        note = line.state if line.state != "judged" else ""
        if line.after_stop is not None:
            note = f"after the stop at epoch {line.after_stop}" + (f"; {note}" if note else "")
        m = line.metrics
        out.append(f"{line.epoch:>5}  {metric_cells(m)}  {line.decision or '-'}"
                   + (", candidate" if line.candidate else "")
                   + (f"  ({note})" if note else ""))
        out += [f"         {p}" for p in [*line.reasons, *line.problems]]
    stop = summary["stop_epoch"]
    out.append("")
    out.append(f"run: {summary['status']}" + (f" at epoch {stop}: {summary['stop_reason']}" if stop else "")
               + f"; verdict {summary['verdict']}, best epoch {summary['best_epoch']}")
    return "\n".join(out)


def run(args: Namespace) -> int:
    logs.configure(level="warning")  # stdout is the answer; the stage-by-stage log is not
    cfg = load(args.config)
    for warning in cfg.warnings:
        print(f"epochwatch replay: warning: {warning}", file=sys.stderr)
    check_writable(cfg, "run.state_dir", "results.repo")
    layout = find_layout(cfg, args.images)
    with run_lock(cfg), Batch(len(layout.epochs), "epochs", "replaying", json_mode=args.json) as batch:
        lines, summary = replay(cfg, layout, batch)
    if args.json:
        print(json.dumps({**summary, "images": str(layout.folder), "layout": layout.kind,
                          "problems": layout.problems, "epochs": [ln.to_dict() for ln in lines]}))
    else:
        print(render(layout, lines, summary))
    if not any(ln.state in ("judged", "already judged") for ln in lines):
        print("epochwatch replay: no epoch could be judged", file=sys.stderr)
        return 1
    return 0
