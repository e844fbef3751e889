"""InstanceRegistry: atomic locked writes, identity by (pid, create_time), corrupt files, pid files."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import psutil
import pytest

from core import proc
from core.instance_manager import InstanceManager, InstanceRegistry
from core.pidfile import AlreadyLocked, PidLock, is_locked, read_pid
from tests.conftest import run_cli
from tests.core.util import list_json, start, write_config


@pytest.fixture
def sleeper():
    """A process this test started and owns (a stand-in for 'some unrelated process')."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p
    p.kill()
    p.wait()


def test_seed_api_round_trip(home):
    reg = InstanceRegistry(home)
    reg.register("a", {"pid": 1, "pid_create_time": proc.create_time(1), "web_port": 5001, "status": "running"})
    reg.update("a", restart_count=2)
    assert reg.get("a")["restart_count"] == 2 and reg.get("a")["alive"]
    assert reg.get_instance_by_port(5001)["instance_id"] == "a"
    assert [r["instance_id"] for r in reg.list_instances()] == ["a"]
    assert reg.unregister("a") and reg.get("a") is None and not reg.unregister("a")
    assert list((home / "logs").glob(".instances.*")) == []  # temp files never left behind


def test_concurrent_updates_are_never_lost(home):
    reg = InstanceRegistry(home)

    def worker(n: int) -> None:
        for i in range(20):
            reg.update(f"w{n}", count=i + 1)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    data = InstanceRegistry(home).load()
    assert {k: v["count"] for k, v in data.items()} == {f"w{n}": 20 for n in range(8)}
    claims = json.loads((home / "logs" / "instances.json").read_text())  # claims only: no counters
    assert set(claims) == {f"w{n}" for n in range(8)} and "count" not in claims["w0"]


def test_pid_reused_by_a_stranger_is_dead_and_never_signalled(home, sleeper):
    real_ct = psutil.Process(sleeper.pid).create_time()
    InstanceRegistry(home).register("ghost", {
        "pid": sleeper.pid, "pid_create_time": real_ct - 1000, "bot_pid": sleeper.pid,
        "bot_create_time": real_ct - 1000, "status": "running", "stop_timeout": 1,
        "config_file": str(home / "config" / "active" / "ghost.json")})
    rec = list_json(home)["ghost"]
    assert rec["status"] == "dead" and rec["pid"] is None and rec["bot_pid"] is None
    assert run_cli(home, "stop", "-i", "ghost").returncode == 3
    assert run_cli(home, "stop-all").returncode == 0
    assert run_cli(home, "cleanup", "--force").returncode == 0
    assert sleeper.poll() is None  # still alive: never signalled
    assert InstanceRegistry(home).get("ghost") is None


@pytest.mark.parametrize("garbage", [b'{"survivor": {"pid": 12',  # torn write by some other tool
                                     b'\xff\xfe{"survivor": 1}'])    # not even UTF-8
def test_corrupt_registry_is_kept_aside_and_rebuilt(home, garbage):
    path = write_config(home, "survivor")
    assert start(home, path).returncode == 0
    reg_file = home / "logs" / "instances.json"
    reg_file.write_bytes(garbage)
    out = run_cli(home, "list")
    assert out.returncode == 0 and "survivor" in out.stdout, out.stderr
    kept = list((home / "logs").glob("instances.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    rec = list_json(home)["survivor"]
    assert rec["status"] in ("running", "starting") and rec["pid"] and rec["bot_pid"]
    assert run_cli(home, "stop", "-i", "survivor").returncode == 0


@pytest.mark.parametrize("content", ["", "garbage\n", "-5", "999999999\n"])
def test_stale_empty_or_garbage_pid_file(home, content):
    pid_file = home / "logs" / "stale" / "daemon.pid"
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(content)
    assert read_pid(pid_file) == (999999999 if content.startswith("9") else None)
    assert not is_locked(pid_file)
    assert InstanceRegistry(home).load() == {}  # a pid file without a record or a live lock is no instance
    assert run_cli(home, "list").returncode == 0
    out = start(home, write_config(home, "stale"))
    assert out.returncode == 0, out.stderr
    assert read_pid(pid_file) == list_json(home)["stale"]["pid"]
    assert run_cli(home, "stop", "-i", "stale").returncode == 0


def test_pid_lock_is_exclusive(home):
    path = home / "logs" / "x" / "daemon.pid"
    first = PidLock(path)
    first.acquire()
    with pytest.raises(AlreadyLocked) as exc:
        PidLock(path).acquire()
    assert exc.value.pid == read_pid(path) and is_locked(path)
    first.release()
    assert not is_locked(path)


def test_instance_manager_stats_and_validation(home):
    path = write_config(home, "measured")
    assert start(home, path).returncode == 0
    manager = InstanceManager(home)
    stats = manager.get_instance_stats("measured")
    assert stats["daemon"]["pid"] and stats["bot"]["memory_mb"] > 0 and stats["bot"]["threads"] >= 1
    assert [s["instance_id"] for s in manager.get_all_stats()] == ["measured"]
    assert manager.validate_instance_config("measured") == []
    assert manager.validate_instance_config("nobody") != []
    assert manager.get_instance_stats("nobody") is None
    assert run_cli(home, "stop", "-i", "measured").returncode == 0
