"""Pushing results to `[results] remote` while the remote is down for minutes.

A real bare repository on disk is the remote; it is renamed away (unreachable: git fails at
once, as with a refused connection) for `--outage` seconds while epochs keep coming through
the real epoch path (`EpochPath`, `FakePipeline`), then renamed back. Measured:

    epoch_s_up / epoch_s_down   per-epoch time (evaluate -> publish -> act) with the remote
                                up / down: the push is never on that path
    push_attempts_down          failed push attempts during the outage (outbox backoff: the
                                oldest queued commit's attempts)
    catch_up_s                  remote back -> remote branch == local HEAD
    commits_lost                local commits missing from the remote at the end (must be 0)

    python -m bench.push_outage [--outage 180] [--interval 2] [--retry-max 30]

Prints a table, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.testing import FakePipeline, write_watch_config


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()


def _pending(path: EpochPath) -> tuple[int, int]:
    row = path.store.conn.execute(
        "SELECT COUNT(*), COALESCE(MAX(attempts), 0) FROM outbox WHERE channel='git' "
        "AND status='pending'").fetchone()
    return int(row[0]), int(row[1])


def measure(root: Path, outage_s: float, interval_s: float, retry_max_s: float,
            up_s: float = 10.0) -> dict[str, Any]:
    bare, away = root / "remote.git", root / "remote-away.git"
    _git("init", "-q", "--bare", "-b", "main", str(bare))
    config = write_watch_config(root, root / "no-model-needed", name="OUTAGE_RUN", epochs=10_000)
    text = config.read_text().replace('dir = "runs"\n', 'dir = "runs"\nremote = "origin"\n')
    config.write_text(text + f"\n[supabase]\nenabled = false\nretry_max_s = {retry_max_s}\n"
                      "[[criteria]]\nname = \"quality\"\nmetric = \"overall_score\"\n"
                      "threshold = 1.0\nepoch = 1\nmode = \"from\"\naction = \"alert\"\n")
    results = root / "results"
    _git("init", "-q", "-b", "main", str(results))
    _git("-C", str(results), "remote", "add", "origin", str(bare))
    path = EpochPath.open(load_config(config))
    pipeline, epoch = FakePipeline(), 0
    times: dict[str, list[float]] = {"up": [], "down": []}

    def one_epoch(phase: str) -> None:
        nonlocal epoch
        epoch += 1
        ck = path.add_source(root / f"lora-{epoch:06d}.safetensors", epoch, f"{epoch:064x}", 10)
        t = time.monotonic()
        path.run_checkpoint(pipeline, ck)
        times[phase].append(time.monotonic() - t)
        time.sleep(max(0.0, interval_s - times[phase][-1]))

    try:
        end = time.monotonic() + up_s
        while time.monotonic() < end:
            one_epoch("up")
        bare.rename(away)
        end = time.monotonic() + outage_s
        while time.monotonic() < end:
            one_epoch("down")
        pending_at_return, attempts = _pending(path)
        away.rename(bare)
        back = time.monotonic()
        head = _git("-C", str(results), "rev-parse", "HEAD")
        while time.monotonic() - back < retry_max_s * 2 + 60:
            try:
                if _git("-C", str(bare), "rev-parse", "main") == head:
                    break
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.2)
        catch_up = time.monotonic() - back
    finally:
        path.close()
    local = set(_git("-C", str(results), "log", "--format=%H").split())
    remote = set(_git("-C", str(bare), "log", "--format=%H", "main").split())
    return {
        "outage_s": outage_s, "retry_max_s": retry_max_s, "epochs": epoch,
        "epochs_during_outage": len(times["down"]),
        "epoch_s_up": round(statistics.median(times["up"]), 3),
        "epoch_s_down": round(statistics.median(times["down"]), 3),
        "epoch_s_down_max": round(max(times["down"]), 3),
        "pending_at_return": pending_at_return, "push_attempts_down": attempts,
        "catch_up_s": round(catch_up, 1), "commits_local": len(local),
        "commits_lost": len(local - remote),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--outage", type=float, default=180.0, help="seconds the remote is away")
    ap.add_argument("--interval", type=float, default=2.0, help="seconds between epochs")
    ap.add_argument("--retry-max", type=float, default=30.0, help="[supabase] retry_max_s (backoff cap)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="epochwatch-outage-") as tmp:
        r = measure(Path(tmp), args.outage, args.interval, args.retry_max)
    for key, value in r.items():
        print(f"{key:<22} {value}")
    print(json.dumps(r))
    return r


if __name__ == "__main__":
    main()
