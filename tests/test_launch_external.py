"""`launch` next to the daemon service (EPOCHWATCH_DAEMON=external) waits, bounded, for that
daemon to finish the epochs already written, and tells their verdicts, as it does with a
daemon of its own. Real processes: the daemon (`watch`), the launcher and `simtrain`."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.conftest import write_watch_config
from tests.e2e import epochwatch, passing_stop_rule, start, wait_for
from watcher.store import Store

RUN = "E2E_EXTERNAL"


def test_launch_waits_for_the_external_daemon(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = write_watch_config(tmp_path, tiny_model_dir, name=RUN, epochs=3, size=64, steps=1,
                                interval=0.1, criteria=passing_stop_rule(2))
    daemon = start(epochwatch("watch", "--config", str(config)), tmp_path / "daemon.log", cwd=tmp_path)
    try:
        db = tmp_path / "state" / "state.db"
        wait_for(lambda: db.exists() and (Store(db).daemon_state(RUN) == "idle"), 300,
                 "the external daemon to be ready", interval=0.5)
        env = {**os.environ, "EPOCHWATCH_DAEMON": "external"}
        proc = subprocess.run(epochwatch("launch", "--config", str(config)), capture_output=True, text=True,
                              cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
        out = proc.stdout
        assert "daemon: using the one already running" in out and "trainer ended: exited" in out
        # the trainer wrote its 3 files in well under a second; every verdict was still told
        for epoch in (1, 2, 3):
            assert f"epoch  {epoch}: " in out, out
        assert out.index("trainer ended") < out.index("epoch  3: ")
        with Store(db) as store:
            assert sorted(e.epoch for e in store.evaluations(RUN)) == [1, 2, 3]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
