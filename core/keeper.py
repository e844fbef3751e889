"""The keeper: a tiny process beside each supervisor that ends the bot's whole process group when
the supervisor dies, however it dies (SIGKILL and the OOM killer included).

It is the one guard (the kernel's PDEATHSIG, which reached only the bot itself and needed ctypes
in every supervisor, is gone): a bot that ignores SIGTERM, one stuck in its shutdown, and any
grandchild are ended too. The keeper blocks on a pipe from its
supervisor, which tells it the bot group of the moment ("PID START_TICKS", "0" when there is none),
the stop timeout ("tenths N") and where the bot says how long its orders need ("stopfile PATH").
End of file means the supervisor is gone: the keeper sends the group SIGTERM (the bot cancels its
orders), and SIGKILL after the stop time; it checks the group leader's identity (pid and start
time in /proc) before each signal, so a reused pid is never hit.

Why POSIX sh and not Python: a forked Python keeper keeps ~3 MB private per instance (the
parent's refcount writes unshare every page); dash needs ~0.2 MB. The script is constant; the
pipe's words are matched by `case` before any use, and nothing is ever evaluated.
"""
from __future__ import annotations

import os

SH = "/bin/sh"
SCRIPT = r"""
trap '' TERM INT HUP
pg=0 st=0 to=100 f=
while read -r w a; do
  case $w in
    tenths) case $a in ''|*[!0-9]*) ;; *) to=$a ;; esac ;;
    stopfile) f=$a ;;
    ''|*[!0-9]*) ;;
    *) case $a in ''|*[!0-9]*) ;; *) pg=$w st=$a ;; esac ;;
  esac
done
[ "$pg" -gt 0 ] || exit 0
ours() {
  [ -r "/proc/$pg/stat" ] || return 0
  IFS= read -r s < "/proc/$pg/stat" || return 0
  s=${s##*) }
  set -- $s
  [ "$3" = "$pg" ] || return 0
  shift 19
  [ "$1" = "$st" ]
}
ours || exit 0
kill -TERM -"$pg" 2>/dev/null || exit 0
if [ -n "$f" ] && read -r x rest < "$f" 2>/dev/null; then
  x=${x%%.*}
  case $x in ''|*[!0-9]*) ;; *) [ "$x" -gt 300 ] && x=300; [ $((x * 10)) -gt "$to" ] && to=$((x * 10)) ;; esac
fi
while [ "$to" -gt 0 ] && kill -0 -"$pg" 2>/dev/null; do sleep 0.1; to=$((to - 1)); done
ours && kill -KILL -"$pg" 2>/dev/null
exit 0
"""
# The group leader's pid is its pgid; `ours` accepts the group when the leader is gone (reaped,
# its grandchildren may live on), when its pid now belongs to a process of another group (the
# pgid stays reserved while the group lives), or when it is the same process (same start time).


def fork_keeper() -> tuple[int, int]:
    """Start the keeper; returns (its pid, the write end of its pipe). The child keeps no other fd:
    a pid-file flock, a socket lock or the start CLI's readiness pipe must die with the supervisor."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which execs at once
        try:
            os.dup2(r, 0)
            for name in os.listdir("/proc/self/fd"):
                if int(name) > 2:
                    try:
                        os.close(int(name))
                    except OSError:
                        pass
            os.execv(SH, ["gridbot-keeper", "-c", SCRIPT, "gridbot-keeper"])
        finally:
            os._exit(127)
    os.close(r)
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
