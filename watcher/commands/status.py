"""`epochwatch status`: what an operator asks first. Reads the state database only
(stdlib + pydantic for the config): no torch, answers in a fraction of a second."""

from __future__ import annotations

import json
import os
import time
from argparse import Namespace
from typing import Any

from launcher.identity import process_alive
from watcher.commands._common import load
from watcher.config import WatchConfig
from watcher.errors import CommandError
from watcher.metrics import EpochAggregate
from watcher.records import TRAINER_ENDED, DaemonRow, TrainerRow
from watcher.rules import Decision, decision_word
from watcher.store import Store
from watcher.summary import SUMMARY_METRICS, fmt, metric_cells, table_header
from watcher.training.figures import FIGURE_KEYS
from watcher.training.storage import load_state


def _epoch_decision(decisions: list[Decision]) -> str | None:
    return decision_word(decisions) if decisions else None


def collect(cfg: WatchConfig, store: Store) -> dict[str, Any]:
    run = cfg.run.name
    now = time.time()
    evaluations = {e.checkpoint_id: e for e in store.evaluations(run)}
    decisions_by_epoch: dict[int, list[Decision]] = {}
    for row in store.decisions(run):
        decisions_by_epoch.setdefault(row.epoch, []).append(row.decision)

    stop_epochs = [e for e, ds in decisions_by_epoch.items() if _epoch_decision(ds) == "stop"]
    epochs = []
    for ck in store.checkpoints(run):
        ev = evaluations.get(ck.id)
        agg = ev.aggregate if ev else EpochAggregate()
        epochs.append({
            "epoch": ck.epoch,
            "status": ck.status,
            "checkpoint": ck.path,
            "sha256": ck.sha256,
            "decision": _epoch_decision(decisions_by_epoch.get(ck.epoch or -1, [])) if ev else None,
            **{name: agg.get(name) for name in SUMMARY_METRICS},
            "clip_score": agg.get("clip_score"),  # the learned judge's, advisory
            "commit": ev.git_commit if ev else None,
            "error": ck.error,
            # judged after the stop was decided (the trainer winding down, a replay)
            "after_stop": bool(stop_epochs) and (ck.epoch or 0) > min(stop_epochs),
        })

    # The run's decision: a stop, once decided, stands (later epochs may still be evaluated
    # while the trainer winds down); otherwise the latest epoch's.
    latest_epoch = min(stop_epochs) if stop_epochs else max(decisions_by_epoch, default=None)
    latest = decisions_by_epoch.get(latest_epoch, []) if latest_epoch is not None else []
    trainer = store.trainer(run) or TrainerRow(run)
    daemon = store.daemon(run) or DaemonRow(run)
    errors = store.events(run, level="error", limit=1)
    last_ck = max(store.checkpoints(run), key=lambda c: c.detected_at, default=None)
    return {
        "run": run,
        "status": store.run_status(run),
        "max_train_epochs": cfg.run.max_train_epochs,
        "trainer": {
            "state": trainer.state,
            "pid": trainer.pid,
            "alive": process_alive(trainer.pid, trainer.start_time),
            "exit_code": trainer.exit_code,
            "cause": trainer.cause,
            "log": trainer.log_path,
        },
        "daemon": {
            "pid": daemon.pid,
            "state": daemon.state,
            "alive": process_alive(daemon.pid, daemon.start_time),
            "heartbeat_age_s": round(now - daemon.heartbeat_at, 1) if daemon.heartbeat_at else None,
            "gpu_memory_mb": round((daemon.gpu_memory_bytes or 0) / 2**20, 1),
        },
        "epochs": epochs,
        "decision": _epoch_decision(latest),
        "decision_detail": {
            "epoch": latest_epoch,
            "criteria": [{"criterion": d.criterion, "outcome": d.outcome, "action": d.action,
                          "metric": d.metric, "value": d.value, "threshold": d.threshold,
                          "message": d.message} for d in latest],
        },
        "last_checkpoint": {
            "path": last_ck.path, "epoch": last_ck.epoch,
            "age_s": round(now - last_ck.detected_at, 1),
        } if last_ck else None,
        "queue": {
            "pending": sum(1 for e in epochs if e["status"] == "pending"),
            "evaluating": sum(1 for e in epochs if e["status"] == "evaluating"),
        },
        "last_error": {"message": errors[0].message, "kind": errors[0].kind,
                       "epoch": errors[0].epoch, "age_s": round(now - errors[0].created_at, 1)}
        if errors else None,
        "stop_requests": [r.to_dict() for r in store.stop_requests(run)],
        "rejected": [r.to_dict() for r in store.rejected(run)],
        **_outbox(cfg, store, run),
        "reviews": _reviews(store, run),
        "results": {"repo": str(cfg.results_repo), "dir": str(cfg.run_results_dir)},
        "training": _training(store, run, now, trainer_ended=trainer.state in TRAINER_ENDED),
    }


