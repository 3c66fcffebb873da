"""A headless Debian chromium driven by selenium, for the screenshots and the browser tests.

Nothing is downloaded: the driver's path is given, so Selenium Manager never runs, and the
browser's own background traffic (updates, sync, component downloads) is switched off.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("EPOCHWATCH_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("EPOCHWATCH_CHROMEDRIVER", "/usr/bin/chromedriver")


def available() -> str | None:
    """None when chromium and chromedriver are installed, else what is missing."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    return ", ".join(missing) + " not found (Debian: apt-get install chromium chromium-driver)" if missing else None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    os.environ["SE_OFFLINE"] = "true"  # belt and braces: Selenium Manager must not fetch
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="epochwatch-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--metrics-recording-only", "--mute-audio",
                "--hide-scrollbars", f"--window-size={width},{height}",
                "--force-device-scale-factor=1", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def full_page_png(driver: Any, width: int = 1280) -> bytes:
    """The whole page, not only the window: the window grows to the document's height."""
    height = int(driver.execute_script(
        "return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)"))
    driver.set_window_size(width, min(max(height, 400), 8000))
    return bytes(driver.get_screenshot_as_png())
