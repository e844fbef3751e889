"""The tests of one module share one real paper bot, in that module's own home, where they only
read it or adjust its grid (each adjusting test reads the grid it starts from)."""
from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from tests.conftest import free_port, kill_home_processes
from tests.web.paper_bot import Bot, start_bot, stop_bot

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def bot(tmp_path_factory) -> Bot:
    """One paper bot per test module (starting one costs a second or two)."""
    home = tmp_path_factory.mktemp("webhome")
    for d in ("config/active", "logs", "database"):
        (home / d).mkdir(parents=True)
    running = start_bot(home, "paper_web_01", free_port())
    yield running
    stop_bot(running)
    kill_home_processes(home)


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium driven by Playwright (it cannot download its own here)."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}: run `make chromium`")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM),
                                      args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()
