"""The stand-in trainer writes what kohya's train_network.py writes, the way it writes it."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from safetensors import safe_open

from launcher.simtrain import (
    DEFAULT_STEPS_PER_EPOCH,
    _data_hashes,
    simulate_training,
    steps_per_epoch,
)
from watcher.kohya import check_fits, lora_target_names

KEY = re.compile(r"^lora_(unet|te)_[a-z0-9_]+\.(lora_down\.weight|lora_up\.weight|alpha)$")
REPO = Path(__file__).resolve().parent.parent


def _header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return n, json.loads(f.read(n))


def test_files_names_keys_and_metadata(tiny_model_dir: Path, tmp_path: Path) -> None:
    log = io.StringIO()
    files = simulate_training(
        tiny_model_dir, tmp_path, "px", epochs=3, interval_s=0.0, network_dim=8,
        network_alpha=4, session_id=4242, seed=5, log=log, extra_metadata={"keep_tokens": 3},
        steps_per_epoch=203,
    )
    assert [f.name for f in files] == ["px-000001.safetensors", "px-000002.safetensors", "px.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f.name for f in files)
    targets = lora_target_names(tiny_model_dir)
    hashes = set()
    for epoch, path in enumerate(files, start=1):
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
            meta = f.metadata()
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in keys}
            alpha = f.get_tensor(keys[0].split(".")[0] + ".alpha")
        assert all(KEY.match(k) for k in keys), [k for k in keys if not KEY.match(k)][:3]
        assert check_fits(shapes, targets) == {"unet": 48, "text_encoder": 12}
        assert len(keys) == 3 * len(targets)
        assert float(alpha) == 4.0
        assert meta["ss_epoch"] == str(epoch)
        assert meta["ss_steps"] == str(203 * epoch)
        assert meta["ss_session_id"] == "4242"
        assert meta["ss_output_name"] == "px"
        assert meta["ss_network_dim"] == "8" and meta["ss_network_alpha"] == "4"
        assert meta["ss_network_module"] == "networks.lora"
        assert meta["ss_base_model_version"] == "sd_v1"
        assert meta["ss_num_epochs"] == "3"
        assert float(meta["ss_training_started_at"]) <= float(meta["ss_training_finished_at"])
        assert json.loads(meta["ss_datasets"])[0]["subsets"][0]["keep_tokens"] == 3
        assert all(isinstance(v, str) for v in meta.values())
        # the hash is over the tensor data of the ss_*-only serialisation, as kohya's is
        from safetensors.torch import load_file, save

        tensors = load_file(str(path))
        ss_only = {k: v for k, v in meta.items() if k.startswith("ss_")}
        assert meta["sshs_model_hash"] == _data_hashes(save(tensors, ss_only))[0]
        hashes.add(meta["sshs_model_hash"])
        # complete on disk: size == 8 + header + largest data offset
        n, header = _header(path)
        end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
        assert path.stat().st_size == 8 + n + end
    assert len(hashes) == 3, "every epoch's weights differ"
    lines = log.getvalue().splitlines()
    assert sum(1 for line in lines if line.startswith("epoch ") and ": steps" in line) == 3
    # kohya's own lines too: `epoch N/M` as an epoch starts, the `steps:` bar with avr_loss
    assert [line for line in lines if re.fullmatch(r"epoch \d+/3", line)] == ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert any(line.startswith("steps: 100%") and "609/609" in line and "avr_loss=" in line for line in lines)


def test_save_every_n_epochs_start_epoch_and_save_last_n(tiny_model_dir: Path, tmp_path: Path) -> None:
    files = simulate_training(
        tiny_model_dir, tmp_path / "a", "px", epochs=5, interval_s=0.0, network_dim=4,
        network_alpha=2, save_every_n_epochs=2, log=io.StringIO(),
    )
    assert [f.name for f in files] == ["px-000002.safetensors", "px-000004.safetensors", "px.safetensors"]
    with safe_open(str(files[-1]), framework="pt") as f:
        assert f.metadata()["ss_epoch"] == "5"

    resumed = simulate_training(
        tiny_model_dir, tmp_path / "b", "px", epochs=4, interval_s=0.0, network_dim=4,
        network_alpha=2, start_epoch=3, log=io.StringIO(),
    )
    assert [f.name for f in resumed] == ["px-000003.safetensors", "px.safetensors"]

    simulate_training(
        tiny_model_dir, tmp_path / "c", "px", epochs=4, interval_s=0.0, network_dim=4,
        network_alpha=2, save_last_n_epochs=1, log=io.StringIO(),
    )
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["px-000003.safetensors", "px.safetensors"]

    with pytest.raises(ValueError, match="start_epoch"):
        simulate_training(tiny_model_dir, tmp_path / "d", "px", 2, 0.0, 4, 2, start_epoch=3)


def test_same_seed_same_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    runs = [
        simulate_training(tiny_model_dir, tmp_path / str(i), "px", 1, 0.0, 4, 2, seed=9, log=io.StringIO())[0]
        for i in range(2)
    ]
    hashes = []
    for path in runs:
        with safe_open(str(path), framework="pt") as f:
            hashes.append(f.metadata()["sshs_model_hash"])
    assert hashes[0] == hashes[1]


def test_file_observed_mid_write_is_incomplete(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Written in place, in chunks: a watcher sees the file before it is complete."""
    target = tmp_path / "px.safetensors"
    seen: list[tuple[int, int]] = []  # (size on disk, size the header declares)
    worker = threading.Thread(
        target=simulate_training,
        args=(tiny_model_dir, tmp_path, "px", 1, 0.0, 8, 4),
        kwargs={"write_s": 2.0, "log": io.StringIO()},
    )
    worker.start()
    deadline = time.monotonic() + 60
    while worker.is_alive() and time.monotonic() < deadline and not seen:
        if target.exists():
            size = target.stat().st_size
            try:
                n, header = _header(target)
            except (ValueError, json.JSONDecodeError):
                n = 0  # header itself not complete yet
            if n and size >= 8 + n:
                end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
                seen.append((size, 8 + n + end))
        time.sleep(0.01)
    worker.join(60)
    assert seen, "never saw the file while it was being written"
    size, declared = seen[0]
    assert size < declared
    assert target.stat().st_size == declared  # and it completes in place, same name
    assert [p.name for p in tmp_path.iterdir()] == ["px.safetensors"]  # no temp file, no rename


