"""The keeper: a tiny process forked by each supervisor that ends the bot's whole process group
when the supervisor dies, however it dies (SIGKILL and the OOM killer included).

The kernel's PDEATHSIG only sends the bot itself a SIGTERM: a bot that ignores it, one stuck in
its shutdown, and any grandchild would keep trading. The keeper blocks on a pipe from its
supervisor, which tells it the bot group of the moment ("PID CREATE_TIME", "0" when there is
none, "timeout SECONDS" for stop_timeout, "stopfile PATH" for the time the bot asks for). End of file means the supervisor is gone: the keeper
sends the group SIGTERM (the bot cancels its orders), and SIGKILL after stop_timeout.

It is forked before the supervisor imports anything else, with the garbage collector's objects
frozen, so it shares nearly all its pages with a tiny interpreter instead of copying a full
supervisor: its own memory is a few hundred KB.
"""
from __future__ import annotations

import os
import signal
import time


def _run(fd: int) -> None:
    from core import proc  # identity checks: never signal a group whose leader's pid was reused

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # a stop sent to the supervisor's group is the supervisor's to handle
    leader: tuple[int, float | None] | None = None
    stop_timeout, stop_file = 10.0, ""
    buf = b""
    while chunk := os.read(fd, 4096):
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            word, _, rest = line.decode().partition(" ")
            if word == "timeout":
                stop_timeout = float(rest)
            elif word == "stopfile":
                stop_file = rest
            elif word.isdigit():
                leader = (int(word), float(rest) if rest and rest != "None" else None) if int(word) else None
    if leader is None or not proc.kill_group(leader[0], leader[1], signal.SIGTERM):
        return
    if stop_file:  # a big grid asks for more time to cancel its orders than stop_timeout
        from pathlib import Path

        from core.stop_time import stop_seconds

        stop_timeout = stop_seconds(Path(stop_file), stop_timeout)
    deadline = time.monotonic() + stop_timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(leader[0], 0)
        except OSError:
            return  # the whole group is gone
        time.sleep(0.1)
    proc.kill_group(leader[0], leader[1])


def fork_keeper() -> tuple[int, int]:
    """Fork the keeper; returns (its pid, the write end of its pipe). The child keeps no other fd:
    a pid-file flock, a socket lock or the start CLI's readiness pipe must die with the supervisor."""
    import gc

    gc.freeze()  # the child's collector never walks (and so never copies) the parent's objects
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked keeper
        try:
            for name in os.listdir("/proc/self/fd"):
                if int(name) > 2 and int(name) != r:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
            _run(r)
        finally:
            os._exit(0)
    os.close(r)
    gc.unfreeze()
    return pid, w


class KeeperLink:
    """The supervisor's end: tell the keeper about each bot group; close() at a clean exit."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self.fd = pid, fd

    def tell(self, line: str) -> None:
        """Raises OSError if the keeper is gone (the caller logs it: supervision goes on)."""
        os.write(self.fd, (line + "\n").encode())

    def close(self) -> None:
        """EOF to the keeper (it ends whatever group it still knows of), then reap it."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
