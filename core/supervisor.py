"""The supervisor daemon's entry point: `python -S core/supervisor.py REPO SPEC_FD READY_FD|foreground`.

Exec'd by `daemon_manager.py start -d` (posix_spawn, new session) or in place of a foreground `start`.
It is kept this small on purpose: Python compiles a script at every start, and compiling the
state machine (core/supervision.py, loaded from its .pyc instead) left 2.5 MB in each of the
200 supervisors of a fleet. -S skips site (and its 2 MB): only the repository is put on sys.path.
"""
import sys

FOREGROUND = "foreground"  # in place of the ready fd: `start` without -d exec'd us (core/daemon.py)

if __name__ == "__main__":
    sys.path[0] = sys.argv[1]
    from core.keeper import fork_keeper

    KEEPER = fork_keeper()  # first: before the spec arrives, so a supervisor never runs without one
    from core.supervision import main

    sys.exit(main(KEEPER, FOREGROUND))
