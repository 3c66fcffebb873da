"""`epochwatch replay --config FILE --images DIR [--json]`: judge a past run's images.

The epochs found in DIR (watcher.samples.layout) go through the same path as the daemon's
(watcher.epoch.EpochPath: score -> decide -> publish -> act), in epoch order, so the rules
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

from watcher.cli import CommandError
from watcher.commands._common import load
from watcher.config import WatchConfig
from watcher.samples.layout import LayoutError, ReplayEpoch, ReplayLayout, scan
from watcher.samples.source import identity, open_images, trainer_prompts


@dataclass
class EpochLine:
    epoch: int
    state: str  # judged | already judged | not judged
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: str | None = None
    after_stop: int | None = None  # the epoch of the stop this one came after
    partial: bool = False
    problems: list[str] = field(default_factory=list)
    commit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "state": self.state, "decision": self.decision,
                "after_stop": self.after_stop is not None, "stop_epoch": self.after_stop,
                "partial": self.partial, "problems": self.problems, "commit": self.commit,
                **{k: self.metrics.get(k) for k in ("background_match_rate", "color_accuracy",
                                                    "style_quality", "overall_score", "n_images")}}


def _layout(cfg: WatchConfig, images: str) -> ReplayLayout:
    try:
        return scan(Path(images), cfg.prompts(), trainer_prompts(cfg), cfg.run.output_name)
    except LayoutError as exc:
        raise CommandError(str(exc)) from None


def replay(cfg: WatchConfig, layout: ReplayLayout) -> tuple[list[EpochLine], dict[str, Any]]:
    """Judge every epoch of `layout` as the daemon would; (one line per epoch, the run)."""
    from watcher.act import FINAL_RUN_STATES
    from watcher.commands.status import _epoch_decision
    from watcher.epoch import EpochPath

    path = EpochPath.open(cfg)
    store, run = path.store, cfg.run.name
    lines: list[EpochLine] = []
    try:
        for ep in layout.epochs:
            lines.append(_judge(path, ep))
        stops = sorted(r["epoch"] for r in store.stop_requests(run))
        for line in lines:
            evaluated = [e for e in store.evaluations(run) if e["epoch"] == line.epoch]
            if evaluated:
                latest = evaluated[-1]
                line.metrics = latest["metrics"]["aggregate"]
                line.decision = _epoch_decision(latest["metrics"].get("decisions", []))
                line.commit = latest.get("git_commit")
            if stops and line.epoch > stops[0]:
                line.after_stop = stops[0]
        row = store.run_row(run) or {}
        if lines and row.get("status") not in FINAL_RUN_STATES:
            path.publisher.finish_run("stopped" if stops else "finished", path.rules, path.history())
        elif lines:
            path.publisher.commit_report_if_missing(path.rules, path.history())
        row = store.run_row(run) or {}
        summary = {"run": run, "status": row.get("status"), "verdict": row.get("verdict"),
                   "best_epoch": row.get("best_epoch"), "stop_epoch": stops[0] if stops else None,
                   "stop_reason": next((r.get("reason") for r in store.stop_requests(run)), None)}
    finally:
        path.close()
    return lines, summary


def _judge(path: Any, ep: ReplayEpoch) -> EpochLine:
    line = EpochLine(ep.epoch, "not judged", partial=ep.partial, problems=list(ep.problems))
    if not ep.judged or not ep.samples:
        return line
    sha256, size = identity(ep.samples)
    checkpoint = path.add_source(ep.source, ep.epoch, sha256, size,
                                 {"source": "replay", "images": str(len(ep.samples))})
    if checkpoint.status == "done":
        line.state = "already judged"
        return line
    try:
        images = open_images(ep.samples)
    except OSError as exc:  # unreadable after all: never half-judged
        line.problems.append(f"epoch {ep.epoch}: cannot read an image: {exc}")
        return line
    path.judge_images(checkpoint, images)
    line.state = "judged"
    return line


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(layout: ReplayLayout, lines: list[EpochLine], summary: dict[str, Any]) -> str:
    kind = "epoch folders" if layout.kind == "folders" else "kohya sample names"
    out = [f"replay {summary['run']} from {layout.folder} ({kind}): {len(layout.epochs)} epochs"]
    out += [f"  skipped: {p}" for p in layout.problems]
    out.append(f"{'epoch':>5}  {'bg match':>8}  {'colour':>6}  {'style':>6}  {'score':>5}  decision")
    for line in lines:
        note = line.state if line.state != "judged" else ""
        if line.after_stop is not None:
            note = f"after the stop at epoch {line.after_stop}" + (f"; {note}" if note else "")
        m = line.metrics
        out.append(f"{line.epoch:>5}  {_fmt(m.get('background_match_rate'), '.2f'):>8}  "
                   f"{_fmt(m.get('color_accuracy')):>6}  {_fmt(m.get('style_quality')):>6}  "
                   f"{_fmt(m.get('overall_score')):>5}  {line.decision or '-'}"
                   + (f"  ({note})" if note else ""))
        out += [f"         {p}" for p in line.problems]
    stop = summary["stop_epoch"]
    out.append("")
    out.append(f"run: {summary['status']}" + (f" at epoch {stop}: {summary['stop_reason']}" if stop else "")
               + f"; verdict {summary['verdict']}, best epoch {summary['best_epoch']}")
    return "\n".join(out)


def run(args: Namespace) -> int:
    cfg = load(args.config)
    layout = _layout(cfg, args.images)
    lines, summary = replay(cfg, layout)
    if args.json:
        print(json.dumps({**summary, "images": str(layout.folder), "layout": layout.kind,
                          "problems": layout.problems, "epochs": [ln.to_dict() for ln in lines]}))
    else:
        print(render(layout, lines, summary))
    if not any(ln.state != "not judged" for ln in lines):
        print("epochwatch replay: no epoch could be judged", file=sys.stderr)
        return 1
    return 0
