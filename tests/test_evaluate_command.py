"""`epochwatch evaluate CHECKPOINT`: the daemon's epoch path in one shot, recorded once
(real tiny model, real kohya-format LoRA files from simtrain, real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.e2e import commit_subjects, epochwatch
from watcher.testing import write_watch_config

RUN = "E2E_EVALUATE"


def test_evaluate_one_checkpoint_then_again_prints_the_recorded_result(
        tmp_path: Path, tiny_model_dir: Path) -> None:
    config = write_watch_config(tmp_path, tiny_model_dir, name=RUN, epochs=1, size=64, steps=1)
    trainer = subprocess.run(epochwatch("simtrain", "--config", str(config), "--interval", "0.1"),
                             capture_output=True, timeout=120)
    assert trainer.returncode == 0, trainer.stderr
    lora = next((tmp_path / "output").glob("*.safetensors"))

    first = subprocess.run(epochwatch("evaluate", str(lora), "--config", str(config)),
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.splitlines()
    assert lines[0].startswith("epoch 1: ") and " -> " in lines[0]
    assert lines[1] == f"results: {tmp_path / 'results' / 'runs' / RUN / 'epoch-001'}"
    commit = lines[2].removeprefix("commit:  ")
    assert len(commit) == 40
    assert (tmp_path / "results" / "runs" / RUN / "epoch-001" / "metrics.json").is_file()

    again = subprocess.run(epochwatch("evaluate", str(lora), "--config", str(config)),
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout == first.stdout  # the recorded result, not a second evaluation
    assert [s for s in commit_subjects(tmp_path / "results") if s.startswith(f"{RUN} epoch")] \
        == [f"{RUN} {lines[0]}"]

    missing = subprocess.run(epochwatch("evaluate", str(tmp_path / "nope.safetensors"),
                                        "--config", str(config)), capture_output=True, text=True)
    assert missing.returncode != 0
    assert missing.stderr.strip().endswith(f"no such checkpoint file: {tmp_path / 'nope.safetensors'}")
