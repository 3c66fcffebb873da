"""The trainer's figures: kohya's TensorBoard files written by the real writer (torch's
SummaryWriter, which accelerate's tracker uses for train_network.py), a kohya log excerpt
written by hand from the sd-scripts source, the figures, health checks and storage."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest
from torch.utils.tensorboard import SummaryWriter

from watcher.store import Store
from watcher.training import storage
from watcher.training.figures import figures
from watcher.training.health import findings, training_metrics
from watcher.training.points import Point
from watcher.training.tensorboard import Batch, TensorBoardReader
from watcher.training.trainer_log import TrainerLogReader

FIXTURE = Path(__file__).parent / "fixtures" / "kohya" / "train_network.log"
STEPS_PER_EPOCH = 10


def _kohya_run(logging_dir: Path, stamp: str, epochs: range, *, t0: float, nan_from: int | None = None,
               prefix: str = "px_", validation: bool = False, between_epochs_s: float = 0.0) -> Path:
    """What train_network.py logs through accelerate: `{logging_dir}/{prefix}{stamp}/network_train/`,
    per step loss/current, loss/average, lr/unet, lr/textencoder (global step), per epoch
    loss/epoch_average (epoch number as the step), an hparams sub-folder from
    store_init_configuration. `between_epochs_s`: what kohya spends after each epoch's last
    log (saving, sampling) before the next epoch's first step."""
    folder = logging_dir / f"{prefix}{stamp}" / "network_train"
    w = SummaryWriter(str(folder))
    w.add_hparams({"output_name": "px", "learning_rate": 1e-4}, metric_dict={})
    recent: list[float] = []
    for epoch in epochs:
        for i in range(STEPS_PER_EPOCH):
            step = (epoch - 1) * STEPS_PER_EPOCH + i + 1
            loss = float("nan") if nan_from is not None and step >= nan_from else 0.2 / math.sqrt(step)
            recent = (recent + [loss])[-STEPS_PER_EPOCH:]
            wall = t0 + step * 2.0 + (epoch - 1) * between_epochs_s  # two seconds a step
            for tag, value in (("loss/current", loss), ("loss/average", sum(recent) / len(recent)),
                               ("lr/unet", 1e-4), ("lr/textencoder", 5e-5), ("norm/avg_key_norm", 0.1)):
                w.add_scalar(tag, value, global_step=step, walltime=wall)
        w.add_scalar("loss/epoch_average", sum(recent) / len(recent), global_step=epoch, walltime=wall)
        if validation:
            w.add_scalar("loss/validation/epoch_average", 0.3 / epoch, global_step=epoch, walltime=wall)
        w.flush()
    w.close()
    return folder


def _series(batch: Batch) -> dict[str, list[Point]]:
    out: dict[str, list[Point]] = {}
    for p in batch.points:
        out.setdefault(p.tag, []).append(p)
    return out


def test_tensorboard_files_give_kohyas_figures(tmp_path: Path) -> None:
    _kohya_run(tmp_path, "20261207100000", range(1, 4), t0=1_800_000_000.0, validation=True)
    batch = TensorBoardReader(tmp_path, "px_").poll()
    series = _series(batch)
    assert batch.warnings == [] and batch.rewinds == {}
    assert "norm/avg_key_norm" not in series  # norms are not kept
    assert [p.step for p in series["loss/epoch_average"]] == [1, 2, 3]
    figs = figures(series, total_epochs=5)
    assert figs["step"] == 30 and figs["epochs_done"] == 3 and figs["epoch"] == 3
    assert figs["loss"] == pytest.approx(series["loss/average"][-1].value, rel=1e-5)
    assert figs["lr"] == pytest.approx(1e-4)  # lr/unet before lr/textencoder
    assert figs["steps_per_s"] == pytest.approx(0.5)
    assert figs["epoch_s"] == pytest.approx(20)  # end to end: 20, 20
    assert figs["total_steps"] == 50
    assert figs["eta_s"] == pytest.approx(20 / 0.5)
    assert figs["validation_loss"] == pytest.approx(0.1)


