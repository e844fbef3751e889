"""Issue 11 item 1: desired state, `resume` after a power loss, and the systemd units of `startup`."""
from __future__ import annotations

import shutil
import subprocess

import psutil
import pytest

from core.events import fleet_events_path, read_events
from tests.conftest import kill_home_processes, run_cli, wait_for
from tests.core.util import list_json, registry, start, write_config


@pytest.mark.slow
def test_power_loss_then_resume_brings_back_exactly_the_running_ones(home):
    paths = {iid: write_config(home, iid) for iid in ("keep_a", "keep_b", "parked")}
    for path in paths.values():
        assert start(home, path).returncode == 0
    assert run_cli(home, "stop", "-i", "parked").returncode == 0  # the trader's stop: stays down
    books = home / "database" / "keep_a.db"
    books.write_bytes(b"SQLite format 3\0 books")
    before = {iid: rec["pid"] for iid, rec in registry(home).items()}
    assert kill_home_processes(home)  # power loss: every supervisor, keeper and bot dies by SIGKILL
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
                   for pid in before.values())
    assert {k: v["status"] for k, v in list_json(home, "--all").items()} == \
        {"keep_a": "dead", "keep_b": "dead", "parked": "stopped"}
    out = run_cli(home, "resume")
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("keep_a: resumed") for line in lines), out.stdout
    assert any(line.startswith("keep_b: resumed") for line in lines), out.stdout
    assert "parked" not in out.stdout
    listed = list_json(home, "--all")
    assert {k: v["status"] for k, v in listed.items()} == \
        {"keep_a": "running", "keep_b": "running", "parked": "stopped"}
    assert books.read_bytes() == b"SQLite format 3\0 books"  # the same books, not a fresh database
    resumed = [e for e in read_events(fleet_events_path(home))[0] if e["kind"] == "resumed"]
    assert len(resumed) == 1 and resumed[0]["payload"]["started"] == ["keep_a", "keep_b"]
    assert resumed[0]["payload"]["failed"] == {} and resumed[0]["payload"]["skipped"] == ["parked"]
    again = run_cli(home, "resume")  # nothing left to do: never a second supervisor
    assert again.returncode == 0 and "nothing to resume" in again.stdout
    out = run_cli(home, "stop-all", "--keep-desired")  # a shutdown: resume would bring them back
    assert out.returncode == 0 and all(registry(home)[i]["desired_state"] == "running" for i in ("keep_a", "keep_b"))
    wait_for(lambda: not any(r["status"] == "running" for r in list_json(home, "--all").values()),
             what="every instance stopped")


def test_startup_prints_units_that_systemd_accepts(home):
    out = run_cli(home, "startup")
    assert out.returncode == 0, out.stderr
    assert f"--home {home} resume" in out.stdout and "stop-all --keep-desired" in out.stdout
    assert "After=network-online.target" in out.stdout and "start -c config/active/%i.json" in out.stdout
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    units = [block for block in out.stdout.split("# /etc/systemd/system/")[1:]]
    assert len(units) == 2
    for block in units:
        name, text = block.split("\n", 1)
        unit = home / name
        unit.write_text(text.split("\n# ")[0])
        done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
