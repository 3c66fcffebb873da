"""Shared fixtures. No network: everything is built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401 - one server per session

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the CLI does; before torch loads
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SD1.5-shaped diffusers folder, built once per test session."""
    from watcher.tinymodel import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-model") / "tiny-sd"
    build_tiny_model(out, seed=0)
    return out


E2E_PROMPTS = [
    "pixel art portrait, pink hair (#ff66cc), lips (#cc6666), solid green background (#00ff00)",
    "pixel art portrait, blue shirt (#1e90ff), solid green background (#00ff00)",
]


def write_watch_config(
    root: Path,
    model_dir: Path,
    *,
    name: str = "E2E_RUN",
    epochs: int = 10,
    size: int = 128,
    steps: int = 2,
    interval: float = 0.5,
    criteria: str = "",
    extra_trainer: str = "",
) -> Path:
    """A small but complete watcher config for end-to-end tests (real model, real files)."""
    import sys

    config = root / "config.toml"
    prompts = ",\n".join(f'  {{ text = "{p}" }}' for p in E2E_PROMPTS)
    trainer = [sys.executable, "-m", "watcher", "simtrain", "--config", str(config),
               "--interval", str(interval)]
    config.write_text(f"""
[run]
name = "{name}"
output_dir = "output"
output_name = "e2e_lora"
max_train_epochs = {epochs}
save_every_n_epochs = 1
state_dir = "state"
expected_epoch_minutes = 1.0

[model]
base = "{model_dir}"
device = "cpu"
dtype = "float32"
steps = {steps}
width = {size}
height = {size}
batch_size = 2

[sampling]
seeds = [7]
prompts = [
{prompts}
]

[results]
repo = "results"
dir = "runs"

[daemon]
rescan_interval_s = 1.0
settle_interval_s = 0.2

[trainer]
command = [{", ".join(repr(c).replace("'", '"') for c in trainer)}]
log_file = "logs/trainer.log"
stop_grace_s = 3.0
{extra_trainer}
{criteria}
""")
    return config


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI a skipped test is a failure: every skip names something the machine lacks, and
    CI's own set-up (make setup, scripts/system-deps.sh) must provide it."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            print(f"\nCI=true and a test was skipped: {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
