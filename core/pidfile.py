"""Pid files that cannot lie: the daemon holds an flock on its pid file for its whole life.

A locked pid file is the truth about a running daemon; the content is only a hint (it may be
stale, empty or garbage after a crash, and must never crash a reader).
"""
from __future__ import annotations

import fcntl
import os

from core.atomic import private_opener
from core.proc import read_small


class AlreadyLocked(Exception):
    """Another live process holds the pid file; .pid is what the file says (may be None)."""

    def __init__(self, path: str | os.PathLike, pid: int | None) -> None:
        self.path, self.pid = path, pid
        super().__init__(f"{path} is locked by pid {pid}")


def read_pid(path: str | os.PathLike) -> int | None:
    """The pid a file names, or None for a missing, empty or garbage file."""
    try:
        text = read_small(path).decode().strip()
    except (OSError, UnicodeDecodeError):
        return None
    first = text.split()[0] if text else ""
    return int(first) if first.isdigit() and int(first) > 0 else None


def is_locked(path: str | os.PathLike) -> bool:
    """True if a live process holds the pid file's lock (checked with a shared, non-blocking try)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class PidLock:
    """Open without truncating, lock, then truncate and write our pid; held until release()."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = private_opener(self.path, os.O_RDWR | os.O_CREAT)  # not through a planted symlink
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AlreadyLocked(self.path, read_pid(self.path)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# -- the lock nobody can delete ----------------------------------------------------------------
# A pid file can be deleted, emptied or overwritten while its daemon runs; an abstract unix socket
# lives in the kernel, not on disk, and vanishes only with the process that bound it. So the
# supervisor binds one named after the home and the id: a second supervisor cannot bind it, and a
# command that finds no pid file, no record and no registry still reaches the live supervisor
# (connecting tells it the holder's pid through SO_PEERCRED).
_SOCKET_PREFIX = b"gridbot/"


def _home_tag(home: str | os.PathLike) -> bytes:
    import _sha256  # the C module alone: hashlib would cost the lean supervisor 1.4 MB

    return _sha256.sha256(os.fsencode(str(home))).hexdigest()[:16].encode()


def lock_address(home: str | os.PathLike, instance_id: str) -> bytes:
    """The abstract socket address of one instance's supervisor (leading NUL: not a file)."""
    return b"\0" + _SOCKET_PREFIX + _home_tag(home) + b"/" + instance_id.encode()


class InstanceLock:
    """Bound and listening for the supervisor's whole life; only its exit releases it."""

    def __init__(self, home: str | os.PathLike, instance_id: str) -> None:
        self.address = lock_address(home, instance_id)
        self.sock = None

    def acquire(self) -> None:
        import _socket  # the C module alone: socket.py's enums (and `array`) cost each supervisor 0.2 MB

        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC | _socket.SOCK_NONBLOCK)
        try:
            sock.bind(self.address)
        except OSError:
            sock.close()
            raise AlreadyLocked(os.fsdecode(self.address[1:]), holder_pid_at(self.address)) from None
        sock.listen(16)
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept_all(self) -> None:
        """Drop pending connections (a command asking who we are has its answer already)."""
        while True:
            try:
                fd, _ = self.sock._accept()  # _socket's accept: a bare fd
            except OSError:
                return
            os.close(fd)

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def holder_pid_at(address: bytes) -> int | None:
    import socket
    import struct

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(2.0)
        try:
            sock.connect(address)
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return None
    pid = struct.unpack("3i", creds)[0]
    return pid if pid > 0 else None


def holder_pid(home: str | os.PathLike, instance_id: str) -> int | None:
    """The pid of the live supervisor of this instance, whatever its files say; None if none."""
    return holder_pid_at(lock_address(home, instance_id))


def locked_ids(home: str | os.PathLike) -> set[str]:
    """Ids of every instance of this home whose supervisor is alive (from /proc/net/unix)."""
    prefix = b"@" + _SOCKET_PREFIX + _home_tag(home) + b"/"
    found: set[str] = set()
    try:
        with open("/proc/net/unix", "rb") as fh:
            for line in fh:
                path = line.rsplit(None, 1)[-1] if line.count(b" ") >= 7 else b""
                if path.startswith(prefix):
                    found.add(path[len(prefix):].decode(errors="replace"))
    except OSError:
        pass
    return found
