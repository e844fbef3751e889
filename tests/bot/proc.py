"""Running real run.py processes in a test home, and reading their SQLite file as the truth."""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.conftest import REPO, RUN_PY, home_env

SYMBOL = "SOL_USDC_PERP"


def bot_config(home: Path, iid: str = "bot_t1", strategy: dict | None = None, exchange: dict | None = None,
               daemon: dict | None = None) -> Path:
    """A paper config whose price moves enough to trade within a second at a short interval."""
    doc = {
        "metadata": {"instance_id": iid, "exchange": "paper", "symbol": SYMBOL, "strategy": "perp_grid"},
        "daemon_config": daemon or {},
        "exchange_config": {"initial_price": 150, "volatility": 0.004, "seed": 5, **(exchange or {})},
        "strategy_config": {"grid_lower_price": 140, "grid_upper_price": 160, "grid_num": 21, "quantity": 0.5,
                            "max_position": 5, "boundary_action": "adjust_range", "interval": 0.02,
                            **(strategy or {})},
    }
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def start_bot(home: Path, config: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(RUN_PY), "--config", str(config), *args], cwd=str(REPO),
                            env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


@contextmanager
def running_bot(home: Path, config: Path, *args: str) -> Iterator[subprocess.Popen]:
    """start_bot, and kill -9 on the way out if the test left it running (a failed wait or assert)."""
    proc = start_bot(home, config, *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def terminate(proc: subprocess.Popen, timeout: float = 20) -> tuple[str, str]:
    """SIGTERM, as the supervisor stops a bot; its (stdout, stderr) once it has exited."""
    proc.send_signal(signal.SIGTERM)
    return proc.communicate(timeout=timeout)


def run_bot(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN_PY), *args], cwd=str(REPO), env=home_env(home),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def query(db: Path, sql: str) -> list[tuple]:
    """Read-only query of a bot's database (WAL: safe while the bot writes)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def scalar(db: Path, sql: str):
    rows = query(db, sql)
    return rows[0][0] if rows else None


def open_paper_orders(db: Path) -> list[dict]:
    return [json.loads(r[0]) for r in query(db, "SELECT data FROM paper_orders WHERE status = 'open'")]


