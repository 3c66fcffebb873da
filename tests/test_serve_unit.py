"""The optional systemd unit for `epochwatch serve`: systemd accepts it, it starts the server
on loopback, and it keeps its hardening (no GPU, loopback-only network, low exposure)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_systemd_units import parse_unit

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "epochwatch-serve@.service"
SHIPPED_BINARY = "/opt/epochwatch/.venv/bin/epochwatch"
needs_systemd = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def test_serve_unit_runs_serve_on_loopback_hardened() -> None:
    unit = parse_unit(UNIT.read_text())
    service = unit["Service"]
    [exec_start] = service["ExecStart"]
    assert exec_start.startswith(f"{SHIPPED_BINARY} serve --config /etc/epochwatch/%i.toml")
    assert "--host 127.0.0.1" in exec_start and "TOKEN" not in exec_start
    assert service["EnvironmentFile"] == ["/etc/epochwatch/epochwatch.env"]
    assert service["User"] == ["epochwatch"] and service["RestartPreventExitStatus"] == ["2"]
    for key in ("NoNewPrivileges", "PrivateDevices", "MemoryDenyWriteExecute", "ProtectKernelTunables"):
        assert service[key] == ["yes"], key
    assert service["ProtectSystem"] == ["strict"] and service["CapabilityBoundingSet"] == [""]
    assert service["IPAddressDeny"] == ["any"] and service["IPAddressAllow"] == ["localhost"]
    # Same user as the trainer: RemoveIPC would delete its /dev/shm when this unit stops.
    assert "RemoveIPC" not in service
    # Never coupled to the daemon or the trainer.
    for key in ("Requires", "BindsTo", "PartOf", "Requisite"):
        assert key not in unit["Unit"], key


def _instance(tmp_path: Path) -> Path:
    binary = Path(sys.executable).parent / "epochwatch"
    assert binary.exists(), f"{binary} missing: run `make setup`"
    (tmp_path / UNIT.name).write_text(UNIT.read_text().replace(SHIPPED_BINARY, str(binary)))
    link = tmp_path / UNIT.name.replace("@.", "@demo.")
    link.symlink_to(UNIT.name)
    return link


@needs_systemd
def test_systemd_accepts_the_serve_unit_and_rates_it_ok(tmp_path: Path) -> None:
    unit = _instance(tmp_path)
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)],
                          capture_output=True, text=True, timeout=120)
    complaints = [line for line in (proc.stdout + proc.stderr).splitlines() if "epochwatch" in line]
    assert proc.returncode == 0 and complaints == [], complaints
    proc = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=120)
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) < 2.0, proc.stdout
