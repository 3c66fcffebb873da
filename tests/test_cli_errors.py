"""What a user must fix is one line on stderr and exit 2, found before any slow import and
without a network attempt; a reader that leaves the pipe early gets no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_report_support import KEEP_TOKENS_3_PARAMS, ON_TIME, add_run, write_config

from watcher.config import load_config
from watcher.store import Store

REPO = Path(__file__).resolve().parent.parent
RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"
# root reads any file: drop the two capabilities that let it, so a mode-000 file is unreadable
NO_DAC = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


def _cli(*argv: str, env: dict[str, str] | None = None, prefix: list[str] | None = None,
         cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*(prefix or []), sys.executable, "-m", "watcher", *argv], capture_output=True,
                          text=True, timeout=120, cwd=cwd, env={**os.environ, **(env or {})})


def _one_line(proc: subprocess.CompletedProcess[str], command: str, message: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"epochwatch {command}: ") and message in proc.stderr, proc.stderr


def _with(config: Path, old: str, new: str) -> Path:
    text = config.read_text()
    assert old in text
    out = config.with_name("edited.toml")
    out.write_text(text.replace(old, new))
    return out


@pytest.fixture()
def listener() -> socket.socket:
    """A proxy that nobody should call: every HTTP(S) attempt would connect here."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(0.1)
    yield sock
    sock.close()


@pytest.mark.parametrize("base", ["/nonexistent/sd15", "models/typo-sd"])
def test_a_missing_model_is_one_line_fast_and_offline(tmp_path: Path, base: str, listener: socket.socket) -> None:
    config = _with(write_config(tmp_path), 'base = "models/tiny-sd"', f'base = "{base}"')
    (tmp_path / "models").mkdir()
    (tmp_path / "lora.safetensors").write_bytes(b"")
    proxy = f"http://127.0.0.1:{listener.getsockname()[1]}"
    env = {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "", "HTTPS_PROXY": proxy, "HTTP_PROXY": proxy}
    started = time.monotonic()
    for command in (["evaluate", str(tmp_path / "lora.safetensors")], ["watch", "--once"], ["launch"]):
        proc = _cli(*command, "-c", str(config), env=env)
        _one_line(proc, command[0], "no such model file or folder")
    assert time.monotonic() - started < 30  # no model load, no retries
    with pytest.raises(TimeoutError):
        listener.accept()


def test_an_unreadable_model_is_named_as_such(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    model = tmp_path / "models" / "tiny-sd"
    (model / "unet").mkdir(parents=True)
    (model / "model_index.json").write_text("{}")
    weights = model / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"\0" * 16)
    weights.chmod(0)
    proc = _cli("watch", "--once", "-c", str(config), prefix=NO_DAC)
    _one_line(proc, "watch", f"permission denied: {weights}")
    (model / "model_index.json").unlink()
    weights.chmod(0o644)
    _one_line(_cli("watch", "--once", "-c", str(config)), "watch", "not a diffusers model folder")


def test_a_missing_kohya_config_and_a_bad_prompt_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    missing = _with(config, 'kohya_config = "kohya.toml"', 'kohya_config = "nope.toml"')
    for command in ("status", "watch", "launch"):
        _one_line(_cli(command, "-c", str(missing)), command, f"file not found: {tmp_path / 'nope.toml'}")
    (tmp_path / "prompts.toml").write_text("[[prompt]]\ntext = 'unclosed\n")
    bad = _with(config, "seeds = [1234]", 'seeds = [1234]\nprompts_file = "prompts.toml"')
    for command in ("status", "watch", "launch"):
        _one_line(_cli(command, "-c", str(bad)), command, "prompts.toml: invalid TOML")


def test_an_unreadable_config_is_named_as_such(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.chmod(0)
    _one_line(_cli("status", "-c", str(config), prefix=NO_DAC), "status", f"{config}: cannot read config file: Permission denied")
    _one_line(_cli("status", "-c", str(tmp_path)), "status", "cannot read config file: Is a directory")


def _early_reader_exit(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run with stdout a pipe whose reader has already gone (as `| head -1` does)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "watcher", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120, cwd=REPO)
    finally:
        os.close(write)
    return proc


def test_broken_pipes_exit_quietly(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    with Store(load_config(config).state_db) as store:
        add_run(store, load_config(config).run_results_dir.parent, RUN, ON_TIME, KEEP_TOKENS_3_PARAMS)
    image = REPO / "tests" / "fixtures"
    pngs = sorted(image.rglob("*.png"))[:3]
    assert pngs
    for argv in (["status", "-c", str(config)], ["status", "-c", str(config), "--json"],
                 ["score", *map(str, pngs), "--cells", "8", "--prompt", "green background"]):
        proc = _early_reader_exit(argv)
        assert proc.returncode == 141 and proc.stderr.strip() == "", (argv, proc.stderr)


def test_replay_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    from watcher.samples import demo_set
    from watcher.samples.demo_set import EpochLook
    from watcher.testing import write_trainer_source_config

    images = demo_set.build(tmp_path / "past", story=(EpochLook(0, 1.0, 3.0, 0.03),) * 2,
                            subjects=demo_set.DEMO_SUBJECTS[:1])
    config = write_trainer_source_config(tmp_path, demo_set.prompts_file(images), name="PIPE",
                                         sampling="review_epochs = []", tables='[model]\nbase = "not-used"\n')
    proc = _early_reader_exit(["replay", "-c", str(config), "--images", str(images)])
    assert proc.returncode == 141 and "Traceback" not in proc.stderr, proc.stderr
