"""Shared fixtures. No network: everything is built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pg import pg_database_fixture, postgres_fixture  # noqa: F401 - one server per session
from watcher.testing import E2E_PROMPTS, FakePipeline, write_watch_config  # noqa: F401 - shared

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


@pytest.fixture(scope="session")
def tiny_sdxl_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny SDXL-shaped diffusers folder, built once per test session."""
    from watcher.tinymodel import build_tiny_model

    out = tmp_path_factory.mktemp("tiny-sdxl-model") / "tiny-sdxl"
    build_tiny_model(out, seed=0, sdxl=True)
    return out


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """On CI a skipped test is a failure: every skip names something the machine lacks, and
    CI's own set-up (make test: make setup, then scripts/system-deps.sh) must provide it."""
    if not os.environ.get("CI"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped:
        for report in skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            print(f"\nCI=true and a test was skipped: {report.nodeid}: {reason}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
