"""Process identity: a process is (pid, create_time), never a pid alone.

A pid recorded hours ago may now belong to a stranger; comparing the create time as well means a
reused pid is seen as dead and is never signalled. Identity and the supervisor's samples read
/proc directly with psutil's own formula (boot time + start ticks / CLK_TCK), so the values are
interchangeable with psutil.Process.create_time(): importing psutil would cost every `list` ~10 ms
and the daemon 2 MB of its 15 MB budget. psutil is used, lazily, where its richer data is shown.
"""
from __future__ import annotations

import os
import _signal as signal  # signal without its enums (enum costs each supervisor ~8 ms); same ints
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# create_time has a resolution of one clock tick; allow for float round-trips through JSON.
_TOLERANCE = 0.05
_boot_time: float | None = None


def boot_time() -> float:
    global _boot_time
    if _boot_time is None:
        with open("/proc/stat", "rb") as fh:
            _boot_time = next(float(line.split()[1]) for line in fh if line.startswith(b"btime"))
    return _boot_time


def read_small(path: str | os.PathLike, limit: int = 4096) -> bytes:
    """A small file (/proc, pid files, bot_status.json) in three syscalls, at most `limit` bytes:
    open()'s io stack adds five more, which a supervisor's health check and `list` (per instance)
    pay at every read. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def _stat_fields(pid: int) -> list[bytes] | None:
    """Fields of /proc/PID/stat after the command name (field 3, the state, comes first)."""
    try:  # `list` reads two per instance: read_small's three syscalls, not open()'s eight
        data = read_small(f"/proc/{int(pid)}/stat")
    except (OSError, ValueError):
        return None
    return data[data.rfind(b")") + 2:].split()


def start_ticks(pid: int | None) -> int | None:
    """The raw start time (clock ticks since boot, /proc/PID/stat field 22): what shell tools compare."""
    fields = _stat_fields(pid) if pid else None
    return None if fields is None else int(fields[19])


def create_time(pid: int | None) -> float | None:
    """Seconds since the epoch, as psutil.Process(pid).create_time() reports it."""
    fields = _stat_fields(pid) if pid else None
    return None if fields is None else int(fields[19]) / CLOCK_TICKS + boot_time()


def is_alive(pid: int | None, created: float | None) -> bool:
    """A live, non-zombie process with this pid AND this create time exists."""
    if not pid or created is None:
        return False
    fields = _stat_fields(pid)
    if fields is None or fields[0] in (b"Z", b"X"):
        return False
    return abs(int(fields[19]) / CLOCK_TICKS + boot_time() - float(created)) <= _TOLERANCE


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time used so far."""
    fields = _stat_fields(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int | None:
    try:
        return int(read_small(f"/proc/{int(pid)}/statm").split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU percent of one process between two samples, and its resident memory."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._last = (time.monotonic(), cpu_seconds(pid) or 0.0)

    def sample(self) -> tuple[float, int] | None:
        """(CPU percent since the last sample, resident bytes), both from one read of
        /proc/PID/stat (a health check's syscalls are most of its cost); None once it is gone."""
        fields = _stat_fields(self.pid)
        if fields is None:
            return None
        used = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        now = time.monotonic()
        then, before = self._last
        self._last = (now, used)
        return 100.0 * (used - before) / max(now - then, 1e-6), int(fields[21]) * PAGE_SIZE


def get_process(pid: int | None, created: float | None) -> psutil.Process | None:  # noqa: F821 (imported lazily)
    """The psutil.Process with this identity, or None (gone, zombie, or pid reused by a stranger)."""
    if not is_alive(pid, created):
        return None
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def kill_group(leader_pid: int | None, created: float | None, sig: int = signal.SIGKILL) -> bool:
    """Signal the process group a (still identifiable) leader started; True if it was signalled.

    The group id equals the leader's pid (it was started in a new session); Linux never hands out
    a pid that is still in use as a group id, so the group can be signalled after the leader died
    as long as the caller saw the leader alive with this identity (or reaped it itself).
    """
    if not leader_pid:
        return False
    if created is not None and not is_alive(leader_pid, created):
        try:
            if os.getpgid(leader_pid) == leader_pid:  # a new leader with our old pid: not ours
                return False
        except ProcessLookupError:
            pass
    try:
        os.killpg(leader_pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def process_info(proc: psutil.Process | None) -> dict | None:  # noqa: F821
    """What `status` shows of one psutil.Process (seed 001's process_info)."""
    if proc is None:
        return None
    import psutil
    from datetime import datetime

    try:
        with proc.oneshot():
            mem = proc.memory_info()
            created = proc.create_time()
            cpu = proc.cpu_times()
            age = max(time.time() - created, 1e-3)
            return {
                "pid": proc.pid,
                "name": proc.name(),
                "cmdline": proc.cmdline(),
                "create_time": datetime.fromtimestamp(created).isoformat(),
                "cpu_percent": round(100.0 * (cpu.user + cpu.system) / age, 1),
                "memory_info": {"rss": mem.rss, "vms": mem.vms, "rss_mb": round(mem.rss / 2**20, 1)},
                "status": proc.status(),
                "num_threads": proc.num_threads(),
                "uptime_s": round(age, 1),
            }
    except psutil.Error:
        return None



def open_pidfd(pid: int | None, created: float | None) -> int | None:
    """A pidfd for exactly this process: identity is checked after opening, so no pid-reuse race.

    Signals sent through it (signal.pidfd_send_signal) can only reach that process.
    """
    if not pid:
        return None
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return None
    if is_alive(pid, created):
        return fd
    os.close(fd)
    return None


def wait_exit(fds: list[int], timeout: float) -> set[int]:
    """Wait until every pidfd's process has exited (readable at once on exit); return the fds still alive."""
    import select

    poller = select.poll()
    pending = set(fds)
    for fd in pending:
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending and (left := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(left * 1000):
            poller.unregister(fd)
            pending.discard(fd)
    return pending