def _training(store: Store, run: str, now: float, *, trainer_ended: bool) -> dict[str, Any]:
    """The trainer's own figures as the daemon last read them (watcher.training): every key
    of FIGURE_KEYS always there, null when not known. No ETA once the trainer has ended (the
    daemon's last reading was taken while it ran)."""
    state = load_state(store, run)
    figs = state["figures"] if state else {}
    if trainer_ended:
        figs = {**figs, "eta_s": None}
    return {**{k: figs.get(k) for k in FIGURE_KEYS},
            "loss_finite": figs.get("loss_finite"), "total_steps": figs.get("total_steps"),
            "source": state["source"] if state else None,
            "health": state["health"] if state else [],
            "gpu": state["gpu"] if state else None,
            "age_s": round(now - state["updated_at"], 1) if state else None}


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = int(seconds) // 60
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m{int(seconds) % 60:02d}s"


def _training_lines(t: dict[str, Any], total_epochs: int | None) -> list[str]:
    if t["source"] is None:
        return ["training  no figures yet (no TensorBoard files under logging_dir, no progress "
                "lines in the trainer log)"]
    loss = fmt(t["loss"], ".4g") if t["loss_finite"] is not False else "NaN"
    steps = f"{t['step']}" + (f"/{t['total_steps']}" if t["total_steps"] else "")
    line = (f"training  step {steps}, epoch {fmt(t['epoch'], 'd')}"
            + (f"/{total_epochs}" if total_epochs else "") + f", loss {loss}, lr {fmt(t['lr'], '.3g')}, "
            f"{fmt(t['steps_per_s'], '.2f')} steps/s, {_duration(t['epoch_s'])}/epoch, "
            f"ETA {_duration(t['eta_s'])}"
            + (f", validation loss {t['validation_loss']:.4g}" if t["validation_loss"] is not None else "")
            + f" ({t['source']})")
    lines = [line] + [f"health    {h['message']}" for h in t["health"]]
    for g in t["gpu"] or []:
        mine = ", ".join(f"{role} {g[f'{role}_mb'] / 1024:.1f}" for role in ("trainer", "daemon")
                         if g.get(f"{role}_mb") is not None)
        lines.append(f"gpu {g['index']}     {g['memory_used_mb'] / 1024:.1f}/{g['memory_total_mb'] / 1024:.1f} GiB"
                     + (f" ({mine})" if mine else "") + f", {g['utilisation_pct']}% busy, {g['temperature_c']} C")
    return lines


# outbox channel -> the sink that delivers it
_CHANNEL_SINK = {"supabase": "supabase", "storage": "supabase", "alert": "alerts", "git": "git"}


def _outbox(cfg: WatchConfig, store: Store, run: str) -> dict[str, Any]:
    """The enabled sinks (as the daemon recorded them, else as this environment says) and
    the outbox counts of those only: a sink that is off has nothing to report."""
    sinks = store.sinks(run)
    if sinks is None:  # no daemon has recorded them yet
        sinks = {"supabase": cfg.supabase.enabled and bool(os.environ.get("SUPABASE_URL")),
                 "alerts": bool(os.environ.get("EPOCHWATCH_ALERT_URLS", "").strip()),
                 "git": bool(cfg.results.remote)}
    counts = store.outbox_counts(run)
    return {"sinks": sinks,
            "outbox": {ch: n for ch, n in counts.items() if sinks.get(_CHANNEL_SINK.get(ch, ch), True)}}


