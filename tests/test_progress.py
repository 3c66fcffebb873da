"""Progress on a terminal (a real pty), quiet off it, in JSON mode and under systemd; Ctrl-C
says how far it got and keeps what was already printed or written."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.e2e import drain_pty

REPO = Path(__file__).resolve().parent.parent
COUNT = 120


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("many")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(COUNT):
        cells = rng.integers(0, 4, (24, 24))
        palette = np.array([[0, 255, 0], [200, 40, 40], [240, 200, 160], [30, 30, 30]], dtype=np.uint8)
        rgb = np.kron(palette[cells], np.ones((10, 10, 1), dtype=np.uint8))
        paths.append(folder / f"img{i:03d}.png")
        Image.fromarray(rgb).save(paths[-1])
    return paths


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("INVOCATION_ID", "JOURNAL_STREAM")}
    return {**env, "COLUMNS": "100", "TERM": "xterm", **extra}


def _in_pty(argv: list[str], env: dict[str, str], interrupt_at: int | None = None) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pty; with interrupt_at, send SIGINT (what
    Ctrl-C sends) once the bar shows that many done. (exit status, everything shown)."""
    leader, follower = pty.openpty()
    # Ctrl-C's default action in the child even when this suite runs as a background job
    # (a shell starts those with SIGINT ignored, and the child would inherit that)
    proc = subprocess.Popen([sys.executable, "-m", "watcher", *argv], stdin=subprocess.DEVNULL,
                            stdout=follower, stderr=follower, cwd=REPO, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    os.close(follower)
    shown, sent, deadline = b"", False, time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        if interrupt_at is not None and not sent:
            done = [int(n) for n in re.findall(rb"(\d+)/%d" % COUNT, shown)]
            if done and max(done) >= interrupt_at:
                proc.send_signal(signal.SIGINT)
                sent = True
        if proc.poll() is not None and not ready:
            break
    os.close(leader)
    return proc.wait(30), shown.decode(errors="replace")


def test_score_shows_progress_and_ctrl_c_keeps_the_table(images: list[Path]) -> None:
    rc, shown = _in_pty(["score", *map(str, images), "--prompt", "green background"], _env(), interrupt_at=3)
    assert rc == 130, shown[-2000:]
    assert "scoring" in shown
    done = int(re.search(rf"interrupted after (\d+) of {COUNT} images", shown).group(1))  # type: ignore[union-attr]
    assert 3 <= done < COUNT
    rows = [ln for ln in shown.splitlines() if re.match(r"\S*img\d{3}\.png\s+#", ln.strip())]
    assert len(rows) == done  # every image scored before Ctrl-C is in the table
    assert "Traceback" not in shown


def test_downscale_ctrl_c_keeps_the_files_written(images: list[Path], tmp_path: Path) -> None:
    rc, shown = _in_pty(["downscale", *map(str, images), "--out-dir", str(tmp_path)], _env(), interrupt_at=3)
    assert rc == 130 and "downscaling" in shown
    done = int(re.search(rf"interrupted after (\d+) of {COUNT} images", shown).group(1))  # type: ignore[union-attr]
    written = sorted(p.name for p in tmp_path.iterdir())
    assert len(written) == done and all(p.endswith(".png") and not p.startswith(".") for p in written)


@pytest.mark.parametrize(("extra_argv", "env"), [
    (["--json"], {}),                              # JSON mode
    ([], {"JOURNAL_STREAM": "8:12345"}),           # under systemd
    ([], {"INVOCATION_ID": "0123456789abcdef"}),
])
def test_quiet_in_json_mode_and_under_systemd(images: list[Path], extra_argv: list[str], env: dict[str, str]) -> None:
    rc, shown = _in_pty(["score", *map(str, images[:3]), "--cells", "24", *extra_argv], _env(**env))
    assert rc == 0
    assert "scoring" not in shown and "3/3" not in shown


def test_quiet_when_stderr_is_not_a_terminal(images: list[Path]) -> None:
    proc = subprocess.run([sys.executable, "-m", "watcher", "score", *map(str, images[:3]), "--prompt", "green background"], capture_output=True,
                          text=True, cwd=REPO, env=_env(), timeout=60)
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout.count("img00") == 3


def _python_in_pty(code: str, env: dict[str, str]) -> str:
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=follower,
                            stderr=follower, cwd=REPO, env=env)
    os.close(follower)
    shown = drain_pty(leader)
    assert proc.wait(60) == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


WAIT = ("import sys, time\n"
        "from watcher.progress import Waiting\n"
        "w = Waiting()\n"
        "for _ in range(4):\n"
        "    w.update('trainer running; waiting for epoch 1')\n"
        "    time.sleep(0.1)\n"
        "w.print('epoch  1: bg 0/2 right -> continue', sys.stdout)\n"
        "w.stop()\n")


def test_the_launchers_wait_shows_a_spinner_on_a_terminal_only() -> None:
    shown = _python_in_pty(WAIT, _env())
    assert "trainer running; waiting for epoch 1: 0 s" in shown
    assert "epoch  1: bg 0/2 right -> continue" in shown
    quiet = _python_in_pty(WAIT, _env(INVOCATION_ID="0123456789abcdef"))
    assert "waiting for epoch" not in quiet and "epoch  1: bg 0/2 right -> continue" in quiet
