"""The daemon's checkpoint-file source (watcher.epoch.sources.CheckpointFiles) on real kohya files,
a real state database and results repository: offer -> settle -> record -> Job, in order."""

from __future__ import annotations

import time
from pathlib import Path

from watcher.config import load_config
from watcher.epoch.path import EpochPath
from watcher.epoch.sources import CheckpointFiles, Source
from watcher.testing import lora_bytes, write_watch_config


def test_checkpoint_files_settle_into_jobs_and_refuse_a_half_written_file(tmp_path: Path) -> None:
    cfg = load_config(write_watch_config(tmp_path, tmp_path / "no-model-needed", name="SRC_RUN",
                                         interval=0.05))
    path = EpochPath.open(cfg)
    try:
        source: Source = CheckpointFiles(cfg, path)
        assert source.folder == Path(cfg.output_dir) and source.settled()
        assert source.accepts(f"{cfg.output_name}-000001.safetensors") and not source.accepts("x.txt")
        cfg.output_dir.mkdir(parents=True, exist_ok=True)
        for epoch in (2, 1):
            f = cfg.output_dir / f"{cfg.output_name}-{epoch:06d}.safetensors"
            f.write_bytes(lora_bytes(epoch, cfg.output_name, seed=epoch))
            source.offer(f)
        seen: list[int | None] = []
        deadline = time.time() + 10
        while source.next_deadline() is not None and time.time() < deadline:
            seen += source.poll(time.time())
            time.sleep(0.05)
        assert sorted(e for e in seen if e is not None) == [1, 2]
        assert not source.settled()  # recorded, not judged yet
        job = source.take_next()
        assert job is not None and job.epoch == 1 and job.images is None  # rendered, in epoch order
        job.put_back()  # a checkpoint file's row stays pending: nothing to put back

        broken = cfg.output_dir / f"{cfg.output_name}-000003.safetensors"
        broken.write_bytes(lora_bytes(3, cfg.output_name)[:100])  # cut short, never finished
        source.offer(broken)
        assert source.finish(time.time() + 60, quiet_s=0.0) == []
        assert [Path(r.path).name for r in path.store.rejected(cfg.run.name)] == [broken.name]
    finally:
        path.close()
