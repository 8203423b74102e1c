"""A real browser for the page tests (DESIGN 9): Debian's chromium driven by playwright, with
the system binary (nothing is downloaded).

Where chromium or playwright is missing the page tests skip, saying why; with
`SYNTH_REQUIRE_BROWSER=1` (set by `.ci/run`, which installs chromium) they fail instead.
Screenshots go to `$SYNTH_SCREENSHOT_DIR`, else to `screenshots/` in pytest's temporary base
directory (kept for the last few runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("SYNTH_CHROMIUM", "/usr/bin/chromium")


def unavailable() -> str | None:
    """Why no browser can run here, or None."""
    if not Path(CHROMIUM).is_file():
        return f"no chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra)"
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = unavailable()
    if reason is not None:
        if os.environ.get("SYNTH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"a browser is required here: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("SYNTH_SCREENSHOT_DIR")
    folder = Path(configured) if configured else tmp_path_factory.getbasetemp() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Watched:
    """A page whose script errors (uncaught exceptions, console errors such as a refused
    Content-Security-Policy) are collected; network failures the page handles (a 401 before
    signing in, a refused reconnect while a server restarts) are not script errors."""

    def __init__(self, context: Any) -> None:
        self.page = context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(f"uncaught: {error}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            self.errors.append(f"console: {message.text}")

    def storage(self) -> str:
        """Everything the page keeps in web storage, as text."""
        return str(self.page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])"))