def test_seconds_per_epoch_count_what_kohya_does_between_epochs(tmp_path: Path) -> None:
    """As the real run showed (docs/e2e-kohya.md): kohya saves and samples after each epoch's
    last log, and the first step is logged only when it ends. The mean is the cadence from one
    epoch's end to the next, not a mix of the first epoch's logged steps and later cadences."""
    _kohya_run(tmp_path, "20261207100000", range(1, 4), t0=1_800_000_000.0, between_epochs_s=15.0)
    series = _series(TensorBoardReader(tmp_path, "px_").poll())
    assert figures(series, total_epochs=4)["epoch_s"] == pytest.approx(35.0)  # 20 s of steps + 15
    # one epoch ended so far: its 9 logged steps (18 s) scaled to all 10
    first = {tag: [p for p in points if p.step <= (1 if tag == "loss/epoch_average" else STEPS_PER_EPOCH)]
             for tag, points in series.items()}
    assert figures(first, total_epochs=4)["epoch_s"] == pytest.approx(20.0)


def test_new_files_and_a_resumed_run_replace_the_tail(tmp_path: Path) -> None:
    reader = TensorBoardReader(tmp_path, "px_")
    _kohya_run(tmp_path, "20261207100000", range(1, 4), t0=1_800_000_000.0)
    first = reader.poll()
    assert max(p.step for p in first.points if p.tag == "loss/average") == 30
    time.sleep(1.1)  # the next writer's file name carries a later second
    _kohya_run(tmp_path, "20261207110000", range(3, 5), t0=1_800_001_000.0)  # resumed at epoch 3
    second = reader.poll()
    assert second.rewinds["loss/average"] == 21 and second.rewinds["loss/epoch_average"] == 3
    # an unrelated run in the same logging_dir without the prefix is not read
    _kohya_run(tmp_path, "20261207120000", range(1, 2), t0=1_800_002_000.0, prefix="other_")
    assert reader.poll().points == []


def test_half_written_and_corrupt_event_files(tmp_path: Path) -> None:
    folder = _kohya_run(tmp_path, "20261207100000", range(1, 2), t0=1_800_000_000.0)
    event_file = next(p for p in folder.glob("events.out.tfevents.*"))
    data = event_file.read_bytes()
    event_file.write_bytes(data[: len(data) - 7])  # the last record half-written
    reader = TensorBoardReader(tmp_path, "px_")
    partial = reader.poll()
    assert 0 < len(partial.points) < 41 and partial.warnings == []
    event_file.write_bytes(data)  # the writer finishes it: the rest comes on the next poll
    assert len(reader.poll().points) == 41 - len(partial.points)
    # garbage after the good records: one warning once the file stops growing, no crash
    with open(event_file, "ab") as f:
        f.write(b"\x00not a tfrecord\xff" * 4)
    assert reader.poll().warnings == []
    again = reader.poll()
    assert len(again.warnings) == 1 and "cannot be read" in again.warnings[0]
    assert reader.poll().warnings == []  # said once
    # a file that is not an event file at all, under the same folder
    (folder / "events.out.tfevents.1.broken").write_bytes(os.urandom(64))
    assert reader.poll().points == []
    event_file.unlink()  # rotated away: no error
    reader.poll()


