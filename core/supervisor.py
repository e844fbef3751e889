"""The supervisor daemon's entry point.

    python -S core/supervisor.py REPO SPEC_FD,READY_FD[,LOCK_FD] ...   (`start -d`, `start-all`)
    python -S core/supervisor.py REPO SPEC_FD foreground               (a foreground `start`)

Detached, one process (spawned by core/daemon.py in a new session) starts the supervisors of a
whole batch: it imports the supervisor's modules once, then for each instance forks a child that
makes its own session (setsid) and forks the supervisor in it, not its leader: the double fork of
DESIGN.md, so opening a terminal can never make it a controlling one, and init adopts it. One
interpreter boot and one import for a batch of eight instead of eight (start-all of 50 spent about
1.2 CPU seconds there on this 2-core machine), and the forked supervisors share those pages.
Each supervisor closes every other instance's pipes and account lock at once: a sibling holding
them would keep a lock alive after its owner died, or a readiness pipe open after it reported.

It is kept this small on purpose: Python compiles a script at every start, and compiling the
state machine (core/supervision.py, loaded from its .pyc instead) left 2.5 MB in each of the
200 supervisors of a fleet. -S skips site (and its 2 MB): only the repository is put on sys.path.
"""
import sys

FOREGROUND = "foreground"  # in place of the fd list: `start` without -d exec'd us (core/daemon.py)


def start_batch(seats: list[tuple[int, ...]]) -> None:
    """Fork one supervisor per seat (spec fd, readiness fd[, account lock fd]); reap the
    intermediate children; return once every supervisor is on its own."""
    import os

    from core.keeper import fork_keeper
    from core.supervision import main     # once, before the forks: every supervisor shares it

    for mine in seats:
        try:
            pid = os.fork()
        except OSError as exc:             # no process left (EAGAIN, ENOMEM): this one fails, said
            os.write(mine[1], f"failed: cannot start the supervisor: {exc.strerror or exc}\n".encode())
            continue
        if pid == 0:
            for seat in seats:
                if seat is not mine:
                    for fd in seat:
                        os.close(fd)
            os.setsid()
            if os.fork():
                os._exit(0)
            keeper = fork_keeper()         # before the spec is read: a supervisor never runs without one
            sys.exit(main(keeper, mine[0], mine[1]))
        os.waitpid(pid, 0)                 # it exits as soon as its supervisor is forked


if __name__ == "__main__":
    sys.path[0] = sys.argv[1]
    if sys.argv[3:] == [FOREGROUND]:
        from core.keeper import fork_keeper

        KEEPER = fork_keeper()
        from core.supervision import main

        sys.exit(main(KEEPER, int(sys.argv[2]), FOREGROUND))
    start_batch([tuple(int(fd) for fd in arg.split(",")) for arg in sys.argv[2:]])
