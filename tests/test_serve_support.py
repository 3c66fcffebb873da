"""Builders for the `epochwatch serve` tests: a real config, real state store rows and real
results folders (real pixel-art fixtures scored by the real evaluators, written through the
publisher's EpochFolder, judged by the config's rules), and a real `epochwatch serve`
process on a free loopback port. No tests here."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluators import aggregate_epoch, score_image
from tests.conftest import FIXTURES, write_watch_config
from watcher.config import load_config
from watcher.epoch.decide import EpochRecord, Rule, decide
from watcher.publish.results import EpochFolder, EpochImage, sample_name
from watcher.store import Store

RUN = "SERVE_RUN"
AVATARS = FIXTURES / "pixelart" / "avatars"
CELL_PX = 12  # the 16 x 16 avatars enlarged to 192 px samples


def make_config(root: Path, name: str = RUN) -> Path:
    """A run config whose model is never loaded (the tests write evaluations themselves)."""
    (root / "model").mkdir(parents=True, exist_ok=True)
    return write_watch_config(root, root / "model", name=name, epochs=6,
                              criteria="[evaluation]\ncells = 16\n")


def add_epoch(config: Path, epoch: int, avatars: tuple[int, ...] = (0, 70)) -> None:
    """Record one evaluated epoch the way the daemon does: a checkpoint row, samples at full
    size and recovered, metrics from the real evaluators, the rules' decisions."""
    cfg = load_config(config)
    folder = EpochFolder(cfg.run_results_dir, epoch)
    entries = []
    for index, (prompt, avatar) in enumerate(zip(cfg.prompts(), avatars, strict=False)):
        small = Image.open(AVATARS / f"avatar_{(avatar + epoch) % 96:03d}.png").convert("RGB")
        image = small.resize((small.width * CELL_PX, small.height * CELL_PX), Image.NEAREST)
        score = score_image(np.asarray(image), prompt.text, cfg.evaluation.cells)
        name = sample_name(index, prompt.seed)
        folder.save_sample(EpochImage(name, image, score.cells))
        entries.append({"prompt": prompt.text, "seed": prompt.seed, "sample": f"samples/{name}",
                        "sample_24px": f"samples_24px/{name}", **score.to_dict()})
    final = folder.finish()
    run = cfg.run.name
    metrics = {"run": run, "epoch": epoch, "images": entries, "aggregate": aggregate_epoch(entries)}
    rules = [Rule.from_config(c) for c in cfg.criteria]
    with Store(cfg.state_db) as store:
        store.ensure_run(run, config_path=str(config), params=cfg.params())
        sha = hashlib.sha256(f"{run}:{epoch}".encode()).hexdigest()
        ck, _ = store.add_checkpoint(run, str(cfg.output_dir / f"e2e_lora-{epoch:06d}.safetensors"),
                                     epoch, sha, 1000 + epoch, "session", {"ss_epoch": str(epoch)})
        history = [EpochRecord(e.epoch, e.aggregate) for e in store.evaluations(run)]
        history.append(EpochRecord(epoch, metrics["aggregate"]))
        decisions = decide(rules, history, epoch)
        metrics["decisions"] = [d.to_dict() for d in decisions]
        store.save_evaluation(ck, epoch, metrics, str(final))
        for d in decisions:
            store.save_decision(run, epoch, ck.id, d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "watcher", "serve", "--config", str(config), *extra]


@contextmanager
def serving(config: Path, host: str = "127.0.0.1", env: dict[str, str] | None = None,
            extra: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A real `epochwatch serve` process; yields (base URL on 127.0.0.1, process)."""
    import http.client

    port = free_port()
    address = host if host.startswith("127.") else "127.0.0.1"  # where the server answers
    proc = subprocess.Popen(serve_cmd(config, *extra, "--host", host, "--port", str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
            try:
                conn = http.client.HTTPConnection(address, port, timeout=2)
                conn.request("GET", "/static/style.css")
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("serve did not answer within 30 s")
                time.sleep(0.1)
        yield f"http://{address}:{port}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