def _config(tmp_path: Path, model: Path, kohya: str = "") -> Path:
    config = tmp_path / "config.toml"
    kohya_line = ""
    if kohya:
        (tmp_path / "kohya.toml").write_text(kohya)
        kohya_line = 'kohya_config = "kohya.toml"\n'
    config.write_text(
        f'[run]\nname = "SIM"\n{kohya_line}output_dir = "out"\noutput_name = "sim"\nmax_train_epochs = 3\n\n'
        f'[model]\nbase = "{model}"\n'
    )
    return config


def _env() -> dict[str, str]:
    return dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))


def test_command_reads_config_and_kohya_values(tiny_model_dir: Path, tmp_path: Path) -> None:
    kohya = (
        '[network]\nnetwork_dim = 4\nnetwork_alpha = 2\nnetwork_args = ["conv_dim=2", "conv_alpha=1"]\n'
        '[training]\nseed = 7\nkeep_tokens = 3\nlearning_rate = 0.0001\n'
    )
    config = _config(tmp_path, tiny_model_dir, kohya)
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "simtrain", "--config", str(config), "--epochs", "2",
         "--interval", "0"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in sorted((tmp_path / "out").iterdir())] == ["sim-000001.safetensors", "sim.safetensors"]
    with safe_open(str(tmp_path / "out" / "sim.safetensors"), framework="pt") as f:
        meta = f.metadata()
        down = f.get_slice(next(k for k in f.keys() if k.endswith("lora_down.weight"))).get_shape()
        conv = f.get_slice("lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight").get_shape()
    assert meta["ss_network_dim"] == "4" and meta["ss_seed"] == "7" and meta["ss_epoch"] == "2"
    assert meta["ss_learning_rate"] == "0.0001"
    assert json.loads(meta["ss_network_args"]) == {"conv_dim": "2", "conv_alpha": "1.0"}
    assert down[0] == 4
    assert conv == [2, 32, 3, 3]  # conv_dim rank on the 3x3 convs, as kohya's LoCon layout
    assert "epoch 2/2" in proc.stdout


def test_command_bad_input_is_one_line(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "no-such-model")
    proc = subprocess.run(
        [sys.executable, "-m", "watcher", "simtrain", "--config", str(config), "--interval", "0"],
        capture_output=True, text=True, env=_env(), timeout=120,
    )
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("epochwatch simtrain:") and "no-such-model" in last


def test_sigterm_stops_promptly_like_a_killed_trainer(tiny_model_dir: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, tiny_model_dir)
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "simtrain", "--config", str(config), "--epochs", "10",
         "--interval", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # printed once the model's targets are read
    assert first.startswith("simtrain: session"), first
    proc.send_signal(signal.SIGTERM)
    # mid-way through a 30 s epoch: the wait would time out if it slept the epoch out
    assert proc.wait(timeout=10) == -signal.SIGTERM
    assert "terminated by SIGTERM" in proc.stdout.read()
    assert not list((tmp_path / "out").glob("*.safetensors"))


def test_sd15_targets_match_kohya_counts(tmp_path: Path) -> None:
    """kohya reports 192 U-Net and 72 text-encoder LoRA modules for SD 1.5 (no conv_dim)."""
    import torch
    from safetensors.torch import save_file

    # a single-file checkpoint is identified by its text encoder; only shapes are read
    ckpt = tmp_path / "sd15.safetensors"
    probe = "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"
    save_file({probe: torch.zeros(4, 768, dtype=torch.float16)}, str(ckpt))
    targets = lora_target_names(ckpt)
    assert sum(1 for k in targets if k.startswith("lora_unet_")) == 192
    assert sum(1 for k in targets if k.startswith("lora_te_")) == 72
    assert targets["lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k"] == (768, 320)
    assert targets["lora_unet_mid_block_attentions_0_proj_in"] == (1280, 1280, 1, 1)
    assert targets["lora_te_text_model_encoder_layers_11_mlp_fc2"] == (3072, 768)

    sdxl_like = tmp_path / "other.safetensors"
    save_file({probe: torch.zeros(4, 1024, dtype=torch.float16)}, str(sdxl_like))
    with pytest.raises(ValueError, match="SD 1.x has 768"):
        lora_target_names(sdxl_like)
    with pytest.raises(ValueError, match="no such model folder or file"):
        lora_target_names(tmp_path / "missing")


@pytest.mark.parametrize(("num_images", "kohya", "expected"), [
    (203, {}, 203),
    (203, {"train_batch_size": 1, "gradient_accumulation_steps": 4}, 51),  # the KEEP_TOKENS_3 config
    (203, {"train_batch_size": 2}, 102),
    (12, {"train_batch_size": 4, "gradient_accumulation_steps": 2}, 2),
    (None, {"train_batch_size": 4}, DEFAULT_STEPS_PER_EPOCH),
])
def test_steps_per_epoch_follows_the_dataset_and_kohyas_batching(
        num_images: int | None, kohya: dict[str, int], expected: int) -> None:
    assert steps_per_epoch(num_images, kohya) == expected
