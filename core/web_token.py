"""The per-instance bearer token that guards a page's write API.

Kept in the instance's log directory, readable by the owner only, so `info ID` can show it to the
trader and no other instance or user can adjust this bot. A token file that is a symlink, not
ours, or readable by others is refused, never used: a planted `web.token -> /tmp/known` once made
a value the planter knew the token.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
from pathlib import Path

from core.atomic import write_text_atomic

MAX_TOKEN_BYTES = 256


class UnsafeToken(ValueError):
    """The token file exists but cannot be trusted; str() says why and what to do."""


def read_token(path: Path) -> str | None:
    """The token, None when there is none yet; UnsafeToken for a symlink or a file others can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeToken(f"{path} is a symlink: refused (remove it; a new token is made at start)") from None
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            raise UnsafeToken(f"{path} is mode {stat.filemode(st.st_mode)}, owner uid {st.st_uid}: refused, "
                              "it must be a regular file only you can read (remove it; a new one is made at start)")
        value = fh.read(MAX_TOKEN_BYTES).decode("utf-8", "replace").strip()
    return value or None


def ensure_token(path: Path) -> str:
    """Return the instance's token, creating it (mode 0600) on first start; UnsafeToken if refused."""
    existing = read_token(path)
    if existing:
        return existing
    token = secrets.token_urlsafe(24)
    write_text_atomic(path, token + "\n", mode=0o600)
    return read_token(path) or token
