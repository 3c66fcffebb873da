"""The shipped systemd units: systemd itself accepts them, and they keep their hardening.

`systemd-analyze verify` checks that ExecStart binaries exist, so it runs on copies whose
ExecStart points at this checkout's venv; every other line is the shipped one. It only warns
(exit 0) about unknown keys and unparsable values, so any warning about our files fails too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

REPO_ROOT = Path(__file__).resolve().parent.parent
UNIT_DIR = REPO_ROOT / "systemd"
WATCH_UNIT = "epochwatch-watch@.service"
TRAIN_UNIT = "epochwatch-train@.service"
SHIPPED_BINARY = "/opt/epochwatch/.venv/bin/epochwatch"
# [trainer] stop_grace_s default (docs/INTERFACES.md): the launcher's SIGTERM-to-SIGKILL wait.
DEFAULT_STOP_GRACE_S = 30.0

Unit = dict[str, dict[str, list[str]]]

_needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)


def parse_unit(text: str) -> Unit:
    """Sections -> key -> every value in order (systemd keys may repeat, e.g. DeviceAllow)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):  # continuation line
            pending = line[:-1].rstrip() + " "
            continue
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"assignment outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not an assignment: {line!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


_TIMESPAN_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}


def timespan_s(value: str) -> float:
    """systemd time span ("5min", "1min 30s", "90") -> seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value)
    assert parts and "".join(n + u for n, u in parts) == value.replace(" ", ""), value
    return sum(float(n) * _TIMESPAN_UNITS[u or "s"] for n, u in parts)


def load(name: str) -> Unit:
    return parse_unit((UNIT_DIR / name).read_text())


def single(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key)
    assert values, f"[{section}] {key}= is missing"
    assert len(values) == 1, f"[{section}] {key}= is set {len(values)} times"
    return values[0]


def test_parser_handles_repeats_and_continuations() -> None:
    unit = parse_unit("[A]\n# c\nK=1\nK=2\nL=a \\\n  b\n")
    assert unit == {"A": {"K": ["1", "2"], "L": ["a b"]}}
    assert timespan_s("1min 30s") == 90.0
    assert timespan_s("250ms") == 0.25


def test_daemon_unit_speaks_notify_with_watchdog_and_restarts() -> None:
    unit = load(WATCH_UNIT)
    assert single(unit, "Service", "Type") == "notify"
    assert single(unit, "Service", "NotifyAccess") == "main"
    assert single(unit, "Service", "ExecStart") == (
        f"{SHIPPED_BINARY} watch --config /etc/epochwatch/%i.toml"
    )
    assert single(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    watchdog_s = timespan_s(single(unit, "Service", "WatchdogSec"))
    assert 60 <= watchdog_s <= 15 * 60, "watchdog must outlast one evaluation, not an epoch"
    assert timespan_s(single(unit, "Service", "TimeoutStartSec")) >= watchdog_s
    assert single(unit, "Service", "Restart") == "on-failure"
    assert timespan_s(single(unit, "Service", "RestartSec")) >= 1
    # A config error (exit status 2, watcher.cli.CommandError) is not retried.
    assert "2" in single(unit, "Service", "RestartPreventExitStatus").split()
    # Restart limits belong to [Unit]; in [Service] systemd ignores them.
    assert timespan_s(single(unit, "Unit", "StartLimitIntervalSec")) >= 60
    assert 1 <= int(single(unit, "Unit", "StartLimitBurst")) <= 10
    assert "StartLimitBurst" not in unit["Service"]
    assert single(unit, "Service", "KillMode") == "mixed"
    assert timespan_s(single(unit, "Service", "TimeoutStopSec")) >= 10
    assert single(unit, "Unit", "AssertPathExists") == "/etc/epochwatch/%i.toml"
    assert single(unit, "Install", "WantedBy") == "multi-user.target"


def test_train_unit_runs_the_launcher_apart_from_the_daemon() -> None:
    unit = load(TRAIN_UNIT)
    assert single(unit, "Service", "ExecStart") == (
        f"{SHIPPED_BINARY} launch --config /etc/epochwatch/%i.toml"
    )
    assert "EPOCHWATCH_DAEMON=external" in unit["Service"]["Environment"]
    # SIGTERM to the launcher only, which stops the trainer group with its own grace period;
    # systemd's SIGKILL must come well after that grace period.
    assert single(unit, "Service", "KillMode") == "mixed"
    # The longest grace period any shipped run config asks for, plus time for the launcher.
    graces = [DEFAULT_STOP_GRACE_S] + [
        float(tomllib.loads(p.read_text()).get("trainer", {}).get("stop_grace_s", DEFAULT_STOP_GRACE_S))
        for p in (REPO_ROOT / "configs").glob("*/watcher.toml")
    ]
    assert timespan_s(single(unit, "Service", "TimeoutStopSec")) >= max(graces) + 60
    assert single(unit, "Service", "Restart") == "no"
    assert unit["Unit"]["Wants"] == ["epochwatch-watch@%i.service"]
    assert unit["Unit"]["After"] == ["epochwatch-watch@%i.service"]


# Directives through which stopping or restarting one unit would stop or restart the other.
_COUPLING_KEYS = (
    "Requires", "Requisite", "BindsTo", "PartOf", "Upholds", "Conflicts",
    "PropagatesStopTo", "StopPropagatedFrom", "PropagatesReloadTo", "ReloadPropagatedFrom",
    "JoinsNamespaceOf", "Slice",
)


@pytest.mark.parametrize(("name", "other"), [(WATCH_UNIT, "epochwatch-train@"), (TRAIN_UNIT, "epochwatch-watch@")])
def test_daemon_restart_cannot_reach_training(name: str, other: str) -> None:
    unit = load(name)
    for section in unit.values():
        for key in _COUPLING_KEYS:
            for value in section.get(key, []):
                assert other not in value, f"{name}: {key}={value} couples the units"


@pytest.mark.parametrize("name", [WATCH_UNIT, TRAIN_UNIT])
def test_units_keep_their_hardening(name: str) -> None:
    service = load(name)["Service"]

    def value(key: str) -> str:
        assert key in service, f"{name}: {key}= is missing"
        return service[key][-1]

    assert value("User") == "epochwatch"
    assert value("Group") == "epochwatch"
    assert value("EnvironmentFile") == "/etc/epochwatch/epochwatch.env"
    assert value("NoNewPrivileges") == "yes"
    assert value("ProtectSystem") == "strict"
    assert value("ProtectHome") == "read-only"
    assert value("PrivateTmp") == "yes"
    assert value("StateDirectory") == "epochwatch"
    assert value("WorkingDirectory") == "/var/lib/epochwatch"
    assert "-/workspace" in service["ReadWritePaths"]
    assert value("CapabilityBoundingSet") == ""
    assert value("RestrictSUIDSGID") == "yes"
    for key in ("ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups"):
        assert value(key) == "yes", key
    # The GPU: only the NVIDIA nodes are allowed, and nothing hides or breaks them.
    assert value("DevicePolicy") == "closed"
    allowed = {entry.split()[0]: entry.split()[1] for entry in service["DeviceAllow"]}
    for node in ("char-nvidia-frontend", "char-nvidia-uvm", "/dev/nvidiactl", "/dev/nvidia-uvm"):
        assert allowed.get(node) == "rw", node
    assert service.get("PrivateDevices", ["no"])[-1] in ("no", "false")
    assert service.get("MemoryDenyWriteExecute", ["no"])[-1] in ("no", "false")
    # Both units run as the same user: RemoveIPC on one would delete the other's /dev/shm.
    assert "RemoveIPC" not in service


def _copy_for_verify(tmp_path: Path) -> Path:
    """Units with ExecStart pointing at this checkout's venv, plus instance links."""
    binary = Path(sys.executable).parent / "epochwatch"
    assert binary.exists(), f"{binary} missing: run `make setup`"
    for name in (WATCH_UNIT, TRAIN_UNIT):
        text = (UNIT_DIR / name).read_text()
        assert SHIPPED_BINARY in text
        (tmp_path / name).write_text(text.replace(SHIPPED_BINARY, str(binary)))
        (tmp_path / name.replace("@.", "@demo.")).symlink_to(name)
    return tmp_path


