"""Starting and reaping a child without `subprocess`: os.posix_spawn, one call in C.

Why not subprocess: a supervisor runs once per instance, and subprocess (with the ctypes its
PDEATHSIG preexec_fn needed) cost each of them 1 MB; a preexec_fn also forced a full fork with
Python code in the child. posix_spawn forks like vfork (no page tables copied, no Python in the
child), so a respawn starts sooner. What Popen did and we keep: stdin from /dev/null, stdout and
stderr onto the given fds, an optional new session (the bot's group is what the keeper and
kill_group end), the given environment and working directory, SIGPIPE and SIGXFSZ back to their
defaults (Python ignores them), and no other fd: `no_fd_inherited` makes every fd the
supervisor holds close-on-exec once, at its start. A supervisor killed by SIGKILL leaves its bot
to the keeper (core/keeper.py), which ends the whole group; PDEATHSIG only ever reached the bot.
"""
from __future__ import annotations

import os
import select
import _signal as signal  # signal without its enums (enum costs each supervisor ~8 ms); same ints
import time

_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


def no_fd_inherited() -> None:
    """Mark every fd above 2 close-on-exec (the start CLI's readiness pipe, the account lock it
    handed us): a child must never hold them, or a lock would outlive its supervisor."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the fd of the listdir itself, gone already


def _resolve(program: str, env: dict[str, str]) -> str:
    """argv[0] as Popen finds it: a name without a slash is looked up in the child's PATH."""
    if "/" in program:
        return program
    for d in env.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.join(d or ".", program)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(2, "No such file or directory", program)


def spawn(argv: list[str], env: dict[str, str], cwd: str, stdout: int, stderr: int, new_session: bool,
          keep: tuple[int, ...] = ()) -> int:
    """Start argv in cwd; its stdin is /dev/null, its stdout and stderr the given fds. Returns its
    pid; raises OSError when it cannot be started (no such program or directory, no permission).

    `keep`: fds the child inherits (dup2 onto itself clears close-on-exec in the child only, so a
    spawn beside it never gets them).

    posix_spawn has no working-directory action before Python 3.13: we chdir around the call (the
    supervisor is single-threaded and uses absolute paths) and come back through an fd."""
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)
        return os.posix_spawn(
            _resolve(argv[0], env), argv, env, setsid=new_session, setsigdef=_DEFAULT_SIGNALS,
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                          (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2),
                          *((os.POSIX_SPAWN_DUP2, fd, fd) for fd in keep)])
    finally:
        os.fchdir(here)
        os.close(here)


class Child:
    """A started child: its pid, a pidfd (readable the moment it dies; None on old kernels) and,
    once reaped, its returncode as Popen gives it (negative: killed by that signal)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None
        try:
            self.pidfd: int | None = os.pidfd_open(pid)
        except OSError:
            self.pidfd = None

    def poll(self) -> int | None:
        """Reap the child if it has ended (never blocks); its returncode, or None while it runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                pid, status = self.pid, 255 << 8
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        """Wait up to timeout seconds for the end; the returncode, or None if it still runs."""
        if self.poll() is None and self.pidfd is not None:
            select.select([self.pidfd], [], [], timeout)
        elif self.returncode is None:
            end = time.monotonic() + timeout
            while self.poll() is None and time.monotonic() < end:
                time.sleep(0.05)
        return self.poll()

    def close_pidfd(self) -> None:
        """The owner's call, once it has stopped watching the pidfd (a selector must unregister it first)."""
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None
