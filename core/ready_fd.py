"""The readiness pipe, sd_notify style: a bot tells its supervisor "ready" (and its page's port)
the moment it is, instead of the supervisor finding out from files it polls.

Why: the supervisor looked for the first heartbeat every 50 ms and for web.port every 0.5 s, so
`start` waited 25 ms on average for nothing and an idle fleet woke for files that were already
there. The supervisor passes the write end of a pipe as the fd named by $GRIDBOT_READY_FD; the bot
writes `PORT=N` once its page is bound and `READY=1` once it is ready, then the fd is closed.
`core.heartbeat.beat` says READY at the first beat (the contract's "ready" all along), so run.py
and any program using it need no call of their own. A program that never writes is still judged
by the heartbeat, startsecs and web.port, as before, so any program can be supervised.
"""
from __future__ import annotations

import _thread
import os
import stat

READY_FD_ENV = "GRIDBOT_READY_FD"
_fd: int | None = None
_claimed = False
_lock = _thread.allocate_lock()  # the bot beats from more than one thread: one close, never two


def _claim() -> int | None:
    """The fd, taken once: the variable leaves the environment and the fd is close-on-exec, so no
    child of the bot can speak for it (or write into an unrelated fd of the same number)."""
    global _fd, _claimed
    if not _claimed:
        _claimed = True
        value = os.environ.pop(READY_FD_ENV, "")
        try:
            fd = int(value)
            if fd > 2 and stat.S_ISFIFO(os.fstat(fd).st_mode):
                os.set_inheritable(fd, False)
                _fd = fd
        except (ValueError, OSError):
            pass
    return _fd


def notify_supervisor(port: int | None = None, ready: bool = False) -> None:
    """Tell the supervisor our page's port and/or that we are ready (then the pipe is closed).
    Never raises: a program started by hand, or whose supervisor is gone, has no one to tell."""
    global _fd
    if _claimed and _fd is None:  # every heartbeat after the first: nothing to do
        return
    with _lock:
        fd = _claim()
        if fd is None:
            return
        text = (f"PORT={int(port)}\n" if port else "") + ("READY=1\n" if ready else "")
        try:
            os.write(fd, text.encode())
        except OSError:
            pass
        if ready:
            os.close(fd)
            _fd = None
