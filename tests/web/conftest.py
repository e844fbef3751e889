"""The web tests share one real paper bot where they only read it or adjust its grid."""
from __future__ import annotations

import pytest

from tests.conftest import free_port, kill_home_processes
from tests.web.paper_bot import Bot, start_bot, stop_bot


@pytest.fixture(scope="session")
def bot(tmp_path_factory) -> Bot:
    """One paper bot shared by the web tests that only read or adjust it (starting one costs seconds)."""
    home = tmp_path_factory.mktemp("webhome")
    for d in ("config/active", "logs", "database"):
        (home / d).mkdir(parents=True)
    running = start_bot(home, "paper_web_01", free_port())
    yield running
    stop_bot(running)
    kill_home_processes(home)
