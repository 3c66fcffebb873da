"""Which machine a daemon runs on: host name, GPU (name, memory) and where its results go.

Sent with every Supabase row (columns from migration 0004) and kept in the state database's
`meta` table, so `epochwatch runs` and the analyses can say, and group by, where a run ran.
Standard library only: torch is asked only when the daemon has already imported it, else
`nvidia-smi` is (a CPU-only host has neither and says "CPU only").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

CPU_ONLY = "CPU only"
HOST_ENV = "EPOCHWATCH_HOST"  # overrides the host name (pods often have random ones)
META_KEY = "host"


def _cuda_index(device: str) -> int:
    match = re.fullmatch(r"cuda:(\d+)", device)
    return int(match.group(1)) if match else 0


def _gpu_from_torch(index: int) -> tuple[str, int] | None:
    torch = sys.modules.get("torch")  # never import it here: `runs` and `status` stay light
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return None
        props = torch.cuda.get_device_properties(index)
        return str(props.name), int(props.total_memory) // 2**20
    except Exception:  # noqa: BLE001 - a broken driver means "no GPU known", not a crash
        return None


def _gpu_from_nvidia_smi(index: int) -> tuple[str, int] | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits", f"--id={index}"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
        name, memory = (part.strip() for part in out[0].rsplit(",", 1))
        return name, int(float(memory))
    except (OSError, subprocess.SubprocessError, IndexError, ValueError):
        return None


def gpu_info(device: str) -> tuple[str, int | None]:
    """(GPU name, memory in MiB) of the device the evaluator uses; ("CPU only", None) when
    it runs on the CPU (configured so, or no GPU found)."""
    if device == "cpu":
        return CPU_ONLY, None
    if device == "mps":
        return "Apple MPS", None
    index = _cuda_index(device)
    found = _gpu_from_torch(index) or _gpu_from_nvidia_smi(index)
    return found if found else (CPU_ONLY, None)


def host_name() -> str:
    return os.environ.get(HOST_ENV, "").strip() or socket.gethostname()


def _strip_credentials(url: str) -> str:
    return re.sub(r"(\b[a-z][a-z0-9+.-]*://)[^\s/@]+@", r"\1", url, flags=re.IGNORECASE)


def remote_url(repo: Path, remote: str) -> str | None:
    """The URL of the results repository's remote, without any user:token@ part."""
    if not remote:
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "remote", "get-url", remote],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return _strip_credentials(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def describe(device: str, results_dir: Path, repo: Path, remote: str) -> dict[str, Any]:
    """The host columns of this daemon's rows (see migration 0004)."""
    name, memory = gpu_info(device)
    host = host_name()
    return {
        "host": host,
        "gpu_name": name,
        "gpu_memory_mb": memory,
        "results_location": f"{host}:{results_dir}",
        "results_remote": remote_url(repo, remote),
    }


def record(conn: Any, info: dict[str, Any]) -> None:
    """Keep the description in the state database (`meta`), for `epochwatch runs`."""
    conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                 "value=excluded.value", (META_KEY, json.dumps(info, sort_keys=True)))


def recorded(conn: Any) -> dict[str, Any]:
    """What `record` kept, or {} for a state database from before it existed."""
    row = conn.execute("SELECT value FROM meta WHERE key=?", (META_KEY,)).fetchone()
    try:
        value = json.loads(row[0]) if row else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
