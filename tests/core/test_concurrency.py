"""Concurrent starts: ten of one config give one daemon; twenty of different configs all register."""
from __future__ import annotations

import subprocess
import sys

import psutil
import pytest

from tests.conftest import DAEMON_MANAGER, REPO, home_env, run_cli, wait_for
from core.instance_manager import InstanceRegistry
from tests.core.util import list_json, registry, write_config

pytestmark = pytest.mark.slow


def start_many(home, paths):
    procs = [subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "start", "-c", str(p), "-d"],
                              cwd=str(REPO), env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, text=True) for p in paths]
    return [(p.wait(timeout=120), *p.communicate()) for p in procs]


def test_ten_concurrent_starts_of_one_config(home):
    path = write_config(home, "only_one")
    results = start_many(home, [path] * 10)
    codes = sorted(code for code, _, _ in results)
    assert codes == [0] + [1] * 9, results
    losers = [err for code, _, err in results if code == 1]
    assert all("already running (pid" in err for err in losers)
    rec = list_json(home)["only_one"]
    assert rec["status"] == "running" and rec["bot_pid"]
    supervisors = [p for p in psutil.process_iter(["cmdline", "environ"])
                   if "core/supervisor.py" in " ".join(p.info["cmdline"] or [])
                   and (p.info["environ"] or {}).get("GRIDBOT_HOME") == str(home)]
    keepers = {c.pid for p in supervisors for c in p.children()}  # each supervisor forks one keeper
    assert [p.pid for p in supervisors if p.pid not in keepers] == [rec["pid"]]
    assert run_cli(home, "stop", "-i", "only_one").returncode == 0


def test_twenty_concurrent_starts_of_different_configs(home):
    paths = [write_config(home, f"bot_{n:02d}", startsecs=0.2) for n in range(20)]
    results = start_many(home, paths)
    assert [code for code, _, _ in results] == [0] * 20, [err for _, _, err in results if err]
    reg = registry(home)
    assert sorted(reg) == [f"bot_{n:02d}" for n in range(20)]
    live = list_json(home)
    assert len(live) == 20 and len({r["web_port"] for r in live.values()}) == 20
    out = run_cli(home, "stop-all")
    assert out.returncode == 0 and "stopped 20 of 20" in out.stdout
    assert list_json(home) == {}


def test_stop_during_a_start_never_signals_the_waiting_start_command(home):
    """Between start's claim and the supervisor's first record, the record's pid is the waiting start
    CLI. The window is ~50 ms, so it is reproduced exactly: a claimed `starting` record whose pid is a
    process of this test's own, and no supervisor holding logs/{id}/daemon.pid. stop must not signal it."""
    waiting_cli = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], env=home_env(home))
    try:
        me = psutil.Process(waiting_cli.pid)
        InstanceRegistry(home).register("racer", {"status": "starting", "pid": waiting_cli.pid,
                                                  "pid_create_time": me.create_time(), "log_dir": str(home / "logs" / "racer")})
        stopped = run_cli(home, "stop", "-i", "racer")
        assert waiting_cli.poll() is None, "stop signalled the process that was waiting for its start"
        assert stopped.returncode == 3 and "not running" in stopped.stdout + stopped.stderr
    finally:
        waiting_cli.kill()
        waiting_cli.wait()
