"""SDXL: kohya's SDXL LoRA names (two text encoders, SGM UNet blocks) land exactly where kohya
applies them, on the tiny SDXL-shaped model through the real diffusers pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from watcher.kohya import check_fits, lora_target_names, make_lora_state_dict
from watcher.kohya_sdxl import SDXL_TEXT_2_CONFIG, SDXL_TEXT_CONFIG, SDXL_UNET_CONFIG
from watcher.pipeline import LoraLoadError, PipelineError, SamplePipeline

MULTIPLIER = 0.7


def _weights(pipe: SamplePipeline) -> dict[str, torch.Tensor]:
    """Every weight of the three trained components, under peft-free names."""
    out: dict[str, torch.Tensor] = {}
    for part in ("unet", "text_encoder", "text_encoder_2"):
        for name, tensor in getattr(pipe.pipe, part).state_dict().items():
            if ".lora_" in name:
                continue
            out[f"{part}.{name.replace('.base_layer', '')}"] = tensor.detach().float().clone()
    return out


def _kohya_delta(state: dict[str, torch.Tensor], module: str) -> torch.Tensor:
    """kohya's merge (networks/lora.py): up @ down * alpha / rank * multiplier."""
    down = state[f"{module}.lora_down.weight"].double()
    up = state[f"{module}.lora_up.weight"].double()
    rank = down.shape[0]
    scale = float(state[f"{module}.alpha"]) / rank * MULTIPLIER
    if down.dim() == 4 and down.shape[2:] != (1, 1):  # 3x3 conv: kohya merges by convolution
        return torch.nn.functional.conv2d(down.permute(1, 0, 2, 3), up).permute(1, 0, 2, 3) * scale
    return (up.flatten(1) @ down.flatten(1)).reshape(up.shape[0], *down.shape[1:]) * scale


