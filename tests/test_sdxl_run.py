"""SDXL runs: the family found from the trainer script or the model, SDXL's native size and
per-family judging from the config, `demo --sdxl` and a whole `launch` on the tiny SDXL model."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from safetensors import safe_open

from tests.conftest import write_watch_config
from tests.e2e import epochwatch, start
from watcher.config import ConfigError, load_config
from watcher.kohya import check_fits, lora_target_names
from watcher.store import Store

PROMPTS = 'prompts = [{ text = "pixel art portrait, solid green background (#00ff00)" }]\n'


def _config(folder: Path, model: str, *, command: str = "", extra: str = "") -> Path:
    path = folder / "watcher.toml"
    path.write_text(f'''[run]
name = "FAMILY"
output_dir = "out"
output_name = "lora"
max_train_epochs = 10

[model]
base = "{model}"
{extra}
[sampling]
{PROMPTS}
[trainer]
command = [{command}]
''')
    return path


def test_sdxl_trainer_script_sets_the_family_native_size_and_its_judging(tmp_path: Path) -> None:
    script = '"/opt/sd-scripts/venv/bin/accelerate", "launch", "/opt/sd-scripts/sdxl_train_network.py"'
    cfg = load_config(_config(tmp_path, "stabilityai/stable-diffusion-xl-base-1.0", command=script,
                              extra="[evaluation]\ncells = 24\n[evaluation.sdxl]\ncells = 22\n"))
    assert (cfg.model.family, cfg.model.width, cfg.model.height) == ("sdxl", 1024, 1024)
    assert cfg.evaluation.cells == 22 and {p.width for p in cfg.prompts()} == {1024}
    # SD 1.5 (train_network.py): 512 px, and the SD 1.5 cells, not the SDXL ones
    sd15 = load_config(_config(tmp_path, "runwayml/stable-diffusion-v1-5",
                               command='"/opt/sd-scripts/train_network.py"',
                               extra="[evaluation.sdxl]\ncells = 22\n"))
    assert (sd15.model.family, sd15.model.width, sd15.evaluation.cells) == ("sd15", 512, 24)
    # a size the config sets wins over the family's
    sized = load_config(_config(tmp_path, "x/y", command=script, extra="width = 768\n"))
    assert (sized.model.width, sized.model.height) == (768, 1024)


def test_family_from_the_model_and_a_disagreement_is_refused(
        tmp_path: Path, tiny_model_dir: Path, tiny_sdxl_model_dir: Path) -> None:
    assert load_config(_config(tmp_path, str(tiny_sdxl_model_dir))).model.family == "sdxl"
    assert load_config(_config(tmp_path, str(tiny_model_dir))).model.family == "sd15"
    bad = _config(tmp_path, str(tiny_model_dir), command='"/opt/sd-scripts/sdxl_train_network.py"')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert str(err.value) == (f"{bad}:7: model.family: the run's model family disagrees: "
                              "[trainer] command says sdxl, model.base says sd15")
    declared = _config(tmp_path, str(tiny_sdxl_model_dir), extra='family = "sd15"\n')
    with pytest.raises(ConfigError, match="model.base says sdxl, model.family says sd15"):
        load_config(declared)


def test_build_tiny_model_sdxl_cli_refuses_a_folder_holding_the_other_family(
        tiny_model_dir: Path) -> None:
    out = subprocess.run(epochwatch("build-tiny-model", "--sdxl", "--out-dir", str(tiny_model_dir)),
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().endswith(f"{tiny_model_dir} holds the tiny sd15 model; choose another folder")


def test_demo_sdxl_setup_only_writes_an_sdxl_config(tmp_path: Path, tiny_sdxl_model_dir: Path) -> None:
    # the session's tiny SDXL model where the demo keeps it: setup reuses a complete one
    shutil.copytree(tiny_sdxl_model_dir, tmp_path / "models" / "tiny-sdxl")
    out = subprocess.run(epochwatch("demo", "--sdxl", "--setup-only", "--out-dir", str(tmp_path)),
                         capture_output=True, text=True, check=True)
    cfg = load_config(out.stdout.strip().splitlines()[-1])
    assert cfg.run.name == "DEMO_SDXL_KEEP_TOKENS_3" and cfg.model.family == "sdxl"
    assert Path(cfg.base_model) == tmp_path / "models" / "tiny-sdxl"
    assert (tmp_path / "models" / "tiny-sdxl" / "text_encoder_2" / "config.json").is_file()


def test_sdxl_run_end_to_end(tmp_path: Path, tiny_sdxl_model_dir: Path) -> None:
    """simtrain writes kohya SDXL LoRA epochs; the daemon loads each into the warm SDXL
    pipeline (a LoRA that does not land fails its epoch), renders, judges and commits it."""
    config = write_watch_config(tmp_path, tiny_sdxl_model_dir, name="E2E_SDXL", epochs=2,
                                size=64, interval=0.5)
    proc = start(epochwatch("launch", "--config", str(config)), tmp_path / "launch.log", cwd=tmp_path)
    rc = proc.wait(300)
    log = (tmp_path / "launch.log").read_text()
    assert rc == 0, log[-3000:]
    with Store(tmp_path / "state" / "state.db") as s:
        statuses = {c.epoch: c.status for c in s.checkpoints("E2E_SDXL")}
        evaluations = s.evaluations("E2E_SDXL")
    assert statuses == {1: "evaluated", 2: "evaluated"}, log[-3000:]
    assert all(e.git_commit for e in evaluations)
    targets = lora_target_names(tiny_sdxl_model_dir)
    for name in ("e2e_lora-000001", "e2e_lora"):
        with safe_open(str(tmp_path / "output" / f"{name}.safetensors"), framework="pt") as f:
            meta = f.metadata()
            counts = check_fits({k: f.get_slice(k).get_shape() for k in f.keys()}, targets)
        assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
        assert meta["modelspec.architecture"] == "stable-diffusion-xl-v1-base/lora"
        assert counts["unet"] > 0 and counts["text_encoder"] > 0 and counts["text_encoder_2"] > 0
    samples = sorted((tmp_path / "results" / "runs" / "E2E_SDXL").glob("epoch-002/**/*.png"))
    assert samples, "no samples committed for epoch 2"
