"""A real full disk for tests: a directory on its own small tmpfs, and a file that fills it.

Mounting needs root (tests run as root in CI); elsewhere the test is skipped, saying why.
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(directory: Path, size: str = "4m") -> Iterator[Path]:
    """`directory` on its own tmpfs of `size` while the block runs, unmounted lazily afterwards
    (processes may still hold files open in it)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def fill(directory: Path) -> None:
    """Write `directory/filler` until the file system is full."""
    with open(directory / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"x" * 65536)
                fh.flush()
        except OSError:
            pass