@pytest.mark.parametrize("conv", [False, True], ids=["linear", "conv_dim"])
def test_sdxl_lora_lands_exactly_as_kohya_merges_it(tiny_sdxl_model_dir: Path, tmp_path: Path,
                                                    conv: bool) -> None:
    targets = lora_target_names(tiny_sdxl_model_dir, conv=conv)
    state = make_lora_state_dict(targets, rank=4, alpha=2, seed=3, scale=1.0,
                                 conv_rank=2 if conv else None, conv_alpha=1.0)
    path = tmp_path / "sdxl.safetensors"
    save_file(state, str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    modules = sorted({k.rsplit(".", 2)[0] if k.endswith("weight") else k.rsplit(".", 1)[0]
                      for k in state})
    assert {m.split("_")[1] for m in modules} == {"unet", "te1", "te2"}

    pipe = SamplePipeline(str(tiny_sdxl_model_dir), device="cpu", cpu_threads=1)
    assert pipe.load().family == "sdxl"
    before = _weights(pipe)
    pipe.apply_lora(path)
    assert pipe.lora_info["text_encoder_modules"] > 0 and pipe.lora_info["text_encoder_2_modules"] > 0
    pipe.pipe.fuse_lora(components=["unet", "text_encoder", "text_encoder_2"], lora_scale=MULTIPLIER)
    after = _weights(pipe)
    changed = {name: after[name].double() - before[name].double() for name in before
               if not torch.equal(after[name], before[name])}
    # Every kohya module changed exactly one weight, by exactly kohya's delta; nothing else moved.
    unmatched = dict(changed)
    for module in modules:
        expected = _kohya_delta(state, module)
        hits = [name for name, delta in unmatched.items()
                if delta.shape == expected.shape and torch.allclose(delta, expected, atol=2e-6, rtol=1e-4)]
        assert len(hits) == 1, f"{module}: {len(hits)} weights changed by kohya's delta"
        part = {"unet": "unet.", "te1": "text_encoder.", "te2": "text_encoder_2."}[module.split("_")[1]]
        assert hits[0].startswith(part), (module, hits[0])
        del unmatched[hits[0]]
    assert not unmatched, f"weights changed that no kohya module names: {sorted(unmatched)[:3]}"
    assert len(changed) == len(modules)


def test_real_sdxl_names_and_counts_match_kohya_files() -> None:
    """kohya's SDXL LoRA for SDXL 1.0 base: 722 UNet + 72 te1 + 192 te2 modules, named by SGM
    blocks (names as in sd-scripts' files)."""
    from watcher.kohya import _targets_from_configs

    targets = _targets_from_configs({"unet": SDXL_UNET_CONFIG, "text_encoder": SDXL_TEXT_CONFIG,
                                     "text_encoder_2": SDXL_TEXT_2_CONFIG})
    count = {p: sum(1 for n in targets if n.startswith(p)) for p in ("lora_unet_", "lora_te1_", "lora_te2_")}
    assert count == {"lora_unet_": 722, "lora_te1_": 72, "lora_te2_": 192}
    assert targets["lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q"] == (640, 640)
    assert targets["lora_unet_input_blocks_8_1_transformer_blocks_9_attn2_to_k"] == (2048, 1280)
    assert targets["lora_unet_middle_block_1_proj_in"] == (1280, 1280)
    assert targets["lora_unet_output_blocks_5_1_transformer_blocks_1_ff_net_0_proj"] == (640, 5120)
    assert targets["lora_te1_text_model_encoder_layers_11_mlp_fc2"] == (3072, 768)
    assert targets["lora_te2_text_model_encoder_layers_31_self_attn_out_proj"] == (1280, 1280)
    conv = _targets_from_configs({"unet": SDXL_UNET_CONFIG, "text_encoder": SDXL_TEXT_CONFIG,
                                  "text_encoder_2": SDXL_TEXT_2_CONFIG}, conv=True)
    assert conv["lora_unet_input_blocks_3_0_op"] == (320, 320, 3, 3)
    assert conv["lora_unet_output_blocks_2_2_conv"] == (1280, 1280, 3, 3)
    assert conv["lora_unet_middle_block_2_emb_layers_1"] == (1280, 1280)
    assert conv["lora_unet_input_blocks_4_0_skip_connection"] == (320, 640, 1, 1)


def test_single_files_and_lora_headers_name_their_family(tmp_path: Path) -> None:
    from watcher.family import family_of_lora, family_of_model

    sdxl = tmp_path / "sdxl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, str(sdxl))
    sd15 = tmp_path / "sd15.safetensors"
    save_file({"cond_stage_model.transformer.text_model.final_layer_norm.weight": torch.zeros(2)},
              str(sd15))
    assert (family_of_model(sdxl), family_of_model(sd15)) == ("sdxl", "sd15")
    # a single SDXL file carries no configs: SDXL 1.0's are used
    assert sum(1 for n in lora_target_names(sdxl) if n.startswith("lora_te2_")) == 192
    assert family_of_lora({"ss_base_model_version": "sdxl_base_v1-0"}, []) == "sdxl"
    assert family_of_lora({"ss_base_model_version": "sd_v1"}, ["lora_te1_x.alpha"]) == "sd15"
    assert family_of_lora({}, ["lora_unet_input_blocks_4_1_proj_in.alpha"]) == "sdxl"
    assert family_of_lora({}, ["lora_unet_down_blocks_0_attentions_0_proj_in.alpha"]) is None


def test_sd15_lora_is_refused_by_an_sdxl_model(tiny_sdxl_model_dir: Path, tiny_model_dir: Path,
                                              tmp_path: Path) -> None:
    sd15 = make_lora_state_dict(lora_target_names(tiny_model_dir), rank=2, alpha=1, seed=1, scale=1.0)
    path = tmp_path / "sd15.safetensors"
    save_file(sd15, str(path), metadata={"ss_base_model_version": "sd_v1"})
    pipe = SamplePipeline(str(tiny_sdxl_model_dir), device="cpu", cpu_threads=1)
    with pytest.raises(LoraLoadError, match="sd15 LoRA.*base model is sdxl"):
        pipe.apply_lora(path)
    with pytest.raises(ValueError, match="not in this model"):
        check_fits({k: tuple(v.shape) for k, v in sd15.items()}, lora_target_names(tiny_sdxl_model_dir))
    with pytest.raises(PipelineError, match="a sd15 model, but the run's family is sdxl"):
        SamplePipeline(str(tiny_model_dir), device="cpu", family="sdxl").load()


def test_each_sdxl_part_of_a_lora_changes_the_images_and_removal_restores_them(
        tiny_sdxl_model_dir: Path, tmp_path: Path) -> None:
    """Renders (64 px, 2 steps) with a LoRA on only te1, only te2, only the UNet: each differs
    from the bare model; removing the LoRA gives the bare model's images back."""
    from dataclasses import dataclass

    import numpy as np

    @dataclass(frozen=True)
    class Prompt:  # the fields SamplePipeline.generate reads
        text: str = "pixel art portrait, pink hair, solid green background"
        negative: str = ""
        seed: int = 5
        width: int = 64
        height: int = 64
        steps: int = 2
        cfg: float = 7.5

    full = make_lora_state_dict(lora_target_names(tiny_sdxl_model_dir), rank=4, alpha=4, seed=2, scale=2.0)
    pipe = SamplePipeline(str(tiny_sdxl_model_dir), device="cpu", cpu_threads=1)

    def render() -> np.ndarray:
        return np.asarray(pipe.generate([Prompt()], batch_size=1)[0], dtype=np.int16)

    bare = render()
    assert bare.shape == (64, 64, 3)
    for prefix in ("lora_te1_", "lora_te2_", "lora_unet_"):
        path = tmp_path / f"{prefix}.safetensors"
        save_file({k: v for k, v in full.items() if k.startswith(prefix)}, str(path))
        pipe.apply_lora(path)
        assert int(np.abs(render() - bare).max()) > 0, f"a {prefix}* LoRA did not change the image"
    pipe.remove_lora()
    assert np.array_equal(render(), bare)
