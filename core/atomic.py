"""Small files other processes read while we write them (web.port, web.token, stop_reason).

Written to a unique temp file in the same directory and renamed over the target, so a reader sees
the old content or the new, never half a file.
"""
from __future__ import annotations

import os
import time
from pathlib import Path


def write_text_atomic(path: Path, text: str, mode: int = 0o644, durable: bool = False) -> None:
    """Write to a temp file beside path and rename it over path; durable also fsyncs the file and
    its directory (what must survive a power loss, e.g. a desired state).

    The temp name is unique by pid, clock and O_EXCL (tempfile would cost the lean supervisor
    1 MB of imports: shutil, random, bz2, lzma)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        try:
            os.fchmod(fd, mode)  # whatever the umask
            os.write(fd, text.encode())
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
