"""Shared fixtures: every test gets its own project home and ports, and cleans up after itself.

Clean-up kills only processes this test's home recorded (pid files under its logs/) or that carry
this home in their environment (GRIDBOT_HOME is set for every process a test starts): never by
name, never a stranger.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parent.parent
DAEMON_MANAGER = REPO / "core" / "daemon_manager.py"
RUN_PY = REPO / "run.py"
TEST_BOT = REPO / "tests" / "fake_bot.py"

_used_ports: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 right now, never handed out twice in one test session."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports and port > 10000:
            _used_ports.add(port)
            return port


def wait_for(predicate, timeout: float = 30, what: str = "a condition", interval: float = 0.05):
    """Poll until predicate() is truthy and return its value; fail naming what never happened.

    The deadline is generous on purpose: it bounds a hang, it is not a timing assertion.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def home_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["GRIDBOT_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run_cli(home: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """Run `daemon_manager.py --home HOME ARGS...` as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, str(DAEMON_MANAGER), "--home", str(home), *args],
        cwd=str(REPO), env=home_env(home, env), capture_output=True, text=True,
        timeout=timeout, input=input, stdin=None if input is not None else subprocess.DEVNULL,
    )


def _processes_of(home: Path) -> list[psutil.Process]:
    """Processes recorded in this home's pid files, plus any carrying this home in their env."""
    found: dict[int, psutil.Process] = {}
    for pid_file in list(home.glob("logs/*/daemon.pid")) + list(home.glob("logs/*/bot.pid")):
        try:
            pid = int(pid_file.read_text().split()[0])
            proc = psutil.Process(pid)
            if proc.environ().get("GRIDBOT_HOME") == str(home):
                found[pid] = proc
        except (ValueError, IndexError, OSError, psutil.Error):
            continue
    me = os.getpid()
    for proc in psutil.process_iter():
        try:
            if proc.pid != me and proc.environ().get("GRIDBOT_HOME") == str(home):
                found[proc.pid] = proc
        except psutil.Error:
            continue
    return list(found.values())


def kill_home_processes(home: Path) -> list[str]:
    """Kill what this home left running, all at once; return a description of each leftover.

    Every process is stopped (SIGSTOP) before any is killed: killed one by one, a supervisor's
    keeper could see it die and SIGTERM the bot, which would cancel its orders before its own
    SIGKILL, and a test simulating a power loss would see a graceful stop instead."""
    leftovers = []
    procs = _processes_of(home)
    for proc in procs:
        try:
            leftovers.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
            proc.send_signal(signal.SIGSTOP)
        except psutil.Error:
            pass
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=5)
    return leftovers


@pytest.fixture(autouse=True)
def user_state(tmp_path: Path, monkeypatch) -> Path:
    """Each test's own per-user state dir (account locks, shared request budgets: core/user_state.py),
    inherited by every process it starts, so no test ever sees the real user's or another test's."""
    path = tmp_path / "user_state"
    monkeypatch.setenv("GRIDBOT_STATE_DIR", str(path))
    return path


@pytest.fixture
def home(tmp_path: Path):
    """A fresh project home: config/{active,templates,archived}, logs/, database/."""
    h = tmp_path / "home"
    for d in ("config/active", "config/templates", "config/archived", "logs", "database"):
        (h / d).mkdir(parents=True)
    yield h
    time.sleep(0)  # let the test's own stop commands finish writing
    leftovers = kill_home_processes(h)
    if leftovers:
        print("killed leftovers of", h, *leftovers, sep="\n  ", file=sys.stderr)
