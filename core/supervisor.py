"""The supervisor daemon's entry point: `python -S core/supervisor.py REPO SPEC_FD READY_FD|foreground`.

Exec'd by `daemon_manager.py start -d` (posix_spawn in a new session, then our own second fork:
the double fork of DESIGN.md) or in place of a foreground `start`.
It is kept this small on purpose: Python compiles a script at every start, and compiling the
state machine (core/supervision.py, loaded from its .pyc instead) left 2.5 MB in each of the
200 supervisors of a fleet. -S skips site (and its 2 MB): only the repository is put on sys.path.
"""
import sys

FOREGROUND = "foreground"  # in place of the ready fd: `start` without -d exec'd us (core/daemon.py)

if __name__ == "__main__":
    import os

    if sys.argv[3] != FOREGROUND and os.fork():
        # The second fork of the double fork: `start -d` spawned us as a session leader (setsid);
        # the daemon is our child, in that session but not its leader, so opening a terminal can
        # never make it its controlling one, and init adopts it once we leave here.
        os._exit(0)
    sys.path[0] = sys.argv[1]
    from core.keeper import fork_keeper

    KEEPER = fork_keeper()  # first: before the spec arrives, so a supervisor never runs without one
    from core.supervision import main

    sys.exit(main(KEEPER, FOREGROUND))
