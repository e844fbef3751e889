"""Issue 10 item 8: a full disk or a read-only logs/ never ends supervision, and `start` says why."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import daemon_log, read_int, registry, start, write_config
from tests.full_disk import fill, small_tmpfs

pytestmark = pytest.mark.slow


@pytest.fixture
def small_logs(home):
    """logs/ on its own 4 MB tmpfs."""
    with small_tmpfs(home / "logs") as logs:
        yield logs


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` read-only under processes that hold files open in it: a bind mount of it over
    itself, then remounted ro (the new mount has no writers, so the kernel allows it). Open fds keep
    writing to the mount below; new opens and renames through the path fail with EROFS."""
    if os.geteuid() != 0:
        pytest.skip("a read-only bind mount needs root")
    done = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount: {done.stderr.decode().strip()}")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


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


def _crash_looping(home, iid: str) -> psutil.Process:
    """A supervised bot that crashes every 0.3 s: every restart rewrites the record and the logs."""
    path = write_config(home, iid, "--mode", "crash", "--after", "0.3", max_restart_attempts=1000,
                        stable_uptime=0.1, health_check_interval=0.2)
    assert start(home, path).returncode == 0
    return psutil.Process(read_int(InstancePaths.for_instance(home, iid).daemon_pid))


def _supervision_survives(home, supervisor: psutil.Process, seen: set[int], latecomer: str, error: str) -> None:
    """While writes fail: the bot is still restarted, and `start` of another instance says why."""
    _bots_seen(supervisor, seen)
    wait_for(lambda: _bots_seen(supervisor, seen) >= 4, what="the bot to keep being restarted while writes fail")
    assert supervisor.is_running() and supervisor.status() != psutil.STATUS_ZOMBIE
    out = start(home, write_config(home, latecomer))
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{latecomer} not started: cannot write" in out.stderr and error in out.stderr, out.stderr


def _record_catches_up(home, iid: str, seen: set[int]) -> None:
    wait_for(lambda: registry(home)[iid]["restart_count"] >= len(seen) - 1,
             what="the record to catch up with the restarts made while writes failed")


def test_a_full_disk_keeps_supervision_alive_and_start_says_why(home, small_logs):
    supervisor = _crash_looping(home, "cramped")
    fill(small_logs)
    seen: set[int] = set()
    _supervision_survives(home, supervisor, seen, "newcomer", "No space left")
    # space returns: the supervisor writes its record again and says what it lost meanwhile
    (small_logs / "filler").unlink()
    _record_catches_up(home, "cramped", seen)
    wait_for(lambda: "log line(s) lost" in daemon_log(home, "cramped"), what="a note of the lost log lines")
    assert run_cli(home, "stop", "-i", "cramped").returncode == 0


def test_a_read_only_logs_keeps_supervision_alive_and_start_says_why(home):
    supervisor = _crash_looping(home, "frozen")
    record = InstancePaths.for_instance(home, "frozen").record
    seen: set[int] = set()
    with read_only(home / "logs"):
        _supervision_survives(home, supervisor, seen, "latecomer", "Read-only file system")
        wait_for(lambda: f"cannot write {record}: Read-only file system; retrying" in daemon_log(home, "frozen"),
                 what="the failed record write in the daemon log (written through the log it holds open)")
    # writable again: the record catches up with the restarts made meanwhile
    _record_catches_up(home, "frozen", seen)
    wait_for(lambda: f"{record} written again" in daemon_log(home, "frozen"), what="the record written again")
    assert supervisor.is_running() and run_cli(home, "stop", "-i", "frozen").returncode == 0