def _verify(folder: Path) -> tuple[int, list[str]]:
    """Runs systemd-analyze verify on the demo instances: exit status, lines about our units."""
    proc = subprocess.run(
        ["systemd-analyze", "verify", "--man=no",
         str(folder / "epochwatch-watch@demo.service"), str(folder / "epochwatch-train@demo.service")],
        capture_output=True, text=True, timeout=120,
    )
    ours = [line for line in (proc.stdout + proc.stderr).splitlines() if "epochwatch" in line]
    return proc.returncode, ours


@_needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    rc, complaints = _verify(_copy_for_verify(tmp_path))
    assert rc == 0, complaints
    assert complaints == []


@_needs_systemd_analyze
def test_verify_check_catches_broken_units(tmp_path: Path) -> None:
    folder = _copy_for_verify(tmp_path)
    watch = folder / WATCH_UNIT
    good = watch.read_text()
    watch.write_text(good.replace("WatchdogSec=5min", "WatchdogSec=five minutes\nProtectEverything=yes"))
    rc, complaints = _verify(folder)
    assert rc == 0  # systemd only warns about these two ...
    assert any("WatchdogSec" in c or "sec value" in c for c in complaints), complaints
    assert any("ProtectEverything" in c for c in complaints), complaints  # ... and we notice
    watch.write_text(good.replace(str(Path(sys.executable).parent / "epochwatch"), "/nonexistent/epochwatch"))
    rc, complaints = _verify(folder)
    assert rc != 0 and any("/nonexistent/epochwatch" in c for c in complaints), complaints


