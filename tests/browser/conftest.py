"""Fixtures for the browser tests: real clusters (from tests/integration) and Chromium pages.

Every page's browser console is collected, and a test fails on any error it did not expect.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.browser.chrome import CHROMEDRIVER, CHROMIUM, Page, console_errors, start_chromium
from tests.integration.conftest import redis_server, shared_cluster, start_cluster  # noqa: F401


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[Path, Path]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"{CHROMIUM} or {CHROMEDRIVER} not found: run `bash scripts/ensure-chromium` "
            "(Debian packages chromium and chromium-driver)"
        )
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def console_allows() -> list[str]:
    """Patterns of console errors this test expects (a 404 page, a killed worker)."""
    return []


@pytest.fixture
def open_page(
    chromium_paths: tuple[Path, Path], console_allows: list[str]
) -> Iterator[Callable[..., Page]]:
    """Open pages, each in a fresh browser; at teardown, fail on unexpected console errors."""
    binary, driver_path = chromium_paths
    pages: list[Page] = []
    profiles: list[str] = []

    def open_(url: str, name: str, width: int = 1280, height: int = 800) -> Page:
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        profiles.append(profile)
        page = Page(start_chromium(binary, driver_path, profile, width, height), name)
        pages.append(page)
        page.driver.get(url)
        return page

    yield open_
    errors: dict[str, list[str]] = {}
    for page in pages:
        try:
            page.close()
        finally:
            for entry in page.console:  # shown by pytest when the test fails
                print(f"[{page.name} console {entry['level']}] {entry['message']}")
            found = console_errors(page, console_allows)
            if found:
                errors[page.name] = found
    for profile in profiles:
        shutil.rmtree(profile, ignore_errors=True)
    assert not errors, f"browser console errors: {errors}"
