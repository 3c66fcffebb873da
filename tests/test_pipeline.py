"""The warm pipeline on the real tiny model with real kohya-format LoRA files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from watcher.kohya import lora_target_names, make_lora_state_dict
from watcher.pipeline import (
    LoraLoadError,
    PipelineError,
    SamplePipeline,
    resolve_dtype,
)

SIZE, STEPS = 64, 3


@dataclass(frozen=True)
class Prompt:  # duck-typed stand-in shape of watcher.config.SamplePrompt
    text: str
    negative: str = ""
    seed: int = 1
    width: int = SIZE
    height: int = SIZE
    steps: int = STEPS
    cfg: float = 7.5


PROMPTS = [
    Prompt("pixel art portrait, pink hair (#ff66cc), solid green background (#00ff00)", seed=11),
    Prompt("pixel art portrait, blue shirt (#1e90ff), solid green background (#00ff00)", seed=12),
]


def _arrays(images: list) -> list[np.ndarray]:
    return [np.asarray(im.convert("RGB"), dtype=np.int16) for im in images]


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return max(int(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


@pytest.fixture(scope="module")
def loras(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kohya-format files: full LoRAs seeded 1..5, a UNet-only one and a TE-only one."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("loras")
    targets = lora_target_names(tiny_model_dir)
    files: dict[str, Path] = {}

    def write(name: str, **kwargs: object) -> None:
        state = make_lora_state_dict(targets, rank=4, alpha=4, scale=1.0, dtype="float16", **kwargs)  # type: ignore[arg-type]
        files[name] = folder / f"{name}.safetensors"
        save_file(state, str(files[name]), metadata={"ss_epoch": name})

    for seed in range(1, 6):
        write(f"full{seed}", seed=seed)
    write("unet_only", seed=7, text_encoder=False)
    write("te_only", seed=8, unet=False)
    # kohya with network_args conv_dim: the ResNet / sampler layers too, 3x3 convs at conv rank
    conv_targets = lora_target_names(tiny_model_dir, conv=True)
    state = make_lora_state_dict(conv_targets, rank=4, alpha=4, seed=9, scale=1.0, conv_rank=2)
    files["conv"] = folder / "conv.safetensors"
    save_file(state, str(files["conv"]))
    return files


@pytest.fixture(scope="module")
def pipe(tiny_model_dir: Path) -> Iterator[SamplePipeline]:
    # one torch thread: on a CPU shared with other busy processes, OpenMP spinning makes
    # two threads 10-40x slower
    p = SamplePipeline(str(tiny_model_dir), device="cpu", dtype="auto", scheduler="dpmsolver++",
                       cpu_threads=1)
    p.load()
    yield p
    p.release(drop=True)


@pytest.fixture(scope="module")
def base_images(pipe: SamplePipeline) -> list[np.ndarray]:
    pipe.remove_lora()
    return _arrays(pipe.generate(PROMPTS, batch_size=2))


def test_cpu_defaults(pipe: SamplePipeline) -> None:
    import torch

    assert pipe.device == "cpu" and pipe.dtype == "float32"
    assert torch.get_num_threads() == 1  # cpu_threads applied
    assert pipe.memory_bytes() == 0
    assert type(pipe.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert pipe.pipe.scheduler.config.algorithm_type == "dpmsolver++"


# conv: 48 attention-block targets + 31 ResNet/sampler layers (3x3 convs, time_emb_proj, shortcuts)
@pytest.mark.parametrize(("lora", "unet_modules", "text_encoder_modules"),
                         [("te_only", 0, 12), ("unet_only", 48, 0), ("conv", 79, 12)])
def test_each_kind_of_lora_lands_on_its_modules_and_changes_images(
    pipe: SamplePipeline, loras: dict[str, Path], base_images: list[np.ndarray], lora: str,
    unet_modules: int, text_encoder_modules: int,
) -> None:
    pipe.apply_lora(loras[lora])
    assert pipe.lora_info["unet_modules"] == unet_modules
    assert pipe.lora_info["text_encoder_modules"] == text_encoder_modules
    if text_encoder_modules:
        assert pipe.lora_info["text_encoder_effect"] > 0
    assert _max_diff(_arrays(pipe.generate(PROMPTS, 2)), base_images) > 10


def test_five_swaps_keep_one_adapter_and_match_a_fresh_load(
    pipe: SamplePipeline, tiny_model_dir: Path, loras: dict[str, Path]
) -> None:
    renders = []
    for seed in range(1, 6):
        pipe.apply_lora(loras[f"full{seed}"])
        assert pipe.adapter_count() == 1
        assert pipe.pipe.get_list_adapters() == {"unet": ["epoch"], "text_encoder": ["epoch"]}
        renders.append(_arrays(pipe.generate(PROMPTS, 2)))
    # every epoch's LoRA renders differently
    assert all(_max_diff(renders[i], renders[i + 1]) > 0 for i in range(4))

    fresh = SamplePipeline(str(tiny_model_dir), device="cpu")
    fresh.apply_lora(loras["full5"])
    assert _max_diff(_arrays(fresh.generate(PROMPTS, 1)), renders[-1]) <= 1
    fresh.release(drop=True)


def test_remove_lora_restores_base_images(
    pipe: SamplePipeline, loras: dict[str, Path], base_images: list[np.ndarray]
) -> None:
    pipe.apply_lora(loras["full1"])
    pipe.remove_lora()
    assert pipe.adapter_count() == 0
    assert _max_diff(_arrays(pipe.generate(PROMPTS, 2)), base_images) == 0


def test_batches_group_by_size_and_keep_prompt_order(pipe: SamplePipeline) -> None:
    mixed = [
        Prompt("a", seed=1),
        Prompt("b", seed=2, width=96, height=80),
        Prompt("c", seed=3),
        Prompt("d", seed=4, steps=2),
    ]
    images = pipe.generate(mixed, batch_size=8)
    assert [im.size for im in images] == [(64, 64), (96, 80), (64, 64), (64, 64)]
    # one generator per image: an image does not depend on its batch neighbours
    alone = pipe.generate([mixed[2]], batch_size=1)
    assert _max_diff(_arrays([images[2]]), _arrays(alone)) <= 1
    # same prompt, other seed: other image
    reseeded = pipe.generate([Prompt("c", seed=99)], batch_size=1)
    assert _max_diff(_arrays(alone), _arrays(reseeded)) > 0


def _bad_file(tmp_path: Path, kind: str) -> Path:
    import torch
    from safetensors.torch import save_file

    path = tmp_path / f"{kind}.safetensors"
    if kind == "pickle":
        torch.save({"lora_unet_x.lora_down.weight": torch.zeros(1)}, path)
    elif kind == "foreign_keys":
        save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(2, 2)}, str(path))
    elif kind == "other_model":
        # SD 1.5-sized layers do not fit the tiny model
        shape = {"lora_te_text_model_encoder_layers_0_self_attn_q_proj": (768, 768)}
        save_file(make_lora_state_dict(shape, 4, 4, 0, 1.0), str(path))
    elif kind == "unknown_module":
        shape = {"lora_unet_down_blocks_9_attentions_0_proj_in": (32, 32, 1, 1)}
        save_file(make_lora_state_dict(shape, 4, 4, 0, 1.0), str(path))
    elif kind == "truncated":
        full = tmp_path / "full.safetensors"
        targets = {"lora_te_text_model_encoder_layers_0_mlp_fc1": (32, 64)}
        save_file(make_lora_state_dict(targets, 4, 4, 0, 1.0), str(full))
        path.write_bytes(full.read_bytes()[:-100])
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("pickle", "not a readable safetensors file"),
        ("foreign_keys", "not kohya LoRA keys"),
        ("other_model", "do not fit"),
        ("unknown_module", "not in this model"),
        ("truncated", "not a readable safetensors file"),
    ],
)
def test_unusable_files_are_refused_and_previous_adapter_kept(
    pipe: SamplePipeline, loras: dict[str, Path], tmp_path: Path, kind: str, message: str
) -> None:
    pipe.apply_lora(loras["full2"])
    with pytest.raises(LoraLoadError, match=message) as err:
        pipe.apply_lora(_bad_file(tmp_path, kind))
    assert "\n" not in str(err.value)
    assert pipe.adapter_count() == 1 and pipe.lora_path == loras["full2"]


def test_missing_file_is_refused(pipe: SamplePipeline, tmp_path: Path) -> None:
    with pytest.raises(LoraLoadError, match="no such file"):
        pipe.apply_lora(tmp_path / "nope.safetensors")


def test_release_drop_reloads_and_reapplies_lora(
    tiny_model_dir: Path, loras: dict[str, Path]
) -> None:
    p = SamplePipeline(str(tiny_model_dir), device="cpu")
    p.apply_lora(loras["full3"])
    before = _arrays(p.generate(PROMPTS[:1], 1))
    p.release(drop=True)
    assert p.pipe is None
    after = _arrays(p.generate(PROMPTS[:1], 1))
    assert p.adapter_count() == 1 and p.lora_path == loras["full3"]
    assert _max_diff(before, after) == 0
    p.release(drop=True)


def test_adapter_layers_do_not_accumulate(pipe: SamplePipeline, loras: dict[str, Path]) -> None:
    def lora_tensors() -> int:
        return sum(1 for name, _ in pipe.pipe.unet.named_parameters() if "lora_" in name) + sum(
            1 for name, _ in pipe.pipe.text_encoder.named_parameters() if "lora_" in name
        )

    pipe.apply_lora(loras["full1"])
    first = lora_tensors()
    for seed in (2, 3, 4, 5, 1):
        pipe.apply_lora(loras[f"full{seed}"])
    assert lora_tensors() == first == 2 * (48 + 12)


def test_config_errors_are_clear(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_dtype("auto", "cpu") == "float32"
    assert resolve_dtype("auto", "cuda") == "float16"
    with pytest.raises(PipelineError, match="float16 is not supported on CPU"):
        resolve_dtype("float16", "cpu")
    with pytest.raises(PipelineError, match="scheduler 'heun' unknown"):
        SamplePipeline(str(tiny_model_dir), device="cpu", scheduler="heun")
    with pytest.raises(PipelineError, match="no such model"):
        SamplePipeline(str(tmp_path / "missing.safetensors"), device="cpu").load()
    with pytest.raises(PipelineError, match="pickle checkpoints are refused"):
        SamplePipeline(str(tmp_path / "model.ckpt"), device="cpu").load()
    with pytest.raises(PipelineError, match="not a diffusers model folder"):
        SamplePipeline(str(tmp_path), device="cpu").load()


@pytest.mark.parametrize("scheduler", ["euler_a", "ddim", "pndm"])
def test_other_schedulers_render(tiny_model_dir: Path, scheduler: str) -> None:
    p = SamplePipeline(str(tiny_model_dir), device="cpu", scheduler=scheduler)
    images = p.generate(PROMPTS[:1], 1)
    assert images[0].size == (SIZE, SIZE)
    assert np.asarray(images[0]).std() > 0
    p.release(drop=True)


def test_text_encoder_weights_silently_dropped_are_caught(
    tiny_model_dir: Path, loras: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injection: the loader 'succeeds' but the text-encoder LoRA weights end up zero
    (what a silently failed key conversion looks like). The check must refuse the file."""
    import torch

    p = SamplePipeline(str(tiny_model_dir), device="cpu").load()
    original = p.pipe.load_lora_weights

    def load_then_drop_te(*args: object, **kwargs: object) -> None:
        original(*args, **kwargs)
        with torch.no_grad():
            for name, param in p.pipe.text_encoder.named_parameters():
                if "lora_B" in name:
                    param.zero_()

    monkeypatch.setattr(p.pipe, "load_lora_weights", load_then_drop_te)
    with pytest.raises(LoraLoadError, match="text-encoder LoRA weights did not take effect"):
        p.apply_lora(loras["te_only"])
    assert p.adapter_count() == 0 and p.lora_path is None
    monkeypatch.undo()
    p.apply_lora(loras["te_only"])
    assert p.lora_info["text_encoder_weight_change"] > 1e-3
    p.release(drop=True)
