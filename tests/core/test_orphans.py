"""Issue 10 item 4: no bot outlives or escapes its supervisor, even one killed by SIGKILL."""
from __future__ import annotations

import json

import psutil
import pytest

from core.events import read_events
from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import read_int, start, write_config

pytestmark = pytest.mark.slow


def _group(home, iid: str) -> tuple[psutil.Process, list[psutil.Process]]:
    """The supervisor, and the bot with its grandchild (the fake bot records the grandchild's pid)."""
    paths = InstancePaths.for_instance(home, iid)
    bot = psutil.Process(read_int(paths.bot_pid))
    wait_for(lambda: (paths.log_dir / "grandchild.pid").exists(), what="the bot's grandchild")
    return psutil.Process(read_int(paths.daemon_pid)), [bot, psutil.Process(read_int(paths.log_dir / "grandchild.pid"))]


def _gone(procs: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in procs)


def test_sigkill_of_the_supervisor_ends_the_whole_bot_group(home):
    """The bot ignores SIGTERM and its grandchild too: PDEATHSIG alone leaves both trading."""
    path = write_config(home, "stubborn", "--mode", "ignore-term,grandchild", stop_timeout=1)
    assert start(home, path).returncode == 0
    supervisor, group = _group(home, "stubborn")
    supervisor.kill()
    wait_for(lambda: _gone(group), what="the bot and its grandchild to end after the supervisor's SIGKILL")
    out = start(home, path)  # and the instance starts again, with one bot
    assert out.returncode == 0, out.stderr
    assert run_cli(home, "stop", "-i", "stubborn").returncode == 0


@pytest.mark.parametrize("command", [["list"], ["stop", "-i", "stray"], ["start"]])
def test_a_command_that_finds_an_orphaned_bot_group_ends_it(home, command):
    """Supervisor and its keeper both SIGKILLed (kill -9 of everything but the bot): the next
    command ends the bot group (SIGTERM, SIGKILL after stop_timeout) and `list` says so."""
    path = write_config(home, "stray", "--mode", "ignore-term,grandchild", stop_timeout=1)
    assert start(home, path).returncode == 0
    supervisor, group = _group(home, "stray")
    helpers = [c for c in supervisor.children() if c.pid != group[0].pid]
    for p in [supervisor, *helpers]:
        p.kill()
    psutil.wait_procs([supervisor, *helpers], timeout=10)
    assert all(p.is_running() for p in group)  # the orphan is still there: this is the fault
    out = run_cli(home, *(command if command != ["start"] else ["start", "-d", "-c", str(path)]))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "orphaned" not in out.stdout or "ended the bot's process group" in out.stdout
    wait_for(lambda: _gone(group), what="the orphaned bot group to end")
    if command == ["list"]:
        assert "stray" in out.stdout and "ended the bot's process group" in out.stdout
        rec = json.loads(run_cli(home, "list", "--json").stdout)[0]
        assert rec["status"] == "orphaned" and "ended the bot's process group" in rec["last_error"]
        events, _ = read_events(InstancePaths.for_instance(home, "stray").events)
        assert [e["kind"] for e in events] == ["orphan_ended"] and events[0]["payload"]["bot_pid"] == group[0].pid
    if command == ["start"]:
        assert run_cli(home, "stop", "-i", "stray").returncode == 0