def _reviews(store: Store, run: str) -> list[dict[str, Any]]:
    """Each reviewed epoch's latest review (the one that counts) with the earlier ones."""
    by_epoch: dict[int, list[dict[str, Any]]] = {}
    for r in store.review_history(run):
        by_epoch.setdefault(r.epoch, []).append(
            {"visual": r.visual, "style": r.style, "prompt": r.prompt, "notes": r.notes,
             "reviewed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.created_at))})
    return [{"epoch": e, **rs[-1], "earlier": rs[:-1][::-1]} for e, rs in sorted(by_epoch.items())]


def render(s: dict[str, Any]) -> str:
    t, d = s["trainer"], s["daemon"]
    lines = [
        f"run       {s['run']} ({s['status'] or 'unknown'})",
        f"trainer   {t['state']}" + (f", pid {t['pid']}" if t["pid"] else "")
        + (" (alive)" if t["alive"] else "") + (f", {t['cause']}" if t["cause"] else ""),
        f"daemon    {d['state'] or 'never started'}" + (" (alive)" if d["alive"] else "")
        + (f", heartbeat {d['heartbeat_age_s']}s ago" if d["heartbeat_age_s"] is not None else "")
        + f", GPU memory {d['gpu_memory_mb']} MiB",
    ]
    lc = s["last_checkpoint"]
    lines.append(f"last ckpt {lc['path']} (epoch {lc['epoch']}, {lc['age_s']}s ago)" if lc else "last ckpt none yet")
    lines.append(f"queue     {s['queue']['pending']} pending, {s['queue']['evaluating']} evaluating")
    lines.extend(_training_lines(s["training"], s.get("max_train_epochs")))
    lines.append(f"decision  {s['decision'] or 'none yet'}"
                 + (f" at epoch {s['decision_detail']['epoch']}" if s["decision"] else ""))
    if s["last_error"]:
        lines.append(f"last error {s['last_error']['kind']}: {s['last_error']['message']}")
    lines.append(f"results   {s['results']['dir']}")
    on = [name for name, enabled in s["sinks"].items() if enabled]
    parts = [f"{ch} " + ", ".join(f"{n} {state}" for state, n in sorted(c.items()))
             for ch, c in sorted(s["outbox"].items())]
    lines.append("outbox    " + ("; ".join(parts) if parts and on else
                                 "nothing queued" if on else "no sink enabled (git commits only)"))
    lines.append("")
    clip = any(e.get("clip_score") is not None for e in s["epochs"])  # a column only then
    lines.append(f"{'epoch':>5}  {'status':<10} {table_header(' ')}  "
                 + ("clip  " if clip else "") + "decision")
    for e in s["epochs"]:
        lines.append(
            f"{fmt(e['epoch'], 'd'):>5}  {e['status']:<10} {metric_cells(e, ' ')}  "
            + (f"{fmt(e.get('clip_score')):>4}  " if clip else "") + f"{e['decision'] or '-'}"
        )
    for r in s["reviews"]:
        earlier = f" ({len(r['earlier'])} earlier)" if r["earlier"] else ""
        notes = f": {r['notes']}" if r["notes"] else ""
        lines.append(f"review    epoch {r['epoch']}: visual {r['visual']:g}, style {r['style']:g}, "
                     f"prompt {r['prompt']:g}{earlier}{notes}")
    return "\n".join(lines)


def run(args: Namespace) -> int:
    try:
        cfg = load(args.config)
        if not cfg.state_db.exists():
            raise CommandError(f"no state database at {cfg.state_db}: has the daemon run yet?")
        with Store(cfg.state_db) as store:
            s = collect(cfg, store)
    except CommandError as exc:
        if args.json:  # --json prints JSON whatever happened; the reason is on stderr too
            print(json.dumps({"error": str(exc)}), flush=True)
        raise
    print(json.dumps(s, default=str) if args.json else render(s))
    return 0
