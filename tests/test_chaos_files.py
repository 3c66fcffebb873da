"""Chaos: what lands in the watched folder, through a real `epochwatch launch` run.

The trainer (tests/chaos/crashing_trainer.py) writes epoch 1 slowly, epoch 2 at once, then
crashes half-way through epoch 3. While it runs, hostile files arrive beside its output
(tests/chaos/hostile.py): absurd and lying headers, offsets past the end, wrong dtypes and
shapes, keys that are not LoRA keys, another run's file, pickles and a zip renamed
`.safetensors`, a link out of the folder, a FIFO, odd names, and a LoRA that does not fit the
model. Afterwards: the slow file was evaluated once and never refused; the truncated file and
every hostile file have a clear error record and an alert; nothing hostile was loaded
(nothing unpickled, no checkpoint row but the misfit's failed one); the ledger holds for
epochs 1 and 2, and the daemon exited with the run.

The slow write lasts 5 s in the short form and 10 s in the full form.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from tests.chaos.hostile import model_mismatch, plant
from tests.chaos.ledger import appeared, check_ledger, secrets_nowhere
from tests.chaos.rig import (
    HOOK_TOKEN,
    SUPABASE_KEY,
    Proc,
    chaos_config,
    epochwatch,
    figures,
    kill_running,
    make_checkpoints,
    scale,
    services,
    state_of,
)
from tests.httpstub import Request, Response
from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401
from watcher.config import load_config
from watcher.epoch.settle import describe_name
from watcher.store import Store

RUN = "CHAOS_FILES"
TRAINER = Path(__file__).resolve().parent / "chaos" / "crashing_trainer.py"
EXTRA = """
[alerts]
min_interval_s = 0.0
"""


def _trainer_running(db: Path) -> bool:
    with Store(db) as s:
        t = s.trainer(RUN)
    return t is not None and t.state == "running"


@pytest.mark.chaos
@pytest.mark.timeout(900)
def test_slow_file_crash_mid_write_and_hostile_input(
    tmp_path: Path, tiny_model_dir: Path, pg_database: str
) -> None:
    slow_s = scale(5.0, 10.0)
    started = time.monotonic()
    config = chaos_config(tmp_path, tiny_model_dir, name=RUN, epochs=10, extra=EXTRA)
    out = tmp_path / "output"
    command = [sys.executable, str(TRAINER), str(tiny_model_dir), str(out), "e2e_lora", "10",
               str(slow_s)]
    text = config.read_text()
    line = next(x for x in text.splitlines() if x.startswith("command = "))
    config.write_text(text.replace(line, "command = [" + ", ".join(f'"{c}"' for c in command) + "]"))
    db = tmp_path / "state" / "state.db"
    valid = make_checkpoints(tiny_model_dir, tmp_path / "staging", "e2e_lora", 3)
    marker = tmp_path / "UNPICKLED"
    with services(pg_database) as svc:
        # A slow alert target (0.7 s a message): the daemon reaches the end of the run with
        # alerts still queued, and must deliver them before it exits.
        svc.hook.stub.respond = _slow_ok
        env = svc.child_env()
        launch = Proc(epochwatch("launch", "--config", str(config)), tmp_path / "launch.log", env,
                      cwd=tmp_path).start()
        try:
            launch.wait_until(lambda: db.exists() and _trainer_running(db), 300,
                              "the trainer started")
            out.mkdir(exist_ok=True)
            expected = plant(out, tmp_path / "outside", valid, marker)
            misfit, misfit_reason = model_mismatch(out)
            rc = launch.wait(600)
        finally:
            kill_running(launch)
        log = launch.tail()
        assert rc == 1, log  # the trainer crashed: launch says so
        daemon = state_of(db, RUN)["daemon"]
        assert daemon.get("state") == "stopped", daemon  # ... and the daemon ended with the run
        with Store(db) as s:
            trainer = s.trainer(RUN)
            checkpoints = {Path(c.path).name: c for c in s.checkpoints(RUN)}
            rejected = {Path(r.path).name: r for r in s.rejected(RUN)}
            run_row = s.run_row(RUN)
        assert trainer is not None and trainer.state == "crashed" and trainer.exit_code == 1, trainer
        assert run_row is not None and run_row.status == "failed", run_row
        # The slowly written epoch 1 was evaluated once, never taken for a broken file.
        slow = checkpoints["e2e_lora-000001.safetensors"]
        assert slow.status == "evaluated" and slow.attempts == 1, slow
        assert "e2e_lora-000001.safetensors" not in rejected
        # The truncated epoch 3: refused as incomplete once the trainer was gone.
        truncated = rejected.pop("e2e_lora-000003.safetensors")
        assert "incomplete when the trainer ended" in truncated.reason, truncated
        # Every hostile file: one error record with a clear one-line reason.
        stored = {_as_stored(n): n for n in expected}
        for name, row in rejected.items():
            assert name in stored, f"unexpected refusal of {name!r}: {row.reason}"
            assert expected[stored[name]] in row.reason, (name, row.reason)
            assert "\n" not in row.reason
        assert sorted(stored) == sorted(rejected), set(stored) ^ set(rejected)
        # The misfit LoRA reached the pipeline's checks and failed there, unevaluated.
        bad = checkpoints.pop(misfit)
        assert bad.status == "failed" and misfit_reason in (bad.error or ""), bad
        # Nothing else was taken in: only the trainer's two complete epochs.
        assert sorted(checkpoints) == ["e2e_lora-000001.safetensors", "e2e_lora-000002.safetensors"]
        assert not marker.exists(), "something unpickled a hostile file"
        # An alert for each refusal and for the failed misfit, naming the file.
        alerts = svc.delivered_alerts()
        texts = [f"{a.get('title')}\n{a.get('message')}" for a in alerts]
        refusals = [t for t in texts if "checkpoint refused" in t]
        assert len(refusals) == len(rejected) + 1, texts
        for name in [*expected, "e2e_lora-000003.safetensors"]:
            shown = describe_name(name)
            assert any(shown in t for t in refusals), (shown, refusals)
        assert any(misfit in t and "Evaluation error" in t for t in texts), texts
        assert any("Trainer crashed" in t for t in texts), texts
        ledger = check_ledger(load_config(config), appeared([out / n for n in sorted(checkpoints)]),
                              svc)
        searched = secrets_nowhere([SUPABASE_KEY, HOOK_TOKEN], tmp_path, tmp_path / "results", svc)
    figures("files", slow_write_s=slow_s, hostile_files=len(expected) + 1,
            refused=len(rejected) + 1, alerts=len(alerts), epochs=ledger.epochs,
            files_searched_for_secrets=searched, wall_s=round(time.monotonic() - started))


def _slow_ok(_req: Request) -> Response:
    time.sleep(0.7)
    return Response(200, {})


def _as_stored(name: str) -> str:
    """How a file name reads back from the state database (undecodable bytes escaped)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
