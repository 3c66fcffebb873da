"""Shared fixtures. No network: everything is built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
