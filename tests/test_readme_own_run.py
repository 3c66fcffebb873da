"""The README's "Use it on your own run" walkthrough, executed: its watcher.toml and prompts
file, and every command of the blocks marked `<!-- own-run:... -->`, against the tiny model.

Only what names the reader's machine is replaced: the kohya config and the trainer (here
`simtrain` writing 3 kohya-format epochs), and the model's render size and steps (CPU speed)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"<!-- own-run:(file (?P<name>\S+)|shell) -->\n```\w*\n(?P<body>.*?)```", re.S)
KOHYA = """
[model_arguments]
pretrained_model_name_or_path = "{model}"
[additional_network_arguments]
network_module = "networks.lora"
network_dim = 4
network_alpha = 2
[training_arguments]
output_dir = "output"
output_name = "my_lora"
save_model_as = "safetensors"
save_every_n_epochs = 1
max_train_epochs = 3
"""
SPEED = '\n[model]\ndevice = "cpu"\ndtype = "float32"\nsteps = 1\nwidth = 64\nheight = 64\n'


def readme_blocks() -> tuple[dict[str, str], list[str]]:
    files: dict[str, str] = {}
    commands: list[str] = []
    for m in BLOCK.finditer((REPO / "README.md").read_text(encoding="utf-8")):
        if m.group("name"):
            files[m.group("name")] = m.group("body")
        else:
            commands += [re.sub(r"\s+#.*$", "", line).strip() for line in m.group("body").splitlines()
                         if line.strip() and not line.lstrip().startswith("#")]
    return files, commands


def test_the_readme_blocks_are_found() -> None:
    files, commands = readme_blocks()
    assert set(files) == {"watcher.toml", "prompts.txt"}
    assert commands[0].startswith("epochwatch watch --once") and any(c.startswith("epochwatch launch") for c in commands)
    assert "background" in files["prompts.txt"] and "kohya_config" in files["watcher.toml"]


def test_the_own_run_walkthrough_runs(tmp_path: Path, tiny_model_dir: Path) -> None:
    files, commands = readme_blocks()
    run = tmp_path / "run"
    run.mkdir()
    (run / "my_lora.toml").write_text(KOHYA.format(model=tiny_model_dir))
    (run / "prompts.txt").write_text(files["prompts.txt"])
    trainer = [sys.executable, "-m", "watcher", "simtrain", "-c", str(run / "watcher.toml"), "--interval", "0.2"]
    toml = re.sub(r"^command = .*$", f"command = {json.dumps(trainer)}", files["watcher.toml"], count=1, flags=re.M)
    toml = re.sub(r'^cwd = ".*"', f'cwd = "{run}"', toml, count=1, flags=re.M)
    assert toml != files["watcher.toml"]
    (run / "watcher.toml").write_text(toml + SPEED)
    # `epochwatch` on PATH, as after step 1, running this checkout
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "epochwatch"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m watcher "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    outputs = {}
    for command in commands:
        proc = subprocess.run(["/bin/sh", "-c", command], cwd=run, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, f"{command}: {proc.stdout[-1500:]}{proc.stderr[-1500:]}"
        outputs[command.split(" -c ")[0]] = proc.stdout
    launch = outputs["epochwatch launch"]
    assert all(f"epoch  {n}: " in launch for n in (1, 2, 3)) and "trainer ended: exited" in launch
    status = outputs["epochwatch status"]
    assert "run       MY_PIXEL_LORA_V1 (finished)" in status
    assert len(re.findall(r"^\s+\d\s+evaluated", status, re.M)) == 3
    # the trainer's figures, from its progress lines (this kohya config has no logging_dir)
    assert re.search(r"^training  step (\d+)/\1, epoch 3/3, loss \d\.\d+, .* \(log\)$", status, re.M), status
    assert "results/runs/MY_PIXEL_LORA_V1/loss.png" in outputs["epochwatch report"]
    assert len(outputs["git -C results log --oneline"].splitlines()) >= 4  # 3 epochs + the report
    assert outputs["epochwatch report"].splitlines()[-1].startswith(("committed", "unchanged since commit"))
