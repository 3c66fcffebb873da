"""What the e2e run must show once `epochwatch launch` has returned (used by run.py).

Each check is {"name", "ok", "detail"}; the evidence comes from the CLI contract
(`status --json`), the results git repository, the output folder and /proc, never from the
daemon's internals.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
from prepare import OUTPUT_NAME, PROMPTS, RUN_NAME, RunSpec

EPOCH_FILE = re.compile(rf"^{re.escape(OUTPUT_NAME)}(?:-(\d{{6}}))?\.safetensors$")
SAMPLE_FILE = re.compile(rf"^{re.escape(OUTPUT_NAME)}_e(\d{{6}})_(\d{{2}})_\d{{14}}(?:_\d+)?\.png$")


def _check(checks: list[dict[str, Any]], name: str, ok: bool, detail: str) -> None:
    checks.append({"name": name, "ok": bool(ok), "detail": detail})


def _status(config: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "watcher", "status", "--config", str(config), "--json"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def _commits(repo: Path) -> list[tuple[str, float]]:
    out = subprocess.run(["git", "-C", str(repo), "log", "--format=%ct %s"], capture_output=True,
                         text=True, check=True)
    rows = [line.split(" ", 1) for line in out.stdout.splitlines() if line]
    return [(subject, float(ts)) for ts, subject in rows]


def _epoch_files(output: Path) -> dict[int | None, float]:
    """Epoch number (None for the unnumbered final file) -> mtime."""
    found: dict[int | None, float] = {}
    for p in output.glob("*.safetensors") if output.is_dir() else []:
        m = EPOCH_FILE.match(p.name)
        if m:
            found[int(m.group(1)) if m.group(1) else None] = p.stat().st_mtime
    return found


def _samples(output: Path) -> dict[int, list[Path]]:
    """kohya's own samples by epoch (sd-scripts' names: e2e_e000001_00_<time>_<seed>.png)."""
    by_epoch: dict[int, list[Path]] = {}
    for p in sorted((output / "sample").glob("*.png")) if (output / "sample").is_dir() else []:
        m = SAMPLE_FILE.match(p.name)
        if m:
            by_epoch.setdefault(int(m.group(1)), []).append(p)
    return by_epoch


def _group_members(pgid: int) -> list[int]:
    left = []
    for p in psutil.process_iter(["pid"]):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                left.append(p.pid)
        except (psutil.Error, ProcessLookupError):
            continue
    return left


def check_outcome(spec: RunSpec, config: Path, env: dict[str, str], rc: int, started: float,
                  trainer_pids: dict[int, str], daemon_peak_rss: int
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    checks: list[dict[str, Any]] = []
    stop = spec.stop_epoch
    _check(checks, "launch exit status", rc == 0, f"epochwatch launch exited {rc}")
    status = _status(config, env)
    t = status["trainer"]
    _check(checks, "trainer stopped by the launcher", t["state"] == "stopped",
           f"trainer state {t['state']!r}, cause {t['cause']!r}, exit code {t['exit_code']}")
    reqs = status["stop_requests"]
    _check(checks, "one stop request, carried out",
           len(reqs) == 1 and reqs[0]["epoch"] == stop and str(reqs[0].get("result", "")).startswith(("terminated", "killed")),
           json.dumps([{k: r.get(k) for k in ("epoch", "reason", "result")} for r in reqs]))
    _check(checks, "run decision is stop at the failing rule's epoch",
           status["decision"] == "stop" and status["decision_detail"]["epoch"] == stop,
           f"decision {status['decision']!r} at epoch {status['decision_detail']['epoch']}")

    training = status.get("training") or {}
    _check(checks, "status shows kohya's loss from its TensorBoard logs",
           training.get("source") == "tensorboard" and isinstance(training.get("loss"), float)
           and (training.get("step") or 0) > 0,
           json.dumps({k: training.get(k) for k in ("source", "step", "epoch", "loss", "lr",
                                                   "steps_per_s", "epoch_s", "eta_s")}))

    epochs = [e["epoch"] for e in status["epochs"]]
    what = "epoch file" if spec.source == "render" else "epoch's sample set"
    _check(checks, f"every {what} detected once, up to the stop",
           epochs == list(range(1, stop + 1)), f"checkpoint epochs in the state DB: {epochs}")
    _check(checks, "every epoch evaluated",
           bool(status["epochs"]) and all(e["status"] == "evaluated" and e["commit"] for e in status["epochs"]),
           "; ".join(f"{e['epoch']}: {e['status']} {e['error'] or ''}".strip() for e in status["epochs"]))
    _check(checks, "no checkpoint refused", not status["rejected"],
           "; ".join(f"{Path(r['path']).name}: {r['reason']}" for r in status["rejected"]) or "none")
    decisions = [e["decision"] for e in status["epochs"]]
    _check(checks, "continue before the stop epoch, stop at it",
           decisions == ["continue"] * (stop - 1) + ["stop"], f"per-epoch decisions {decisions}")

    commits = [(s, ts) for s, ts in _commits(Path(status["results"]["repo"])) if s.startswith(f"{RUN_NAME} epoch ")]
    per_epoch = {n: sum(1 for s, _ in commits if s.startswith(f"{RUN_NAME} epoch {n}:")) for n in range(1, spec.epochs + 1)}
    _check(checks, "one results commit per evaluated epoch, none after the stop",
           all(per_epoch[n] == (1 if n <= stop else 0) for n in per_epoch),
           f"commits per epoch {per_epoch}")

    output = spec.work / "output"
    files = _epoch_files(output)
    _check(checks, "no epoch file after the stop",
           sorted(k for k in files if k is not None) == list(range(1, stop + 1)) and None not in files,
           f"epoch files: {sorted(files, key=lambda k: (k is None, k or 0))} (None = final file)")

    pgid = t["pid"]  # the launcher starts the trainer as its own group leader
    left = _group_members(pgid) if pgid else []
    alive = [p for p in trainer_pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    _check(checks, "accelerate and its children ended",
           len(trainer_pids) >= 2 and not left and not alive,
           f"trainer processes seen: {sorted(trainer_pids.items())}; group {pgid} left: {left}; alive: {alive}")

    samples = _samples(output)
    if spec.source == "trainer":
        _check(checks, "kohya rendered its own samples every epoch",
               all(len(samples.get(n, [])) == len(PROMPTS) for n in range(1, stop + 1)),
               f"samples per epoch {({k: len(v) for k, v in samples.items()})}")
        # issue 14: judging kohya's own PNGs needs no pipeline, so no torch in the daemon
        _check(checks, "daemon stayed under 300 MB RSS (no pipeline)", 0 < daemon_peak_rss < 300 * 2**20,
               f"daemon peak RSS {daemon_peak_rss / 2**20:.0f} MB")

    commit_at = {int(re.match(rf"{RUN_NAME} epoch (\d+):", s).group(1)): ts for s, ts in commits}  # type: ignore[union-attr]
    rows = []
    for e in status["epochs"]:
        n = e["epoch"]
        metrics_path = Path(status["results"]["dir"]) / f"epoch-{n:03d}" / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        rows.append({
            "epoch": n, "file_written_s": round(files[n] - started, 1) if n in files else None,
            "kohya_samples": len(samples.get(n, [])),
            "last_sample_s": round(max(p.stat().st_mtime for p in samples[n]) - started, 1) if samples.get(n) else None,
            "committed_s": round(commit_at[n] - started, 1) if n in commit_at else None,
            "decision": e["decision"], "background_match_rate": e["background_match_rate"],
            "ss_epoch": metrics.get("checkpoint", {}).get("metadata", {}).get("ss_epoch"),
            "timing": metrics.get("timing"),
        })
    return checks, rows
