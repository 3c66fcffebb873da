"""The run page's training part and sample strip, and the compare view of several runs, in
a real chromium: kohya's figures from real TensorBoard files (torch's SummaryWriter), the
prompt x epoch strip of the recovered pixel grids, the per-prompt slider, the log tail with
its secrets removed, and two runs' curves overlaid. Screenshots go to tmp (and to
$EPOCHWATCH_SHOTS when set, which is how docs/img's were made)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.test_serve_support import RUN, add_epoch, make_config, serving
from tests.test_training import _kohya_run
from watcher.config import load_config
from watcher.serve import browser
from watcher.store import Store
from watcher.training import storage
from watcher.training.figures import figures
from watcher.training.health import findings
from watcher.training.tensorboard import TensorBoardReader

pytestmark = pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))
SECRET = "wandb-secret-0123456789"


def _train(config: Path, tb: Path, *, nan_from: int | None = None) -> None:
    """Three epochs of kohya figures into the run's state, as the daemon stores them."""
    cfg = load_config(config)
    _kohya_run(tb, "20261207100000", range(1, 4), t0=1_800_000_000.0, nan_from=nan_from, validation=True)
    batch = TensorBoardReader(tb).poll()
    with Store(cfg.state_db) as store:
        storage.save_points(store, cfg.run.name, batch)
        series = storage.load_series(store, cfg.run.name)
        figs = figures(series, cfg.max_train_epochs)
        found = [f.__dict__ for f in findings(series, figs, loss_rise_factor=3, stall_minutes=10,
                                              seconds_since_step=None)]
        storage.save_state(store, cfg.run.name, "tensorboard", figs, found, None)
    log = cfg.trainer.log_file
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("prepare optimizer, data loader etc.\n"
                   f"\x1b[31mwandb: api_key={SECRET}\x1b[0m\n"
                   "\nepoch 3/6\n\n\rsteps:  45%|####  | 27/60 [00:54<01:06,  2.00s/it, avr_loss=0.0612]"
                   "\rsteps:  50%|#####  | 30/60 [01:00<01:00,  2.00s/it, avr_loss=0.06]\n")


def test_run_page_strip_training_and_compare(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    config = make_config(tmp_path / "a")
    other = make_config(tmp_path / "b", name="OTHER_RUN")
    for epoch in (1, 2, 3):
        add_epoch(config, epoch)
        add_epoch(other, epoch, avatars=(10, 40))
    _train(config, tmp_path / "a" / "tb")
    _train(other, tmp_path / "b" / "tb", nan_from=25)
    shots = [tmp_path / "run.png", tmp_path / "compare.png"]
    with serving(config, extra=("--config", str(other))) as (base, _), browser.chromium() as driver:
        wait = WebDriverWait(driver, 20)
        driver.get(f"{base}/run/{RUN}")
        # the strip: two prompts x three epochs, the 16-cell grids enlarged crisp, lazy
        thumbs = driver.find_elements(By.CSS_SELECTOR, "#strip img.thumb")
        assert len(thumbs) == 6 and all(t.get_attribute("loading") == "lazy" for t in thumbs)
        driver.execute_script("arguments[0].scrollIntoView()", thumbs[0])  # lazy: loaded when near
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumbs[0]))
        assert driver.execute_script("return arguments[0].naturalWidth", thumbs[0]) == 16
        assert driver.execute_script("return getComputedStyle(arguments[0]).imageRendering", thumbs[0]) == "pixelated"
        assert thumbs[0].size["width"] == 96
        # the slider shows epoch 1 of the first prompt, linked to its epoch page
        slide = driver.find_element(By.CSS_SELECTOR, "#strip .striprow img.slide")
        assert slide.get_attribute("src") == thumbs[2].get_attribute("src")  # the last epoch first
        driver.execute_script("const r = document.querySelector('#strip input[type=range]'); r.value = 0;"
                              "r.dispatchEvent(new Event('input', {bubbles: true}))")
        assert slide.get_attribute("src") == thumbs[0].get_attribute("src")
        assert driver.find_element(By.CSS_SELECTOR, "#strip .slider output").text == "1"
        # training: kohya's figures, loss and lr curves with the epochs marked, the log tail
        figures_text = driver.find_element(By.CSS_SELECTOR, "table.figures").text
        assert "steps/s" in figures_text and "30 of 60" in figures_text and "ETA" in figures_text
        loss_svg = driver.find_element(By.CSS_SELECTOR, "section.training svg.curve")
        assert loss_svg.get_attribute("aria-label").startswith("loss")
        assert len(loss_svg.find_elements(By.CSS_SELECTOR, "line.epochline")) == 3
        assert len(driver.find_elements(By.CSS_SELECTOR, "section.training svg.curve")) == 2  # loss, lr
        assert "no NVML" in driver.find_element(By.CSS_SELECTOR, "section.training").text  # absent, not 0
        tail = driver.execute_script("return document.querySelector('details.logtail pre').textContent")
        assert "api_key=***" in tail and SECRET not in tail and "\x1b" not in tail
        assert "30/60" in tail and "27/60" not in tail  # the bar as a terminal shows it
        assert "Parameters" in driver.page_source and "network_dim" in driver.page_source
        # one unit per metric: background match in % in the table as on the curves
        assert driver.find_element(By.CSS_SELECTOR, '#live tr[data-epoch="1"] td:nth-child(3)').text.endswith("%")
        labels = [t.text for t in driver.find_elements(By.CSS_SELECTOR, "svg.curve text.tlabel")]
        assert "green_background_by_epoch_4, background_oscillation (50)" in labels  # one line, one label
        driver.execute_script("window.scrollTo(0, 0)")
        shots[0].write_bytes(browser.full_page_png(driver))
        # a thumbnail opens its epoch
        thumbs[1].click()
        wait.until(lambda d: d.current_url.endswith(f"/run/{RUN}/epoch/2"))

        # the other run's NaN is marked, its health finding shown
        driver.get(f"{base}/run/OTHER_RUN")
        assert "is nan at step 25" in driver.find_element(By.CSS_SELECTOR, "p.health").text
        assert driver.find_elements(By.CSS_SELECTOR, "section.training svg.curve line.nan")

        # compare: both runs' curves on the same panels
        driver.set_window_size(1280, 900)
        driver.get(f"{base}/")
        driver.find_element(By.LINK_TEXT, "compare their curves").click()
        wait.until(lambda d: "/compare-runs" in d.current_url)
        panels = driver.find_elements(By.CSS_SELECTOR, ".overlay svg.curve")
        assert [p.get_attribute("aria-label").split(" ")[0] for p in panels] == ["loss", "overall", "background"]
        for panel in panels:
            assert len(panel.find_elements(By.CSS_SELECTOR, "polyline")) == 2
            assert [t.text for t in panel.find_elements(By.CSS_SELECTOR, "text.legend")] == [RUN, "OTHER_RUN"]
        shots[1].write_bytes(browser.full_page_png(driver))
    if os.environ.get("EPOCHWATCH_SHOTS"):
        for shot, name in zip(shots, ("serve-run-training.png", "serve-compare-runs.png"), strict=True):
            shutil.copy(shot, Path(os.environ["EPOCHWATCH_SHOTS"]) / name)
