"""The report's training loss (loss.png beside curves.png): drawn from kohya figures that the
real TensorBoard writer wrote and the daemon's reader stored, epoch ends and the stop marked;
absent, with no stand-in picture, for a run without training figures."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from test_report_support import NEVER_GREEN, add_run, write_config

from tests.test_training import STEPS_PER_EPOCH, _kohya_run
from watcher.config import load_config
from watcher.report import write_report
from watcher.report.losscurve import loss_figure
from watcher.store import Store
from watcher.training import storage
from watcher.training.tensorboard import TensorBoardReader

RUN = "SD15_KEEP_TOKENS_3_EXPERIMENT"


def _stored_run(tmp_path: Path, *, nan_from: int | None = None) -> tuple[object, Path]:
    cfg = load_config(write_config(tmp_path))
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, NEVER_GREEN, pictures=False)  # stop at 4
        _kohya_run(tmp_path / "tb", "20261207100000", range(1, 5), t0=1_800_000_000.0,
                   nan_from=nan_from, validation=True)
        storage.save_points(store, RUN, TensorBoardReader(tmp_path / "tb").poll())
        path = write_report(cfg, store)
    return cfg, path


def test_the_report_shows_the_trainers_loss_with_epoch_ends_and_the_stop(tmp_path: Path) -> None:
    cfg, report = _stored_run(tmp_path)
    loss = report.parent / "loss.png"
    text = report.read_text()
    assert "![training loss by step, epoch ends dotted](loss.png)" in text
    assert text.index("(curves.png)") < text.index("(loss.png)") < text.index("(grid.png)")
    with Image.open(loss) as img:
        assert img.size == (1200, 420)
        # kohya's average loss drawn in its blue, not an empty frame
        blue = sum(1 for px in img.convert("RGB").getdata() if px == (0x15, 0x65, 0xc0))
    assert blue > 500
    with Store(cfg.state_db) as store:
        series = storage.load_series(store, RUN)
    fig = loss_figure(RUN, series, {4: "stop"})
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["loss/current (per step)", "loss/average (kohya's average)",
                      "validation loss (epoch)", "epoch end", "stop decision (epoch 4)"]
    ends = sorted({line.get_xdata()[0] for line in ax.lines if line.get_linestyle() == ":"})
    assert ends == [STEPS_PER_EPOCH * e for e in range(1, 5)]  # kohya's epoch_average steps
    assert [a.get_text() for a in ax.texts] == ["e1", "e2", "e3", "e4"]


def test_a_nan_loss_is_pointed_out(tmp_path: Path) -> None:
    cfg, _ = _stored_run(tmp_path, nan_from=25)
    with Store(cfg.state_db) as store:
        fig = loss_figure(RUN, storage.load_series(store, RUN), {})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "loss nan from step 25" in labels


def test_no_training_figures_no_loss_picture(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    stale = cfg.run_results_dir / "loss.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"an old picture")  # from figures since cleared
    with Store(cfg.state_db) as store:
        add_run(store, cfg.run_results_dir.parent, RUN, NEVER_GREEN, pictures=False)
        report = write_report(cfg, store)
    assert not stale.exists() and (report.parent / "curves.png").is_file()
    assert "loss.png" not in report.read_text()
    assert loss_figure(RUN, {}, {}) is None
