"""SIGTERM mid-evaluation (what `systemctl stop` sends): the daemon abandons the evaluation
cleanly, exits 0 promptly, leaves a consistent state, and the next start completes it."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import write_watch_config
from tests.e2e import checkpoint_statuses, commit_subjects, epochwatch, start, stop, wait_for
from watcher.config import load_config
from watcher.daemon import Daemon, ShutdownRequested
from watcher.store import Store

RUN = "E2E_SIGTERM"


def test_sigterm_mid_evaluation_exits_cleanly_and_the_next_start_completes(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # Large, slow renders so that the signal surely lands inside an evaluation.
    config = write_watch_config(tmp_path, tiny_model_dir, name=RUN, epochs=2, size=256, steps=6)
    db = tmp_path / "state" / "state.db"
    trainer = start(epochwatch("simtrain", "--config", str(config), "--interval", "0.2"),
                    tmp_path / "trainer.log")
    assert trainer.wait(120) == 0
    daemon = start(epochwatch("watch", "--config", str(config)), tmp_path / "daemon.log")
    wait_for(lambda: checkpoint_statuses(db, RUN).get(1) == "evaluating", 180,
             "epoch 1 in evaluation", interval=0.02)
    t0 = time.monotonic()
    rc = stop(daemon, signal.SIGTERM, timeout=60)
    took = time.monotonic() - t0
    log = (tmp_path / "daemon.log").read_text()
    assert rc == 0, log[-2000:]
    assert took < 30, f"daemon took {took:.1f}s to stop"  # well inside TimeoutStopSec
    assert "evaluation abandoned for shutdown" in log
    with Store(db) as s:
        statuses = {c.epoch: c.status for c in s.checkpoints(RUN)}
        assert s.evaluations(RUN) == []
        assert s.daemon_state(RUN) == "stopped"
    assert statuses[1] == "pending"  # consistent: nothing half-done is recorded
    run_dir = tmp_path / "results" / "runs" / RUN
    assert not any(p.name.endswith(".tmp") for p in run_dir.glob("*")), list(run_dir.glob("*"))

    daemon = start(epochwatch("watch", "--config", str(config)), tmp_path / "daemon2.log")
    try:
        wait_for(lambda: list(checkpoint_statuses(db, RUN).values()) == ["evaluated", "evaluated"],
                 300, "both epochs evaluated after the restart")
    finally:
        assert stop(daemon) == 0
    subjects = commit_subjects(tmp_path / "results")
    for epoch in (1, 2):
        assert len([s for s in subjects if s.startswith(f"{RUN} epoch {epoch}:")]) == 1, subjects


def test_sigterm_that_native_code_turns_into_another_error_is_still_a_shutdown(
    tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handler's exception can be raised inside safetensors (Rust) or torch, which catch
    it and raise their own. Seen in CI: SIGTERM during the LoRA load came back as
    "cannot read tensors (could not determine the shape of object type
    'torch.storage.UntypedStorage')" and the epoch was marked failed for good."""
    run = "E2E_SIGTERM_NATIVE"
    config = write_watch_config(tmp_path, tiny_model_dir, name=run, epochs=1, size=64, steps=1)
    trainer = subprocess.run(epochwatch("simtrain", "--config", str(config), "--interval", "0.1"),
                             capture_output=True, timeout=120)
    assert trainer.returncode == 0, trainer.stderr
    lora = next((tmp_path / "output").glob("*.safetensors"))
    daemon = Daemon(load_config(config))
    previous = signal.signal(signal.SIGTERM, daemon._on_term)
    daemon.open()
    try:
        ck, _ = daemon.store.add_checkpoint(run, str(lora), 1, hashlib.sha256(lora.read_bytes()).hexdigest(),
                                            lora.stat().st_size, None, {})

        def load_file_as_native_code_does(path: str) -> None:
            try:
                os.kill(os.getpid(), signal.SIGTERM)  # the daemon's handler raises in here...
                time.sleep(10)
            except BaseException:  # ...and the native caller puts its own error in its place
                raise TypeError("could not determine the shape of object type "
                                "'torch.storage.UntypedStorage'") from None
            raise AssertionError("the SIGTERM handler did not run")

        with monkeypatch.context() as patch:
            patch.setattr("safetensors.torch.load_file", load_file_as_native_code_does)
            with pytest.raises(ShutdownRequested):
                daemon._process(ck)
        (again,) = daemon.store.checkpoints(run)
        assert (again.status, again.error) == ("pending", None)  # to be redone, not failed
        assert daemon.store.evaluations(run) == []

        daemon._stopping = False  # what a fresh start would be: the real load now succeeds
        daemon._process(daemon.store.next_pending(run))
        assert [c.status for c in daemon.store.checkpoints(run)] == ["evaluated"]
    finally:
        signal.signal(signal.SIGTERM, previous)
        daemon.close()