def test_kohya_log_excerpt(tmp_path: Path) -> None:
    log = tmp_path / "trainer.log"
    text = FIXTURE.read_bytes()
    log.write_bytes(text[:1500])  # read while it is written
    reader = TrainerLogReader(log)
    early = reader.poll()
    log.write_bytes(text)
    batch = reader.poll()
    series = _series(Batch(early.points + batch.points))
    assert early.warnings == batch.warnings == []
    losses = series["loss/average"]
    assert [p.step for p in losses] == list(range(1, 11))  # each step once, however often redrawn
    assert losses[-1].value == pytest.approx(0.115) and losses[-1].wall_time == 35.0
    assert [(p.value, p.step) for p in series["epoch/start"]] == [(1.0, 0), (2.0, 4), (3.0, 8)]
    figs = figures(series, total_epochs=3)
    assert figs["step"] == 10 and figs["epoch"] == 3 and figs["epochs_done"] == 2
    assert figs["total_steps"] == 12 and figs["lr"] is None  # the log has no learning rate
    assert figs["loss"] == pytest.approx(0.115)
    assert figs["steps_per_s"] == pytest.approx(9 / 32, rel=0.01)
    assert figs["eta_s"] == pytest.approx(round(2 / (9 / 32)))  # whole seconds
    # a progress line that does not parse: skipped, one warning; a NaN loss is kept as NaN
    with open(log, "a", encoding="utf-8") as f:
        f.write("\rsteps: this is not a bar\rsteps: nonsense again\n")
        f.write("\rsteps:  91%|█████████ | 11/12 [00:38<00:03, 3.50s/it, avr_loss=nan]\n")
    tail = reader.poll()
    assert len(tail.warnings) == 1 and "does not parse" in tail.warnings[0]
    assert math.isnan(tail.points[-1].value) and tail.points[-1].step == 11


def test_a_trainer_that_logs_nothing(tmp_path: Path) -> None:
    assert TensorBoardReader(tmp_path / "none").poll().points == []
    reader = TrainerLogReader(tmp_path / "missing.log")
    assert reader.poll().points == [] and not reader.found_any
    assert figures({}, 10) == {"step": None, "epoch": None, "loss": None, "loss_finite": None,
                               "lr": None, "steps_per_s": None, "epoch_s": None, "eta_s": None,
                               "validation_loss": None, "epochs_done": 0, "total_steps": None}


def test_health_nan_rise_and_stall(tmp_path: Path) -> None:
    _kohya_run(tmp_path, "20261207100000", range(1, 4), t0=1_800_000_000.0, nan_from=25)
    series = _series(TensorBoardReader(tmp_path).poll())
    figs = figures(series, 3)
    assert figs["loss"] is None and figs["loss_finite"] is False
    found = findings(series, figs, loss_rise_factor=3.0, stall_minutes=10, seconds_since_step=700)
    kinds = {f.kind: f for f in found}
    assert set(kinds) == {"loss_nan", "stalled"}
    assert "nan at step 25" in kinds["loss_nan"].message
    metrics = training_metrics(series, figs, 700)
    assert metrics["loss_finite"] == 0.0 and math.isnan(metrics["loss"] or 0.0)
    assert metrics["minutes_since_step"] == pytest.approx(700 / 60)
    # a loss that climbs: 0.05 at its lowest, then 0.5
    rising = {"loss/average": [Point("loss/average", s, 0.05 if s < 40 else 0.5, float(s)) for s in range(1, 50)]}
    rise = findings(rising, figures(rising, 3), loss_rise_factor=3.0, stall_minutes=10,
                    seconds_since_step=None)
    assert [f.kind for f in rise] == ["loss_rise"] and "10.0x its minimum" in rise[0].message


def test_storage_bounded_nan_kept_and_rewinds(tmp_path: Path) -> None:
    with Store(tmp_path / "state.db") as store:
        points = [Point("loss/average", s, float("nan") if s == 7 else 1.0 / s, float(s)) for s in range(1, 1001)]
        storage.save_points(store, "r", Batch(points=points), max_points=300)
        kept = storage.load_series(store, "r")["loss/average"]
        assert len(kept) <= 300 + 1 and kept[-1].step == 1000
        assert [p.step for p in kept[-200:]] == list(range(801, 1001))  # the recent ones all kept
        assert any(p.step == 7 and math.isnan(p.value) for p in kept)
        storage.save_points(store, "r", Batch(points=[Point("loss/average", 900, 2.0, 1.0)],
                                              rewinds={"loss/average": 900}))
        assert storage.load_series(store, "r")["loss/average"][-1] == Point("loss/average", 900, 2.0, 1.0)


