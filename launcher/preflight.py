"""Pre-flight: what `launch` needs, checked before any model loads or process starts.

Each failure is one line naming the config file and the key (`CommandError`, exit 2): the
trainer command found and executable, its `cwd` a folder, the output folder, state folder and
results repository writable (or creatable). The model and the kohya config are checked where
they are read (`check_model`, `load_config`). `launch` runs all of it; `watch --once`, the
documented dry run, runs it too when the config names a trainer; every daemon start checks
the folders it writes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from watcher.config import WatchConfig
from watcher.errors import CommandError


def writable_problem(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or in the folder that would be created there),
    tried for real: permission bits say nothing for root, read-only mounts or full quotas."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            return "no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as exc:
        return f"cannot write in {probe}: {exc.strerror or exc}"
    return None


def check_writable(cfg: WatchConfig, *keys: str) -> None:
    """The folders named by `keys` ("results.repo", "run.state_dir", "run.output_dir")."""
    folders = {"results.repo": cfg.results_repo, "run.state_dir": cfg.run.state_dir,
               "run.output_dir": cfg.output_dir}
    for key in keys:
        folder = Path(folders[key])
        if (problem := writable_problem(folder)) is not None:
            raise CommandError(f"{cfg.path}: {key} {folder}: {problem}")


def _program(command: list[str], cwd: Path) -> str | None:
    """The trainer program as exec would find it (a path with a slash is relative to cwd)."""
    name = command[0]
    if "/" in name:
        path = Path(name) if Path(name).is_absolute() else cwd / name
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(name)


def check_trainer(cfg: WatchConfig) -> None:
    tc = cfg.trainer
    if not tc.command:
        raise CommandError(f"{cfg.path}: trainer.command is empty: launch needs the trainer's command")
    if not Path(tc.cwd).is_dir():
        raise CommandError(f"{cfg.path}: trainer.cwd {tc.cwd}: no such folder")
    if _program(list(tc.command), Path(tc.cwd)) is None:
        raise CommandError(f"{cfg.path}: trainer.command: {tc.command[0]!r} is not an executable "
                           f"program (looked in {'trainer.cwd' if '/' in tc.command[0] else 'PATH'})")
    if (problem := writable_problem(Path(tc.log_file).parent)) is not None:
        raise CommandError(f"{cfg.path}: trainer.log_file {tc.log_file}: {problem}")


def check_prompts(cfg: WatchConfig) -> None:
    """A config with no prompt at all loads (status and report need none), but a daemon
    that renders would judge nothing: refused where one would start."""
    if cfg.sampling.source == "render" and not cfg.prompts():
        raise CommandError(f"{cfg.path}: sampling.prompts: no prompts (set sampling.prompts or "
                           "sampling.prompts_file): the daemon would render nothing to judge")


def check_launch(cfg: WatchConfig) -> None:
    """Everything `launch` needs that can be known without starting anything."""
    check_prompts(cfg)
    check_trainer(cfg)
    check_writable(cfg, "run.state_dir", "run.output_dir", "results.repo")
