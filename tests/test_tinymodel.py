"""The tiny SD1.5-shaped model: complete, loadable, SD-shaped, deterministic, idempotent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from watcher.tinymodel import COMPLETE_MARKER, build_tiny_model, is_complete


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_folder_has_every_component(tiny_model_dir: Path) -> None:
    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for component in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert index[component][1] is not None, component
    assert (tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_model_dir / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    assert (tiny_model_dir / "text_encoder" / "model.safetensors").is_file()
    assert not list(tiny_model_dir.rglob("*.bin")), "weights must be safetensors, not pickles"
    assert is_complete(tiny_model_dir)


def test_loads_as_sd15_shaped_pipeline(tiny_model_dir: Path) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    # SD 1.5's VAE scale factor: 512 px <-> 64 x 64 latent
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.sample_size == 64
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size
    assert pipe.tokenizer.model_max_length == 77
    ids = pipe.tokenizer("solid green background (#00ff00)").input_ids
    assert ids[0] == pipe.tokenizer.bos_token_id and ids[-1] == pipe.tokenizer.eos_token_id
    # byte-level vocabulary: every character is known, so nothing maps to the unknown token
    assert pipe.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == (
        "solid green background (#00ff00)".replace(" ", "")
    )


def test_idempotent_returns_existing_model_untouched(tiny_model_dir: Path) -> None:
    marker = tiny_model_dir / COMPLETE_MARKER
    before = (marker.stat().st_mtime_ns, _sha(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert build_tiny_model(tiny_model_dir, seed=0) == tiny_model_dir
    after = (marker.stat().st_mtime_ns, _sha(tiny_model_dir / "unet" / "diffusion_pytorch_model.safetensors"))
    assert before == after


def test_same_seed_same_weights_other_seed_differs(tiny_model_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    other = build_tiny_model(tmp_path / "other", seed=1)
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert _sha(again / weights) == _sha(tiny_model_dir / weights)
    assert _sha(other / weights) != _sha(tiny_model_dir / weights)
    # no staging folders are left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]


def test_refuses_to_overwrite_a_foreign_folder(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a complete tiny model"):
        build_tiny_model(target)
    assert (target / "notes.txt").read_text() == "mine"


def test_cli_builds_and_prints_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from watcher.cli import main

    out = tmp_path / "cli-model"
    assert main(["build-tiny-model", "--out", str(out), "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    assert is_complete(out)
    assert json.loads((out / COMPLETE_MARKER).read_text())["seed"] == 3
    # a foreign folder is a one-line user error, exit status 2
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x").write_text("x")
    assert main(["build-tiny-model", "--out", str(foreign)]) == 2
    assert "not a complete tiny model" in capsys.readouterr().err
