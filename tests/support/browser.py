"""Test helper: a real headless Chromium (Debian packages chromium, chromium-driver) driven by selenium.

Offline: the driver is the Debian one at /usr/bin/chromedriver, so selenium never downloads anything.
"""
from __future__ import annotations

import shutil
import tempfile

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1200,1600")


class BrowserNotFound(RuntimeError):
    pass


def start_chromium():
    """A selenium WebDriver on a fresh profile; call .quit() (removes the profile too)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not browser or not driver:
        raise BrowserNotFound("chromium/chromedriver not on PATH; install them with: "
                              "apt-get install -y chromium chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in FLAGS:
        opts.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="relctl-chromium-")
    opts.add_argument(f"--user-data-dir={profile}")
    drv = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    quit_ = drv.quit

    def quit_and_clean() -> None:
        quit_()
        shutil.rmtree(profile, ignore_errors=True)

    drv.quit = quit_and_clean
    return drv


def phase_shown(drv) -> str | None:
    """The release page's phase, read in one script call: the page reloads itself every 5 s while the
    release is active, and an element found before a reload is stale when its text is read after it."""
    return drv.execute_script("const e = document.getElementById('phase'); return e ? e.textContent.trim() : null")


def images_loaded(drv) -> list[int]:
    """The natural width of every image on the page, 0 for one not loaded."""
    return drv.execute_script("return Array.from(document.images).map(i => i.complete ? i.naturalWidth : 0)")
