"""A home's logs/ and database/ are its user's alone, even where an older build left them open.

The CLI creates everything under umask 077 (core/daemon_manager.py), but a build from before that
left logs/ and database/ at 0755 with files at 0644: every bot's books, fills and logs readable by
any local user, and an upgrade alone changes nothing. (A fresh clone's empty folders are 0755 as
well, made by git: the sentence says what was done, not that anything was exposed.) Closing the two folders (0700) makes all
that is inside unreachable, whatever the files' own modes, in one chmod each: `start` and
`start-all` do it before anything starts. Only these two: the home itself may be the repository,
and config/ is the trader's own.
"""
from __future__ import annotations

import os
import stat

PRIVATE_DIRS = ("logs", "database")


def close_open_dirs(home: str | os.PathLike) -> list[str]:
    """Make the home's logs/ and database/ private where group or others may enter them; one
    sentence per folder changed (or that could not be). A symlink or another user's folder is
    left alone and said."""
    said = []
    for name in PRIVATE_DIRS:
        path = os.path.join(home, name)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not st.st_mode & 0o077:
            continue
        was = stat.filemode(st.st_mode)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            said.append(f"warning: {path} ({was}) is open to other local users and not a folder of yours: left as it is")
            continue
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
        except OSError as exc:
            said.append(f"warning: {path} ({was}) is open to other local users and could not be made private: "
                        f"{exc.strerror}")
            continue
        said.append(f"{path}: made private (drwx------, was {was}): the fleet's logs and books are yours alone")
    return said
