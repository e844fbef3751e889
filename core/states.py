"""Every state an instance can be in, named once, with the groups the rest of the code asks about.

Plain str constants, not a StrEnum: `enum` alone cost each supervisor's boot ~8 ms of CPU once it
no longer loads `re` or `signal` (issue 12, goal 3), and nothing asks a state for more than its
text (records, `list` and comparisons all use the string). The supervisor writes the first eight
into its record; the last four are what a reader concludes:
`unresponsive` (the supervisor stopped checking in), `orphaned` (it died with its bot alive),
`dead` (it vanished without recording an end) and `corrupt` (its record cannot be read).
"""
from __future__ import annotations


class State:
    """The state names (a namespace: State.RUNNING == "running", and it is that very str)."""

    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"        # up, but the exchange is unreachable (the bot says so in bot_status.json)
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    EXITED = "exited"
    FATAL = "fatal"
    UNRESPONSIVE = "unresponsive"
    ORPHANED = "orphaned"
    DEAD = "dead"
    CORRUPT = "corrupt"


# A supervisor in one of these is (or should be) alive and owns its bot.
LIVE_STATES = frozenset({State.STARTING, State.RUNNING, State.WAITING, State.BACKOFF, State.STOPPING})
# What a supervisor records as it ends; nothing runs any more.
FINAL_STATES = frozenset({State.STOPPED, State.EXITED, State.FATAL})
# Written by the supervisor itself (a reader never writes the concluded ones).
RECORDED_STATES = LIVE_STATES | FINAL_STATES
# `list` shows these without --all: the trader must act (or know what was done for them).
ATTENTION_STATES = frozenset({State.FATAL, State.DEAD, State.UNRESPONSIVE, State.ORPHANED, State.CORRUPT})
# Desired state: `start` sets running, only the trader's `stop` sets stopped.
DESIRED_RUNNING, DESIRED_STOPPED = "running", "stopped"