def test_status_shows_the_figures_without_torch(tmp_path: Path) -> None:
    import subprocess
    import sys

    from watcher.testing import write_watch_config

    config = write_watch_config(tmp_path, tmp_path / "model", name="FIGS", epochs=5)
    _kohya_run(tmp_path / "tb", "20261207100000", range(1, 3), t0=1_800_000_000.0)
    series = _series(TensorBoardReader(tmp_path / "tb").poll())
    with Store(tmp_path / "state" / "state.db") as store:
        store.ensure_run("FIGS")
        storage.save_state(store, "FIGS", "tensorboard", figures(series, 5), [], None)
    code = ("import sys; from watcher.cli import main; rc = main(['status', '--json', '-c', sys.argv[1]]); "
            "heavy = [m for m in ('torch', 'tensorboard') if m in sys.modules]; "
            "print(heavy); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True,
                          timeout=120, check=True)
    status, heavy = proc.stdout.strip().splitlines()
    assert heavy == "[]"
    training = json.loads(status)["training"]
    assert training["step"] == 20 and training["epoch"] == 2 and training["lr"] == pytest.approx(1e-4)
    assert training["eta_s"] == pytest.approx(30 / 0.5) and training["gpu"] is None  # absent, not zero
    assert training["source"] == "tensorboard" and training["validation_loss"] is None
    text = subprocess.run([sys.executable, "-m", "watcher", "status", "-c", str(config)],
                          capture_output=True, text=True, check=True).stdout
    (line,) = [x for x in text.splitlines() if x.startswith("training ")]
    assert line.startswith("training  step 20/50, epoch 2/5, loss 0.0") and "0.50 steps/s" in line
    assert "0m20s/epoch, ETA 1m00s (tensorboard)" in line  # 20 s end to end; 30 steps at 0.5/s
    # the trainer stopped (a stop rule, say): the figures stay, the ETA goes
    with Store(tmp_path / "state" / "state.db") as store:
        store.set_trainer("FIGS", state="stopped", cause="killed by SIGTERM")
    stopped = subprocess.run([sys.executable, "-m", "watcher", "status", "--json", "-c", str(config)],
                             capture_output=True, text=True, check=True).stdout
    after = json.loads(stopped)["training"]
    assert after["eta_s"] is None and after["step"] == 20 and after["epoch_s"] == pytest.approx(20)


