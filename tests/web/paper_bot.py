"""A real paper bot with its page, started as `run.py --config CFG` in a temporary home.

Shared by the web tests (tests/web/conftest.py) and bench/bench_bot_memory.py.

The bot gets the supervisor's environment contract (INSTANCE_ID, DB_PATH, WEB_PORT, LOG_DIR,
GRIDBOT_HOME) without a supervisor, so the page can be tested alone; tests of the daemon path
use `run_cli` instead.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from core.paths import InstancePaths
from core.web_token import read_token
from tests.conftest import REPO, RUN_PY, home_env, wait_for

START_TIMEOUT = 30.0


def write_paper_config(home: Path, instance_id: str, web_port: int, symbol: str = "SOL_USDC_PERP",
                       daemon_config: dict | None = None, **strategy: Any) -> Path:
    """A paper perp grid around 150 that fills within seconds (fast loop, lively random walk)."""
    cfg = {
        "metadata": {"name": f"web test {instance_id}", "instance_id": instance_id, "exchange": "paper",
                     "symbol": symbol, "market_type": "perp", "strategy": "perp_grid"},
        "daemon_config": {"web_port": web_port, "restart_delay": 1, "health_check_interval": 5, **(daemon_config or {})},
        "exchange_config": {"initial_price": 150.0, "volatility": 0.003, "seed": 7, "balance": 10000},
        "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 20,
                            "quantity": 0.5, "max_position": 10, "interval": 0.2, **strategy},
    }
    path = home / "config" / "active" / f"{instance_id}.json"
    path.write_text(json.dumps(cfg, indent=2))
    return path


def make_home(root: Path) -> Path:
    """A bare project home under root (config/active, logs, database) for a bot started alone."""
    for d in ("config/active", "logs", "database"):
        (root / d).mkdir(parents=True, exist_ok=True)
    return root


@dataclass
class Bot:
    """A running bot process and where its page is."""

    proc: subprocess.Popen
    paths: InstancePaths
    port: int
    output: Path  # the bot's stdout and stderr: a file, since a pipe nobody reads would block it

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        token = read_token(self.paths.web_token)
        assert token, "the bot wrote no web.token"
        return token

    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=10, **kw)




def start_bot(home: Path, instance_id: str, web_port: int, env: dict[str, str] | None = None,
              wait_healthy: bool = True, daemon_config: dict | None = None, **strategy: Any) -> Bot:
    """Start run.py like the supervisor would and wait until its page answers (/health 200)."""
    config = write_paper_config(home, instance_id, web_port, daemon_config=daemon_config, **strategy)
    paths = InstancePaths.for_instance(home, instance_id)
    extra = {"INSTANCE_ID": instance_id, "DB_PATH": str(home / "database" / f"{instance_id}.db"),
             "WEB_PORT": str(web_port), "LOG_DIR": str(paths.log_dir), **(env or {})}
    output = home / f"{instance_id}.out"
    with open(output, "w") as out:
        proc = subprocess.Popen([sys.executable, str(RUN_PY), "--config", str(config)], cwd=str(REPO),
                                env=home_env(home, extra), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)

    def port_written() -> int | None:
        if proc.poll() is not None:
            raise AssertionError(f"run.py exited {proc.returncode}:\n{output.read_text()}")
        text = paths.web_port_file.read_text().strip() if paths.web_port_file.exists() else ""
        return int(text) if text else None

    port = wait_for(port_written, START_TIMEOUT, f"{paths.web_port_file}")
    bot = Bot(proc, paths, port, output)
    if wait_healthy:
        wait_for(lambda: health_status(bot) == 200, START_TIMEOUT, "/health to answer 200")
    return bot


def health_status(bot: Bot) -> int | None:
    try:
        return bot.get("/health").status_code
    except requests.ConnectionError:
        return None


def terminate(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a child this test started, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def stop_bot(bot: Bot) -> str:
    """SIGTERM (the bot cancels its orders), then SIGKILL if it lingers; return its output."""
    terminate(bot.proc)
    return bot.output.read_text()