@_needs_systemd_analyze
@pytest.mark.parametrize("name", [WATCH_UNIT, TRAIN_UNIT])
def test_security_exposure_stays_low(tmp_path: Path, name: str) -> None:
    folder = _copy_for_verify(tmp_path)
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager",
         str(folder / name.replace("@.", "@demo."))],
        capture_output=True, text=True, timeout=120,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout + proc.stderr)
    assert match, proc.stdout + proc.stderr
    # 10 is an unhardened service; below 4 is what systemd labels "OK". GPU access, the
    # network (Supabase, alerts) and no syscall filter (untested with CUDA) cost the rest.
    assert float(match.group(1)) < 4.0, proc.stdout


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_sysusers_creates_the_service_user(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    subprocess.run(
        ["systemd-sysusers", f"--root={tmp_path}", str(UNIT_DIR / "epochwatch.sysusers.conf")],
        check=True, capture_output=True, timeout=60,
    )
    users = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/passwd").read_text().splitlines()}
    assert users["epochwatch"][5] == "/var/lib/epochwatch"
    assert users["epochwatch"][6].endswith("nologin")
    assert int(users["epochwatch"][2]) < 1000  # a system user
    groups = {line.split(":")[0]: line.split(":") for line in (tmp_path / "etc/group").read_text().splitlines()}
    assert "epochwatch" in groups["video"][3].split(",")


def test_env_example_names_only_the_secrets_and_holds_none() -> None:
    lines = (UNIT_DIR / "epochwatch.env.example").read_text().splitlines()
    assignments = [line.lstrip("#") for line in lines if re.match(r"#?[A-Z_]+=", line)]
    assert {a.split("=", 1)[0] for a in assignments} == {
        "SUPABASE_URL", "SUPABASE_KEY", "EPOCHWATCH_ALERT_URLS",
    }
    # Every assignment is commented out: installing the example enables nothing by accident.
    assert all(line.startswith("#") for line in lines if "=" in line)
