"""`epochwatch serve` on a port already in use: one line, exit 2, and no URL printed first."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from tests.test_serve_support import add_epoch, make_config, serve_cmd


def test_port_in_use_is_one_line_exit_2(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    add_epoch(config, 1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(serve_cmd(config, "--port", str(port)), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == f"epochwatch serve: cannot listen on 127.0.0.1 port {port}: already in use\n"
    assert "http://" not in proc.stdout
