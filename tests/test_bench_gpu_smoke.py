"""`make bench-gpu`'s code path, proven on CPU: the smoke run (tiny shapes, 64 px, 2 steps)
goes through every phase the CUDA run has: model build with SD's 49408-token vocabulary,
kohya LoRA files, the daemon's SamplePipeline, a real training worker process sharing the
machine, the optimisation variants, offload, and torch.compile with LoRA hotswap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bench.gpu.slowdown import alone_step_s, progress, summarize

REPO = Path(__file__).resolve().parents[1]
VARIANTS = {"sdpa_off", "channels_last", "fused_lora", "vae_slicing", "cudnn_benchmark"}


def run_bench(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "bench.run_gpu", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def last_json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def smoke_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench.gpu.sd15 import SMOKE, build_model

    return build_model(tmp_path_factory.mktemp("bench-gpu") / "model", SMOKE)


def test_smoke_run_reports_every_figure(smoke_model: Path, tmp_path: Path) -> None:
    import torch

    out = tmp_path / "bench-gpu.json"
    # the fixture's model (built by the same build_model the run calls): reused, not rebuilt
    proc = run_bench("--smoke", "--device", "cpu", "--model-dir", str(smoke_model),
                     "--json-out", str(out))
    fig = last_json(proc)
    assert json.loads(out.read_text(encoding="utf-8")) == fig
    assert fig["errors"] == {}, fig["errors"]
    assert (fig["device"], fig["torch"], fig["smoke"], fig["shapes"]) == ("cpu", torch.__version__, True, "smoke")
    datetime.fromisoformat(fig["date"])
    assert (fig["images"], fig["size_px"], fig["steps"], fig["batch_size"]) == (8, 64, 2, 8)
    assert fig["parameters"]["text_encoder"] > 49408 * 32  # SD's vocabulary, tiny width
    assert fig["images_ok"] is True

    positive = ["eval_s_per_epoch", "generate_s", "images_per_s", "unet_only_s", "overhead_ratio",
                "batched_vs_sequential", "lora_swap_s", "sequential_s", "pause_cost_s",
                "trainer_slowdown", "trainer_step_s_alone", "trainer_step_s_shared", "eval_s_shared"]
    for key in positive:
        assert isinstance(fig[key], float) and fig[key] > 0, key
    # the headline ratios are what they say they are
    assert fig["images_per_s"] == pytest.approx(8 / fig["generate_s"], rel=1e-3)
    assert fig["overhead_ratio"] == pytest.approx(fig["generate_s"] / fig["unet_only_s"], rel=1e-3)
    assert fig["batched_vs_sequential"] == pytest.approx(fig["sequential_s"] / fig["generate_s"], rel=1e-3)
    assert fig["eval_s_per_epoch"] >= fig["generate_s"] + fig["lora_swap_s"] - 1e-3
    assert fig["pause_cost_s"] >= fig["sequential_s"]
    assert fig["sharing_saves_s_per_epoch"] == pytest.approx(
        fig["pause_cost_s"] - fig["training_time_lost_per_epoch_s"], abs=1e-3)
    assert fig["peak_vram_gib"] is None  # CPU: no accelerator memory to report
    assert fig["trainer_steps_recorded"] > 0

    opts = fig["optimisations"]
    assert set(opts) == VARIANTS | {"baseline"}
    assert opts["baseline"]["generate_s"] > 0
    for name in VARIANTS - {"cudnn_benchmark"}:  # speed-up is against the baseline beside them
        assert opts[name]["speedup"] == pytest.approx(
            opts["baseline"]["generate_s"] / opts[name]["generate_s"], rel=1e-2)
    assert opts["cudnn_benchmark"] == {"skipped": "CUDA only"}
    for name in VARIANTS - {"cudnn_benchmark"}:
        assert opts[name]["generate_s"] > 0 and opts[name]["verdict"], (name, opts[name])
    offload = fig["offload"]
    assert offload["reload_from_disk_s"] > 0 and offload["images_ok"] is True
    assert offload["lora_after_reload"] in ("1", "2")  # the current epoch's LoRA came back
    assert any(s.startswith("compile") for s in fig["skipped"])

    table = proc.stdout.strip().splitlines()[:-1]
    assert table[0].startswith("epochwatch bench-gpu on cpu")
    assert any(line.split()[:1] == ["batched_vs_sequential"] for line in table)


def test_compile_with_lora_hotswap_does_not_recompile(smoke_model: Path, tmp_path: Path) -> None:
    built = (smoke_model / "model_index.json").stat().st_mtime_ns
    proc = run_bench("--smoke", "--device", "cpu", "--model-dir", str(smoke_model),
                     "--compile-modes", "default", "--no-trainer", "--variants", "", "--no-offload",
                     "--json-out", str(tmp_path / "out.json"))
    fig = last_json(proc)
    row = fig["compile"]["default"]
    assert "error" not in row, row
    assert row["stage"] == "done" and row["backend"] == "eager"
    assert row["graphs_compiled"] >= 1
    assert row["hotswap_changed_images"] is True  # the new epoch's weights are in use...
    assert row["recompiled_after_hotswap"] is False  # ...without a new graph
    # the control: the ordinary delete-and-load swap does recompile
    assert row["recompiled_after_ordinary_swap"] is True
    assert (smoke_model / "model_index.json").stat().st_mtime_ns == built  # reused, not rebuilt
    assert fig["errors"] == {}


def test_vocabulary_has_sd15_size_and_ids(tmp_path: Path) -> None:
    from transformers import CLIPTokenizer

    from bench.gpu.sd15 import CLIP_VOCAB_SIZE, write_clip_vocab

    vocab, merges = write_clip_vocab(tmp_path)
    tok = CLIPTokenizer(str(vocab), str(merges), model_max_length=77)
    assert len(tok) == CLIP_VOCAB_SIZE == 49408
    assert (tok.bos_token_id, tok.eos_token_id) == (49406, 49407)
    ids = tok("pixel art portrait, solid green background (#00ff00) <|synthetic_7|>").input_ids
    assert ids[0] == 49406 and ids[-1] == 49407
    assert max(ids[1:-1]) < 514  # synthetic tokens are never produced: byte-level ids only


def test_sd15_shapes_have_sd15_parameter_counts() -> None:
    """The full-size configs give runwayml/stable-diffusion-v1-5's exact parameter counts."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from bench.gpu.sd15 import CLIP_VOCAB_SIZE, SD15

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15.unet)
        vae = AutoencoderKL(**SD15.vae)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=CLIP_VOCAB_SIZE, **SD15.text))

    def count(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    assert (count(unet), count(vae), count(text)) == (859_520_964, 83_653_863, 123_060_480)


def test_lora_files_fit_the_model_and_differ_per_epoch(smoke_model: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from bench.gpu.sd15 import write_loras
    from launcher.kohya_lora import check_fits, lora_target_names

    first, second = write_loras(smoke_model, tmp_path, epochs=(1, 2))
    with safe_open(str(first), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
        meta = f.metadata()
    counts = check_fits(shapes, lora_target_names(smoke_model))
    assert counts["unet"] > 0 and counts["text_encoder"] > 0
    assert meta["ss_epoch"] == "1" and meta["ss_network_dim"] == "32"
    down = [k for k in shapes if k.endswith(".lora_down.weight")]
    assert all(shapes[k][0] == 32 for k in down)  # the plan's rank
    a, b = load_file(str(first)), load_file(str(second))
    assert a.keys() == b.keys() and not all(a[k].equal(b[k]) for k in down)


def test_trainer_worker_failure_is_reported(tmp_path: Path) -> None:
    from bench.gpu.sharing import TrainerProcess, WorkerFailed

    worker = TrainerProcess(tmp_path, "no-such-shapes", "cpu", latent=8, max_s=30)
    with pytest.raises(WorkerFailed, match=r"exited \(2\) before 'initialized'.*no-such-shapes"):
        worker.wait_event("initialized", timeout_s=60)


def test_refuses_full_size_on_cpu_in_one_line() -> None:
    proc = run_bench("--device", "cpu", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--smoke" in proc.stderr


def test_bad_prompts_file_is_one_line_error(tmp_path: Path) -> None:
    proc = run_bench("--smoke", "--device", "cpu", "--prompts-file", str(tmp_path / "none.txt"), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "none.txt" in proc.stderr


def test_foreign_model_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "my-real-model"
    folder.mkdir()
    (folder / "weights.safetensors").write_bytes(b"precious")
    proc = run_bench("--smoke", "--device", "cpu", "--model-dir", str(folder), "--no-trainer",
                     "--json-out", str(tmp_path / "out.json"), timeout=120)
    assert proc.returncode == 1
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "is not a bench model" in fig["errors"]["setup"]
    assert any("earlier phase failed" in s for s in fig["skipped"])
    assert (folder / "weights.safetensors").read_bytes() == b"precious"
    assert sorted(p.name for p in folder.iterdir()) == ["weights.safetensors"]


# -- the trainer figures, from step times (pure) -----------------------------------------------
def steps_every(start: float, stop: float, dt: float) -> list[tuple[float, float]]:
    out, t = [], start
    while t + dt <= stop + 1e-9:
        out.append((t, t + dt))
        t += dt
    return out


def test_progress_counts_steps_and_fractions() -> None:
    steps = [(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]
    assert progress(steps, (0.0, 2.0)) == pytest.approx(2.0)
    assert progress(steps, (0.5, 3.0)) == pytest.approx(0.5 + 1.0 + 0.5)
    assert progress(steps, (5.0, 6.0)) == 0.0


def test_summarize_slowdown_and_lost_time() -> None:
    # 0.1 s steps alone for 10 s, 0.25 s steps during a 2 s evaluation, then alone again
    steps = steps_every(0.0, 10.0, 0.1) + steps_every(10.0, 12.0, 0.25) + steps_every(12.0, 13.0, 0.1)
    out = summarize(steps, alone=[(0.0, 10.0), (12.0, 13.0)], shared=[(10.0, 12.0)], pause_cost_s=3.0)
    assert out["trainer_step_s_alone"] == pytest.approx(0.1)
    assert out["trainer_step_s_shared"] == pytest.approx(0.25)
    assert out["trainer_slowdown"] == pytest.approx(2.5)
    # 8 steps done in 2 s; alone they take 0.8 s: the run finishes 1.2 s later
    assert out["training_time_lost_per_epoch_s"] == pytest.approx(1.2)
    assert out["sharing_saves_s_per_epoch"] == pytest.approx(1.8)


def test_summarize_refuses_windows_without_steps() -> None:
    with pytest.raises(ValueError, match="alone"):
        alone_step_s([(0.0, 5.0)], [(1.0, 2.0)])
    with pytest.raises(ValueError, match="no progress"):
        summarize([(0.0, 0.1), (0.1, 0.2)], alone=[(0.0, 0.2)], shared=[(5.0, 6.0)], pause_cost_s=1.0)


def test_full_size_check_runs_the_daemon_path_and_reports(capsys: pytest.CaptureFixture[str]) -> None:
    """bench.gpu.full_size_check on the tiny shapes (the SD 1.5 size takes minutes on CPU):
    the same stages, and a JSON verdict that follows from what each stage saw."""
    from bench.gpu import full_size_check

    rc = full_size_check.main(["--shapes", "smoke", "--size", "64", "--steps", "2", "--fp16-steps", "2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and result["ok"] is True
    assert result["shapes"] == "smoke" and result["parameters"]["unet"] > 0
    assert result["images_ok"] and result["fp16_images_ok"]
    assert result["lora_swap_changed_images"] is True  # a real swap: epoch 2's weights differ
    assert result["hotswap_changed_images"] is True
    assert str(result["lora_epoch"]) == "2"  # the file applied last (kohya ss_epoch)
    assert result["unet_only_s"] > 0 and result["fp16_pixel_std"] > 0


def test_child_processes_keep_carried_packages_on_the_path(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU host the missing wheels are installed into a folder on PYTHONPATH; the
    compile and trainer children must see them as well as the repository."""
    from bench.gpu.sharing import child_env

    carried = tmp_path / "site"
    carried.mkdir()
    (carried / "carried_wheel_stand_in.py").write_text("NAME = 'carried'\n", encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(carried))
    proc = subprocess.run([sys.executable, "-c", "import carried_wheel_stand_in as c, bench.gpu; print(c.NAME)"],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "carried"