def test_gpu_absent_is_none_and_present_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from watcher.training import gpu

    # this machine has nvidia-ml-py but no NVIDIA driver: absent, not zeros
    assert gpu.sample({"daemon": [os.getpid()]}) is None
    monkeypatch.setitem(sys.modules, "pynvml", None)  # no package at all
    assert gpu.sample() is None

    class Proc:
        def __init__(self, pid: int, used: int | None) -> None:
            self.pid, self.usedGpuMemory = pid, used

    fake = types.ModuleType("pynvml")  # NVML as a driver answers (two GPUs)
    fake.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    calls: list[str] = []
    fake.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    fake.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    fake.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    fake.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(  # type: ignore[attr-defined]
        used=(30 + h) * 2**30, total=80 * 2**30)
    fake.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=97 - h)  # type: ignore[attr-defined]
    fake.nvmlDeviceGetTemperature = lambda h, sensor: 70 + h  # type: ignore[attr-defined]
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: (  # type: ignore[attr-defined]
        [Proc(100, 20 * 2**30), Proc(101, 2 * 2**30), Proc(555, 3 * 2**30)] if h == 0 else [Proc(101, None)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    rows = gpu.sample({"trainer": [100, 101], "daemon": [555]})
    assert rows == [
        {"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_used_mb": 30720.0, "memory_total_mb": 81920.0,
         "utilisation_pct": 97, "temperature_c": 70, "trainer_mb": 22528.0, "daemon_mb": 3072.0},
        {"index": 1, "name": "NVIDIA H100 80GB HBM3", "memory_used_mb": 31744.0, "memory_total_mb": 81920.0,
         "utilisation_pct": 96, "temperature_c": 71, "trainer_mb": None, "daemon_mb": 0.0},
    ]
    assert calls == ["init", "shutdown"]
    fake.nvmlDeviceGetCount = lambda: 1 / 0  # type: ignore[attr-defined]  # a GPU that stops answering
    assert gpu.sample() is None and calls[-1] == "shutdown"


def test_an_epochs_metrics_and_supabase_row_carry_the_training_figures(tmp_path: Path) -> None:
    from watcher.config import load_config
    from watcher.epoch.path import EpochPath
    from watcher.publish.supabase import epoch_row
    from watcher.testing import FakePipeline, write_watch_config

    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="FIG_ROWS")
    path = EpochPath.open(load_config(config))
    try:
        _kohya_run(tmp_path / "tb", "20261207100000", range(1, 3), t0=1_800_000_000.0)
        series = _series(TensorBoardReader(tmp_path / "tb").poll())
        storage.save_state(path.store, "FIG_ROWS", "tensorboard", figures(series, 10), [], None)
        ck = path.add_source(tmp_path / "lora-000002.safetensors", 2, "b" * 64, 1000)
        outcome = path.run_checkpoint(FakePipeline(background="#00ff00"), ck)
        (evaluation,) = path.store.evaluations("FIG_ROWS")
        training = evaluation.metrics["training"]
        assert training["source"] == "tensorboard" and training["step"] == 20 and training["epoch"] == 2
        assert training == outcome.evaluation.metrics["training"]
        on_disk = json.loads((Path(evaluation.result_dir) / "metrics.json").read_text())
        assert on_disk["training"]["loss"] == training["loss"]
        row = epoch_row("FIG_ROWS", 2, evaluation.metrics, None, "continue")
        assert row["metrics"]["training"]["steps_per_s"] == pytest.approx(0.5)
    finally:
        path.close()


def test_the_monitor_reads_the_log_alerts_once_and_says_when_nothing_is_logged(tmp_path: Path) -> None:
    from watcher import logs
    from watcher.config import load_config
    from watcher.epoch.path import EpochPath
    from watcher.testing import write_watch_config
    from watcher.training.monitor import TrainingMonitor

    config = write_watch_config(tmp_path, tmp_path / "no-model-needed", name="MON")
    cfg = load_config(config)
    path = EpochPath.open(cfg)
    try:
        started = time.time() - 3600
        path.store.set_trainer("MON", pid=os.getpid(), state="running", started_at=started,
                               log_path=str(tmp_path / "trainer.log"))
        monitor = TrainingMonitor(cfg, path.store, path.publisher, logs.get_logger(run="MON"), cfg.rules())
        assert monitor.poll()["step"] is None and monitor.poll()["step"] is None
        events = [e for e in path.store.events("MON") if e.kind == "training_input"]
        assert len(events) == 1 and "logged no figures for 60 min" in events[0].message
        # the log appears: its progress lines become figures; a NaN is raised once
        text = FIXTURE.read_text(encoding="utf-8")
        (tmp_path / "trainer.log").write_text(text + "\rsteps:  91%|█████████ | 11/12 [00:38<00:03, 3.50s/it, avr_loss=nan]")
        figs = monitor.poll()
        assert figs["step"] == 11 and figs["loss_finite"] is False
        monitor.poll()
        nan_events = [e for e in path.store.events("MON") if e.kind == "training_loss_nan"]
        assert len(nan_events) == 1 and "loss/average is nan at step 11 (epoch 3)" in nan_events[0].message
        state = storage.load_state(path.store, "MON")
        assert state is not None and state["source"] == "log" and state["health"][0]["kind"] == "loss_nan"
    finally:
        path.close()
