"""`daemon_manager.py dashboard`: -d detaches into its own session (it survives the logout of the
shell that started it), one per home, bad ports get a message and a non-zero exit."""
from __future__ import annotations

import json
import os
import signal
import socket

import psutil
import pytest
import requests

from core.pidfile import is_locked, read_pid
from tests.conftest import free_port, run_cli, wait_for


def test_detached_dashboard_lives_in_its_own_session_and_is_one_per_home(home):
    port = free_port()
    done = run_cli(home, "dashboard", "-d", "--port", str(port))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"dashboard: http://127.0.0.1:{port}/")
    pid_file = home / "logs" / "dashboard" / "dashboard.pid"
    pid = read_pid(pid_file)
    try:
        assert pid and is_locked(pid_file)
        server = psutil.Process(pid)
        # a session of its own whose leader has exited: no terminal, no SIGHUP at logout
        assert os.getsid(pid) != os.getsid(0) and os.getsid(pid) != pid
        assert server.ppid() != os.getpid()
        record = json.loads((home / "logs" / "dashboard" / "dashboard.json").read_text())
        assert record["pid"] == pid and record["port"] == port
        assert requests.get(f"http://127.0.0.1:{port}/api/fleet", timeout=10).json()["instances"] == []

        again = run_cli(home, "dashboard", "-d", "--port", str(free_port()))
        assert again.returncode == 2 and "already runs" in again.stderr and "Traceback" not in again.stderr
        assert (home / "logs" / "dashboard" / "fleet.token").stat().st_mode & 0o777 == 0o600
    finally:
        if pid:
            os.kill(pid, signal.SIGTERM)
            wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                     15, "the dashboard to exit")


@pytest.mark.parametrize("args", [["--port", "70000"], ["--port", "abc"], ["--bogus"]])
def test_bad_arguments_get_a_message_and_exit_2(home, args):
    done = run_cli(home, "dashboard", *args)
    assert done.returncode == 2 and done.stderr.strip() and "Traceback" not in done.stderr


def test_a_taken_port_is_reported(home):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_cli(home, "dashboard", "-d", "--port", str(port))
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert not is_locked(home / "logs" / "dashboard" / "dashboard.pid")


def test_a_detached_dashboard_comes_back_after_a_crash_or_reboot_until_stopped(home):
    from dashboard.serve import resume_args

    port = free_port()
    assert run_cli(home, "dashboard", "-d", "--port", str(port)).returncode == 0
    pid_file = home / "logs" / "dashboard" / "dashboard.pid"
    first = read_pid(pid_file)
    try:
        assert resume_args(home) is None                        # it runs: nothing to bring back
        os.kill(first, signal.SIGKILL)                          # a reboot, as far as it can tell
        wait_for(lambda: not is_locked(pid_file), 15, "the killed dashboard's lock to go")
        args = resume_args(home)
        assert args == ["dashboard", "-d", "--host", "127.0.0.1", "--port", str(port)]
        resumed = run_cli(home, "resume")                       # what the boot unit runs
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert "dashboard: resumed" in resumed.stdout, resumed.stdout
        assert requests.get(f"http://127.0.0.1:{port}/api/fleet", timeout=10).status_code == 200
        second = read_pid(pid_file)
        assert second != first

        stopped = run_cli(home, "dashboard", "--stop")
        assert stopped.returncode == 0 and f"pid {second}" in stopped.stdout
        assert not is_locked(pid_file) and resume_args(home) is None   # stopped by the trader: stays stopped
        again = run_cli(home, "dashboard", "--stop")
        assert again.returncode == 0 and "no dashboard runs" in again.stdout
    finally:
        if is_locked(pid_file):                 # the lock's holder is this home's dashboard, never a stranger
            os.kill(read_pid(pid_file), signal.SIGKILL)
