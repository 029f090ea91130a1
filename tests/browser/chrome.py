"""Headless Debian Chromium through Selenium: the flags, and one page per browser.

The browser and its driver are Debian's `chromium` and `chromium-driver` packages (one source
package, so their versions match; scripts/ensure-chromium installs them). The driver path is
given explicitly, so Selenium Manager never looks for, or downloads, a browser or driver.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

from tests.integration.servers import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / "test-artifacts" / "browser"

# As root in a container: no sandbox, no GPU, /tmp instead of a small /dev/shm, and none of
# the background traffic (updates, sync, safe-browsing lists) a test machine must not make.
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--force-color-profile=srgb",
    "--hide-scrollbars",
    "--lang=en-US",
]


@dataclass
class Page:
    """One browser (its own process and profile) showing one page."""

    driver: webdriver.Chrome
    name: str
    console: list[dict[str, Any]] = field(default_factory=list)
    closed: bool = False

    def wait(self, timeout: float = 5) -> WebDriverWait[webdriver.Chrome]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05)

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def text(self, css: str) -> str | None:
        """The trimmed text of the first element matching css, or None."""
        script = "const e = document.querySelector(arguments[0]); return e && e.textContent.trim()"
        result = self.js(script, css)
        return None if result is None else str(result)

    def texts(self, css: str) -> list[str]:
        """The trimmed texts of all elements matching css."""
        script = (
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent.trim())"
        )
        return [str(t) for t in self.js(script, css)]

    def attrs(self, css: str, name: str) -> list[str]:
        """An attribute of all elements matching css."""
        script = (
            "return [...document.querySelectorAll(arguments[0])]"
            ".map((e) => e.getAttribute(arguments[1]))"
        )
        return [str(t) for t in self.js(script, css, name)]

    def read_console(self) -> list[dict[str, Any]]:
        if not self.closed:
            self.console.extend(self.driver.get_log("browser"))  # type: ignore[no-untyped-call]
        return self.console

    def screenshot(self, state: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{state}.png"
        self.driver.save_screenshot(str(path))
        return path

    def close(self) -> None:
        if not self.closed:
            self.read_console()
            self.driver.quit()
            self.closed = True


def console_errors(page: Page, allowed: list[str]) -> list[str]:
    """The page's console errors (SEVERE), less those matching an allowed pattern."""
    return [
        entry["message"]
        for entry in page.read_console()
        if entry["level"] == "SEVERE" and not any(re.search(p, entry["message"]) for p in allowed)
    ]


def start_chromium(
    binary: Path, driver_path: Path, profile: str, width: int, height: int
) -> webdriver.Chrome:
    """A fresh headless Chromium with its own profile and a viewport of exactly width x height."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(binary)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(driver_path)), options=options)
    # Chromium's windows cannot be narrower than ~500 px; the emulated viewport can (phones).
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    driver.set_page_load_timeout(10)
    driver.set_script_timeout(5)
    return driver
