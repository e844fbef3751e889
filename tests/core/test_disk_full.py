"""Issue 10 item 8: a full disk or a read-only logs/ never ends supervision, and `start` says why."""
from __future__ import annotations

import os
import subprocess

import psutil
import pytest

from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import daemon_log, read_int, registry, start, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def small_logs(home):
    """logs/ on its own 4 MB tmpfs (tests run as root in CI), unmounted lazily afterwards."""
    logs = home / "logs"
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(logs)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    yield logs
    subprocess.run(["umount", "-l", str(logs)], capture_output=True)


def _fill(directory) -> None:
    with open(directory / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"x" * 65536)
                fh.flush()
        except OSError:
            pass


def _bots_seen(supervisor: psutil.Process, seen: set[int]) -> int:
    try:
        children = supervisor.children()
    except psutil.NoSuchProcess:  # a child that ended while psutil listed them
        return len(seen)
    for child in children:
        try:
            if "fake_bot.py" in " ".join(child.cmdline()):
                seen.add(child.pid)
        except psutil.Error:
            continue  # a bot that just crashed
    return len(seen)


def test_a_full_disk_keeps_supervision_alive_and_start_says_why(home, small_logs):
    """A read-only logs/ goes through the same paths (every write failure is an OSError); it cannot
    be staged here: a filesystem with files open for writing refuses `remount,ro`."""
    path = write_config(home, "cramped", "--mode", "crash", "--after", "0.3", max_restart_attempts=1000,
                        stable_uptime=0.1, health_check_interval=0.2)
    assert start(home, path).returncode == 0
    supervisor = psutil.Process(read_int(InstancePaths.for_instance(home, "cramped").daemon_pid))
    other = write_config(home, "newcomer")
    _fill(small_logs)
    seen: set[int] = set()
    _bots_seen(supervisor, seen)
    wait_for(lambda: _bots_seen(supervisor, seen) >= 4, what="the bot to keep being restarted without disk space")
    assert supervisor.is_running() and supervisor.status() != psutil.STATUS_ZOMBIE
    out = start(home, other)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "newcomer not started: cannot write" in out.stderr and "No space left" in out.stderr, out.stderr
    # space returns: the supervisor writes its record again and says what it lost meanwhile
    (small_logs / "filler").unlink()
    wait_for(lambda: registry(home)["cramped"]["restart_count"] >= len(seen) - 1,
             what="the record to catch up with the restarts made while the disk refused writes")
    wait_for(lambda: "log line(s) lost" in daemon_log(home, "cramped"), what="a note of the lost log lines")
    assert run_cli(home, "stop", "-i", "cramped").returncode == 0
