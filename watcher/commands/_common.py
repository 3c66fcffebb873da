"""Helpers shared by the command modules."""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from watcher.config import WatchConfig, load_config
from watcher.errors import CommandError, ConfigError
from watcher.runlock import RunLock, RunLocked


def load(path: str) -> WatchConfig:
    """Load a watcher config, turning a config error into a one-line command error."""
    try:
        return load_config(path)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    except FileNotFoundError as exc:
        raise CommandError(f"config file not found: {path}") from exc


@contextmanager
def run_lock(cfg: WatchConfig, role: str = "daemon") -> Iterator[RunLock]:
    """Hold the run's lock (watcher/runlock.py) for the block: a second writer of the same
    run is refused in one line naming the holder's pid."""
    try:
        lock = RunLock(cfg.run.state_dir, cfg.run.name, role).acquire()
    except RunLocked as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"run.state_dir {cfg.run.state_dir}: {exc.strerror or exc}") from None
    try:
        yield lock
    finally:
        lock.release()


def epochwatch_command() -> str:
    """How to run epochwatch from the shell this process was started in: `epochwatch` when
    that name on PATH is this installation, else this installation's script by its path
    (`make demo` runs .venv/bin/epochwatch without .venv/bin on PATH)."""
    script = Path(sys.executable).parent / "epochwatch"
    on_path = shutil.which("epochwatch")
    if on_path and script.exists() and Path(on_path).resolve() == script.resolve():
        return "epochwatch"
    if script.exists():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m watcher"


def _readable(path: Path) -> bool:
    try:
        if path.is_dir():
            os.listdir(path)
        else:
            with open(path, "rb"):
                pass
    except PermissionError:
        return False
    return True


def check_model(cfg: WatchConfig) -> None:
    """Refuse a local `model.base` that is missing or unreadable, in one line, before any
    slow import; a local model never reaches for the network (HF_HUB_OFFLINE)."""
    base = cfg.model.base
    if base is None or not Path(base).is_absolute():  # trainer-rendered samples, or a hub id
        return
    path = Path(base)
    where = f"model.base {base}"
    if not path.exists():
        raise CommandError(f"{where}: no such model file or folder")
    if path.is_file() and path.suffix != ".safetensors":
        raise CommandError(f"{where}: not a .safetensors file or a diffusers model folder")
    if not _readable(path):
        raise CommandError(f"{where}: permission denied")
    if path.is_file():
        return
    if not (path / "model_index.json").is_file():
        raise CommandError(f"{where}: not a diffusers model folder (no model_index.json)")
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            if not _readable(Path(folder, name)):
                raise CommandError(f"{where}: permission denied: {Path(folder, name)}")
    # a diffusers folder holds everything: never ask the hub (huggingface_hub reads this
    # when first imported, which has not happened yet in this process)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


Run = TypeVar("Run")


def runs_of_stores(paths: Iterable[Path], read: Callable[[Path], list[Run]],
                   name: Callable[[Run], str], missing_hint: str = "") -> list[Run]:
    """Every run of the state databases given (each read once), refusing a run name found in
    two of them: `runs` and `analyze` would otherwise silently show one of the two."""
    found: dict[str, tuple[Run, Path]] = {}
    for path in dict.fromkeys(p.resolve() for p in paths):
        try:
            runs = read(path)
        except FileNotFoundError as exc:
            raise CommandError(f"{exc}{missing_hint}") from None
        for run in runs:
            if name(run) in found:
                raise CommandError(f"run {name(run)} is in two stores ({found[name(run)][1]}, {path})")
            found[name(run)] = (run, path)
    return [run for run, _ in found.values()]
