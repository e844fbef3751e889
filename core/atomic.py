"""Files of one instance, written so that no reader sees half of one and no one else steers them.

Small files other processes read while we write them (web.port, web.token, stop_reason, bot.pid)
are written to a new temp file in the same directory and renamed over the target: a reader sees
the old content or the new, and a symlink planted at the target is replaced, never written
through. Files kept open (pid files, logs) are opened with O_NOFOLLOW through `private_opener`.
Everything is created private to its user (0600): positions and trades are nobody else's business.

No `tempfile` here: it pulls `random` and `shutil` into the lean supervisor; no pathlib either
(os.path on str or Path alike): it costs each supervisor 0.7 MB.
"""
from __future__ import annotations

import errno
import itertools
import os

PRIVATE = 0o600
_serial = itertools.count()


def private_opener(path: str | os.PathLike, flags: int) -> int:
    """os.open for `open(..., opener=private_opener)`: created 0600, never through a symlink."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "a symlink is planted there: refusing to write through it",
                          str(path)) from None
        raise


def write_temp_beside(path: str | os.PathLike, text: str, mode: int = PRIVATE, durable: bool = False) -> str:
    """A new private file in path's directory holding text (fsync'd if durable), never through a
    symlink; its name. What a rename over `path` then publishes whole (write_text_atomic, and
    core/durable_batch.py for many files at once); removed again if writing it fails."""
    parent, name = os.path.split(os.fspath(path))
    os.makedirs(parent or ".", exist_ok=True)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}.{next(_serial)}.{os.urandom(4).hex()}")
    fd = private_opener(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "w") as fh:
            os.fchmod(fh.fileno(), mode)
            fh.write(text)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
    except BaseException:
        _remove(tmp)
        raise
    return tmp


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def write_text_atomic(path: str | os.PathLike, text: str, mode: int = PRIVATE, durable: bool = False) -> None:
    """Replace path's content atomically; durable also fsyncs the file and its directory (what must
    survive a power loss, e.g. a desired state)."""
    tmp = write_temp_beside(path, text, mode, durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        dfd = os.open(os.path.dirname(os.fspath(path)) or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
