"""`epochwatch serve` in a real browser (Debian chromium + chromedriver through selenium,
headless, nothing downloaded): the run page picks up a new epoch without a reload, the epoch
page shows the pixel art crisp, and a review typed on the keyboard lands in the store."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.test_serve_support import RUN, add_epoch, make_config, serve_cmd, serving
from watcher.config import load_config
from watcher.serve import browser
from watcher.store import Store

pytestmark = pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))


def test_watch_a_run_and_review_an_epoch_with_the_keyboard(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    config = make_config(tmp_path)
    add_epoch(config, 1)
    add_epoch(config, 2)
    with serving(config) as (base, _), browser.chromium() as driver:
        wait = WebDriverWait(driver, 20)
        driver.get(base + "/")
        assert driver.current_url == f"{base}/run/{RUN}"
        rows = driver.find_elements(By.CSS_SELECTOR, "#live tr[data-epoch]")
        assert [r.get_attribute("data-epoch") for r in rows] == ["1", "2"]
        driver.execute_script("window.notReloaded = true")

        # a new epoch is evaluated while the page is open: it appears by itself
        add_epoch(config, 3)
        row = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '#live tr[data-epoch="3"]'))[0]
        assert driver.execute_script("return window.notReloaded") is True
        assert "evaluated" in row.text

        row.find_element(By.LINK_TEXT, "3").click()
        wait.until(lambda d: d.current_url.endswith(f"/run/{RUN}/epoch/3"))
        pixel = driver.find_element(By.CSS_SELECTOR, "img.pixel")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", pixel))
        assert driver.execute_script("return arguments[0].naturalWidth", pixel) == 16
        assert driver.execute_script("return getComputedStyle(arguments[0]).imageRendering", pixel) == "pixelated"
        assert pixel.size["width"] >= 16 * 10  # enlarged, not shown at 16 px
        big = driver.find_element(By.CSS_SELECTOR, "img.big")
        assert driver.execute_script("return arguments[0].naturalWidth", big) == 16 * 12
        assert driver.find_elements(By.CSS_SELECTOR, "table.colours tr td svg rect")

        # 7, 6, 8 with the keyboard (the third digit is Prompt), then Enter saves
        body = driver.find_element(By.TAG_NAME, "body")
        body.send_keys("7", "6", "8")
        checked = driver.execute_script(
            "return ['visual','style','prompt'].map(n => document.querySelector(`input[name=${n}]:checked`).value)")
        assert checked == ["7", "6", "8"]
        body.send_keys(Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.ID, "saved"))
        assert driver.current_url.endswith(f"/run/{RUN}/epoch/3?saved=1")
        assert driver.find_element(By.CSS_SELECTOR, "input[name=style][value='6']").is_selected()

        # arrows move between epochs
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_LEFT)
        wait.until(lambda d: d.current_url.endswith(f"/run/{RUN}/epoch/2"))

    with Store(load_config(config).state_db) as store:
        [review] = store.reviews(RUN)
    assert (review.epoch, review.visual, review.style, review.prompt) == (3, 7.0, 6.0, 8.0)
    status = json.loads(subprocess.run(
        serve_cmd(config)[:3] + ["status", "--config", str(config), "--json"],
        capture_output=True, text=True, check=True).stdout)
    assert [e["epoch"] for e in status["epochs"] if e["status"] == "evaluated"] == [1, 2, 3]
