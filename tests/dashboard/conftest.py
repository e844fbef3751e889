"""A real fleet for the dashboard tests: paper instances started by the CLI (real supervisors and
bots) in one home per module, and the dashboard served by `daemon_manager.py dashboard`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from core.instance_manager import InstanceRegistry
from dashboard.auth import token_path
from tests.conftest import DAEMON_MANAGER, REPO, free_port, home_env, kill_home_processes, run_cli, wait_for
from tests.web.paper_bot import make_home, terminate, write_paper_config

LIVE = ("paper_sol_01", "paper_eth_02")
DEAD = "paper_dead_03"


@dataclass
class Dashboard:
    home: Path
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return token_path(self.home).read_text().strip()

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=120, **kw)


def start_dashboard(home: Path, port: int) -> Dashboard:
    """`daemon_manager.py dashboard --port PORT` in the foreground, as a test-owned child; its
    output goes to a file (a pipe nobody reads would block the server once full)."""
    output = home / "dashboard.out"
    with open(output, "w") as out:
        proc = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "dashboard", "--port", str(port)],
                                cwd=str(REPO), env=home_env(home), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)

    def listening() -> bool:
        assert proc.poll() is None, output.read_text()
        return output.read_text().startswith("dashboard: http://127.0.0.1:")

    wait_for(listening, 30, "the dashboard to listen")
    return Dashboard(home, proc, port)




def fleet_home(tmp_path_factory) -> Path:
    """A bare home of its own for one test module's fleet."""
    return make_home(tmp_path_factory.mktemp("fleethome"))


def start_instance(home: Path, iid: str, symbol: str = "SOL_USDC_PERP", **strategy) -> None:
    cfg = write_paper_config(home, iid, free_port(), symbol=symbol, **strategy)
    done = run_cli(home, "start", "-c", str(cfg), "-d", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def kill_instance(home: Path, iid: str) -> None:
    """SIGKILL the supervisor and its bot, by the pids the registry recorded: a crash, no clean-up."""
    rec = InstanceRegistry(home).get(iid)
    for key in ("pid", "bot_pid"):
        try:
            os.kill(int(rec[key]), signal.SIGKILL)
        except (ProcessLookupError, TypeError, KeyError):
            pass
    wait_for(lambda: InstanceRegistry(home).get(iid)["state"] == "dead", 30, f"{iid} to read as dead")


@contextmanager
def served_fleet(home: Path, live: tuple[str, ...], dead: tuple[str, ...] = ()) -> Iterator[Dashboard]:
    """Instances started by the CLI (the `dead` ones then killed) and the dashboard over them;
    everything stopped on the way out."""
    dash = None
    try:
        for iid in live + dead:
            start_instance(home, iid, symbol="ETH_USDC_PERP" if "eth" in iid else "SOL_USDC_PERP")
        for iid in dead:
            kill_instance(home, iid)
        for iid in live:
            status = home / "logs" / iid / "bot_status.json"
            wait_for(lambda: status.exists() and b'"trading"' in status.read_bytes(), 60, f"{iid} trading")
        dash = start_dashboard(home, free_port())
        yield dash
    finally:
        if dash is not None:
            terminate(dash.proc)
        run_cli(home, "stop-all", timeout=120)
        kill_home_processes(home)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Two live paper bots, one crashed instance, and the dashboard over them."""
    with served_fleet(fleet_home(tmp_path_factory), LIVE, (DEAD,)) as dash:
        yield dash
