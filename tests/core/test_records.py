"""Issue 10 items 1-3, issue 12 goal 1: the per-instance records and the socket lock are the truth;
no lost, emptied, corrupt or wrong-typed file makes a running instance unmanageable."""
from __future__ import annotations

import json
import shutil

import psutil
import pytest

from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import list_json, read_int, registry, start, write_config

pytestmark = pytest.mark.slow


def _procs(home, iid: str, log_dir=None) -> list[psutil.Process]:
    paths = InstancePaths.for_instance(home, iid, log_dir)
    return [psutil.Process(read_int(paths.daemon_pid)), psutil.Process(read_int(paths.bot_pid))]


def _all_gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


@pytest.mark.parametrize("damage", ["delete", "truncate", "directory", "wrong-types"])
def test_a_lost_or_broken_registry_leaves_every_instance_manageable(home, damage):
    custom = home / "elsewhere" / "logs_b"
    a = write_config(home, "rec_a")
    b = write_config(home, "rec_b", log_dir=str(custom))
    assert start(home, a).returncode == 0 and start(home, b).returncode == 0
    procs = _procs(home, "rec_a") + _procs(home, "rec_b", custom)
    reg = home / "logs" / "instances.json"
    if damage == "delete":
        reg.unlink()
    elif damage == "truncate":
        reg.write_bytes(b"")
    elif damage == "directory":
        reg.unlink()
        reg.mkdir()
    else:
        reg.write_text(json.dumps({"rec_a": {"pid_create_time": "yesterday", "web_port": "x"}, "7": 7,
                                   "rec_b": {"instance_id": 12}}))
    listed = list_json(home)
    assert {k: v["status"] for k, v in listed.items()} == {"rec_a": "running", "rec_b": "running"}
    # the conflict checks still know the database of each: a second bot on rec_a's database is refused
    doc = json.loads(a.read_text())
    doc["metadata"]["instance_id"] = "intruder"
    doc["daemon_config"]["db_path"] = str(home / "database" / "rec_a.db")
    (home / "config" / "active" / "intruder.json").write_text(json.dumps(doc))
    out = start(home, home / "config" / "active" / "intruder.json")
    assert out.returncode == 2 and "rec_a" in out.stderr
    out = run_cli(home, "cleanup", "--force")
    assert out.returncode == 0
    assert InstancePaths.for_instance(home, "rec_b", custom).record.exists()  # a live record is never removed
    assert run_cli(home, "restart", "-i", "rec_b").returncode == 0  # its config is known from its record
    procs += _procs(home, "rec_b", custom)
    out = run_cli(home, "stop-all")
    assert out.returncode == 0 and "stopped 2 of 2" in out.stdout, out.stdout + out.stderr
    wait_for(lambda: _all_gone(procs), what="every supervisor and bot to end")


def test_claims_hold_only_claims_and_are_rebuilt_from_records(home):
    path = write_config(home, "claimer")
    assert start(home, path).returncode == 0
    claims = json.loads((home / "logs" / "instances.json").read_text())
    assert set(claims["claimer"]) == {"instance_id", "log_dir", "db_path", "web_port", "account", "symbol",
                                      "exchange", "config_file"}
    rec = registry(home)["claimer"]
    assert rec["desired_state"] == "running" and rec["status"] == "running" and rec["stop_timeout"] == 2
    (home / "logs" / "instances.json").unlink()
    assert run_cli(home, "stop", "-i", "claimer").returncode == 0
    assert registry(home)["claimer"]["desired_state"] == "stopped"
    assert set(json.loads((home / "logs" / "instances.json").read_text())) == {"claimer"}  # rebuilt


def test_a_corrupt_record_shows_as_corrupt_and_copies_are_pruned(home):
    path = write_config(home, "good")
    assert start(home, path).returncode == 0
    bad = home / "logs" / "broken" / "instance.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"pid": "12", "pid_create_time": "soon"}))
    out = run_cli(home, "list")
    assert out.returncode == 0, out.stderr
    assert any(line.split()[:2] == ["broken", "corrupt"] for line in out.stdout.splitlines()), out.stdout
    assert list_json(home)["good"]["status"] == "running"
    for n in range(6):
        (home / "logs" / "instances.json").write_text("{torn %d" % n)
        assert run_cli(home, "list").returncode == 0
    kept = list((home / "logs").glob("instances.json.corrupt-*"))
    assert len(kept) == 3 and {p.read_text() for p in kept} == {"{torn 3", "{torn 4", "{torn 5"}
    assert run_cli(home, "stop", "-i", "good").returncode == 0


@pytest.mark.parametrize("damage", ["garbage", "deleted", "rm-rf"])
def test_stop_works_whatever_happened_to_the_pid_file(home, damage):
    path = write_config(home, "victim")
    assert start(home, path).returncode == 0
    procs = _procs(home, "victim")
    log_dir = home / "logs" / "victim"
    if damage == "garbage":
        (log_dir / "daemon.pid").write_text("not a pid\n")
    elif damage == "deleted":
        (log_dir / "daemon.pid").unlink()
    else:
        shutil.rmtree(log_dir)
        (home / "logs" / "instances.json").unlink()
    out = run_cli(home, "stop", "-i", "victim")
    assert out.returncode == 0, out.stdout + out.stderr
    wait_for(lambda: _all_gone(procs), what="the supervisor and its bot to end")


def test_one_supervisor_per_instance_even_without_pid_file_and_registry(home):
    path = write_config(home, "single")
    assert start(home, path).returncode == 0
    first = _procs(home, "single")
    (home / "logs" / "single" / "daemon.pid").unlink()
    (home / "logs" / "single" / "instance.json").unlink()
    (home / "logs" / "instances.json").unlink()
    out = start(home, path)
    assert out.returncode == 1 and "already running" in out.stderr, out.stdout + out.stderr
    assert all(p.is_running() for p in first)
    supervisors = [p for p in psutil.process_iter(["cmdline"]) if "supervisor.py" in " ".join(p.info["cmdline"] or [])
                   and p.environ().get("GRIDBOT_HOME") == str(home)]
    keepers = {c.pid for p in supervisors for c in p.children()}  # each supervisor forks one keeper
    assert [p.pid for p in supervisors if p.pid not in keepers] == [first[0].pid]
    out = run_cli(home, "stop-all")
    assert out.returncode == 0 and "stopped 1 of 1" in out.stdout, out.stdout + out.stderr
    wait_for(lambda: _all_gone(first), what="the one supervisor and its bot to end")


HOLDER = """
import os, socket, sys, time
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.bind(bytes.fromhex(sys.argv[1]))
sock.listen()
if os.fork() == 0:          # the lock outlives the process that took it: nothing can release it
    print(os.getpid(), flush=True)
    time.sleep(120)
os._exit(0)
"""


def test_stop_all_exits_1_naming_an_instance_it_could_not_stop(home):
    import subprocess
    import sys

    from core.pidfile import lock_address
    from tests.conftest import home_env

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, lock_address(home, "stuck").hex()],
                              stdout=subprocess.PIPE, text=True, env=home_env(home))
    grandchild = psutil.Process(int(holder.stdout.readline()))
    try:
        holder.wait(timeout=10)
        out = run_cli(home, "stop-all")
        assert out.returncode == 1, out.stdout + out.stderr
        assert "stuck: could not be stopped" in out.stderr and "stopped 0 of 1" in out.stdout
    finally:
        grandchild.kill()
