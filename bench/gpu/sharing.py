"""The training worker seen from the benchmark: start it, let it go, time windows, stop it.

The worker starts early (its imports and model build overlap the benchmark's own set-up)
and waits for the go file, so the daemon-alone figures are taken while it holds memory but
does no work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gpu.slowdown import Step, Window

REPO = Path(__file__).resolve().parents[2]


class WorkerFailed(RuntimeError):
    """The training worker exited or did not answer in time; the message says which."""


def child_env() -> dict[str, str]:
    """The environment for a benchmark child process: the repository first on PYTHONPATH,
    then whatever was there (on a GPU host the carried wheels are often on it)."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return dict(os.environ, PYTHONPATH=path)


class TrainerProcess:
    def __init__(self, work: Path, shapes: str, device: str, latent: int, max_s: float,
                 extra_args: list[str] | None = None) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.steps_file = work / "trainer-steps.jsonl"
        self.go_file = work / "trainer.go"
        self.stop_file = work / "trainer.stop"
        self.log_file = work / "trainer.log"
        for path in (self.steps_file, self.go_file, self.stop_file):
            path.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "bench.gpu.trainer_worker",
                "--steps-file", str(self.steps_file), "--go-file", str(self.go_file),
                "--stop-file", str(self.stop_file), "--shapes", shapes, "--device", device,
                "--latent", str(latent), "--max-s", str(max_s), *(extra_args or [])]
        env = child_env()
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)

    def records(self) -> list[dict[str, Any]]:
        if not self.steps_file.exists():
            return []
        out = []
        for line in self.steps_file.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                break
        return out

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def wait_event(self, event: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            for record in self.records():
                if record.get("event") == event:
                    return record
            if self.proc.poll() is not None:
                raise WorkerFailed(f"trainer worker exited ({self.proc.returncode}) before "
                                   f"'{event}': {self._log_tail()}")
            if time.monotonic() > deadline:
                raise WorkerFailed(f"trainer worker not '{event}' after {timeout_s:.0f} s")
            time.sleep(0.05)

    def go(self) -> None:
        self.go_file.touch()

    def stop(self, timeout_s: float = 30.0) -> int:
        self.stop_file.touch()
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # our own child, by its handle
            return self.proc.wait()

    def steps(self) -> list[Step]:
        return [(r["s"], r["e"]) for r in self.records() if "s" in r and "e" in r]


def window(action: Callable[[], Any]) -> tuple[Window, Any]:
    t0 = time.monotonic()
    out = action()
    return (t0, time.monotonic()), out


def measure_sharing(worker: TrainerProcess, evaluate: Callable[[], dict[str, Any]], alone_s: float,
                    repeats: int, ready_timeout_s: float) -> dict[str, Any]:
    """Alone window, `repeats` evaluations while training, a closing alone window.

    Returns the windows, the worker's steps and the evaluations' own timings.
    """
    worker.go()
    worker.wait_event("ready", ready_timeout_s)
    alone = [window(lambda: time.sleep(alone_s))[0]]
    shared, evals = [], []
    for _ in range(repeats):
        span, result = window(evaluate)
        shared.append(span)
        evals.append(result)
    alone.append(window(lambda: time.sleep(alone_s / 2))[0])
    code = worker.stop()
    stopped = [r for r in worker.records() if r.get("event") == "stopped"]
    return {"alone": alone, "shared": shared, "evals": evals, "steps": worker.steps(),
            "worker_exit": code, "worker_peak_vram_gib": stopped[-1].get("peak_vram_gib") if stopped else None}
