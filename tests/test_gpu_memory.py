"""GPU memory before the pipeline comes to the GPU (watcher/gpumemory.py): the need counted
from the real tiny model's safetensors headers, the free memory from a stubbed
`torch.cuda.mem_get_info` (this machine has no GPU), and the daemon following
`model.on_gpu_memory_short`: refuse, offload (wait, never load what does not fit), or the
trainer's own samples. Real state, real results repository, the FakePipeline renderer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from watcher.config import ConfigError, load_config
from watcher.daemon import Daemon
from watcher.epoch.settle import inspect_checkpoint
from watcher.gpumemory import GIB, MARGIN_BYTES, GpuMemoryShort, shortfall, weights_bytes
from watcher.testing import FakePipeline, lora_bytes, write_watch_config


class CudaFake(FakePipeline):
    """The fake renderer, claiming a CUDA device; counts its loads and releases."""

    device = "cuda"

    def __init__(self) -> None:
        super().__init__()
        self.loads = self.releases = 0

    def load(self) -> CudaFake:
        self.loads += 1
        return self

    def release(self) -> None:
        self.releases += 1


def free_memory(monkeypatch: pytest.MonkeyPatch, free: int) -> None:
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * GIB))


def config(tmp_path: Path, model: Path, policy: str) -> Path:
    path = write_watch_config(tmp_path, model, name="GPU_MEM", epochs=3)
    path.write_text(path.read_text().replace('dtype = "float32"',
                                             f'dtype = "float32"\non_gpu_memory_short = "{policy}"'))
    return path


def test_need_is_counted_from_the_weights(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    params = 0
    for file in tiny_model_dir.rglob("*.safetensors"):
        with safe_open(str(file), "np") as fh:
            params += sum(math.prod(fh.get_slice(k).get_shape()) for k in fh.keys())  # noqa: SIM118
    assert weights_bytes(tiny_model_dir, "float16") == 2 * params
    assert weights_bytes(tiny_model_dir, "float32") == 4 * params
    assert weights_bytes("runwayml/stable-diffusion-v1-5", "float16") is None  # a hub id: unknown
    need = 4 * params + MARGIN_BYTES
    free_memory(monkeypatch, need)
    assert shortfall(tiny_model_dir, "cuda", "float32") is None
    assert shortfall(tiny_model_dir, "cpu", "float32") is None
    free_memory(monkeypatch, need - 1)
    line = shortfall(tiny_model_dir, "cuda:0", "float32")
    assert line is not None and line.startswith("GPU memory short on cuda:0: ") and "\n" not in line


def test_refuse_never_loads(tmp_path: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    free_memory(monkeypatch, GIB // 2)
    fake = CudaFake()
    daemon = Daemon(load_config(config(tmp_path, tiny_model_dir, "refuse")), pipeline=fake)
    with pytest.raises(GpuMemoryShort, match=r"GPU memory short on cuda: 0.5 GiB free .*\"refuse\""):
        daemon.open()
    daemon.path.close()
    assert fake.loads == 0


def test_trainer_samples_judges_without_a_pipeline(tmp_path: Path, tiny_model_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    free_memory(monkeypatch, GIB // 2)
    fake = CudaFake()
    daemon = Daemon(load_config(config(tmp_path, tiny_model_dir, "trainer_samples")), pipeline=fake)
    daemon.open()
    try:
        assert daemon.pipeline is None and daemon.source is not None
        assert daemon.source.folder == tmp_path / "output" / "sample"
        assert fake.loads == 0
        assert [e.kind for e in daemon.store.events("GPU_MEM")] == ["gpu_memory_short"]
    finally:
        daemon.close()


def test_offload_waits_until_the_evaluation_fits(tmp_path: Path, tiny_model_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    free_memory(monkeypatch, GIB // 2)
    fake = CudaFake()
    cfg = load_config(config(tmp_path, tiny_model_dir, "offload"))
    daemon = Daemon(cfg, pipeline=fake)
    daemon.open()
    try:
        assert fake.loads == 0  # not loaded beside the trainer
        lora = tmp_path / "output" / "e2e_lora-000001.safetensors"
        lora.parent.mkdir(parents=True, exist_ok=True)
        lora.write_bytes(lora_bytes(1, "e2e_lora"))
        ck, _ = daemon.path.record(inspect_checkpoint(lora, lora.parent, "e2e_lora", 3))
        assert ck is not None
        daemon._process(ck)  # still short: waits, pending, said once
        daemon._process(ck)
        assert daemon.store.checkpoint(ck.id).status == "pending" and fake.loaded == []
        waits = [e for e in daemon.store.events("GPU_MEM") if e.kind == "gpu_memory_short"]
        assert len(waits) == 2  # the start, then one wait for epoch 1 (said once)
        assert sum("epoch 1 waits" in e.message for e in waits) == 1
        free_memory(monkeypatch, 40 * GIB)  # the trainer gave memory back
        daemon._process(ck)
        assert daemon.store.checkpoint(ck.id).status == "evaluated"
        assert fake.loaded == [str(lora)] and fake.releases == 1  # off the GPU again after
    finally:
        daemon.close()


def test_the_key_is_validated(tmp_path: Path, tiny_model_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"model.on_gpu_memory_short: Input should be 'refuse', "
                                          r"'offload' or 'trainer_samples'"):
        load_config(config(tmp_path, tiny_model_dir, "hope"))


def test_the_clip_judge_counts_in_the_need(tmp_path: Path, tiny_model_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from watcher.clipjudge import build_tiny_clip

    clip = build_tiny_clip(tmp_path / "tiny-clip")
    clip_bytes = weights_bytes(clip, "float32")
    pipeline_bytes = weights_bytes(tiny_model_dir, "float32")
    assert clip_bytes and pipeline_bytes
    free_memory(monkeypatch, pipeline_bytes + MARGIN_BYTES)  # room for the pipeline alone
    assert shortfall(tiny_model_dir, "cuda", "float32") is None
    line = shortfall(tiny_model_dir, "cuda", "float32", clip)
    assert line is not None and "of the CLIP judge" in line
    free_memory(monkeypatch, pipeline_bytes + clip_bytes + MARGIN_BYTES)
    assert shortfall(tiny_model_dir, "cuda", "float32", clip) is None
