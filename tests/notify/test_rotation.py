"""Alerts across a rotation of the events files (core/events.py rotate_if_over): the real notifier
delivers every event exactly once, whether it was written before, across or after the rename."""
from __future__ import annotations

import json
import os
import time

import pytest

from core.events import (EXITED, MAX_BYTES_ENV, RESUMED, _line, append_event, append_fleet_event, fleet_events_path,
                         new_event, rotate_if_over, rotated_path)
from core.paths import InstancePaths
from tests.conftest import free_port, wait_for
from tests.notify.receivers import JsonReceiver
from tests.notify.test_delivery import fleet, notifier, stop

pytestmark = pytest.mark.slow


@pytest.fixture
def receiver():
    r = JsonReceiver(free_port()).start()
    yield r
    r.stop()


def reasons(receiver) -> list[str]:
    return [m["message"].splitlines()[0].split(": ", 1)[1] for m in receiver.received]


def exited(paths, reason: str, **more: object) -> None:
    assert append_event(paths, EXITED, state="exited", stop_reason=reason, **more)


def test_every_event_before_across_and_after_a_rotation_is_delivered_exactly_once(home, receiver):
    fleet(home, receiver.url)
    paths = InstancePaths.for_instance(home, "rot_a")
    exited(paths, "one")
    exited(paths, "two")
    n = notifier(home)
    wait_for(lambda: len(receiver.received) == 2, 30, "the first two alerts")
    stop(n)
    exited(paths, "three")  # after the notifier's last read, before the rename: only in .1
    exited(paths, "four")
    racer = os.open(paths.events, os.O_WRONLY | os.O_APPEND)  # a bot that opened the path just before
    try:
        assert rotate_if_over(paths.events, max_bytes=1)  # what the supervisor does at its health check
        exited(paths, "five", padding="x" * 600)  # the new file outgrows the saved offset
        exited(paths, "six")
        n = notifier(home)
        wait_for(lambda: len(receiver.received) == 6, 30, "the alerts written around the rotation")
        os.write(racer, _line(new_event(EXITED, "rot_a", {"state": "exited", "stop_reason": "seven"})))
    finally:
        os.close(racer)
    wait_for(lambda: len(receiver.received) == 7, 30, "the alert the racing write put in .1")
    exited(paths, "eight")
    wait_for(lambda: len(receiver.received) == 8, 30, "a later alert")
    stop(n)
    n = notifier(home)  # a restart re-reads its saved cursors: nothing again
    time.sleep(1.5)
    stop(n)
    assert reasons(receiver) == ["one", "two", "three", "four", "five", "six", "seven", "eight"]
    state = json.loads((home / "logs" / ".notifier" / "state.json").read_text())
    assert state["offsets"]["logs/rot_a/events.jsonl"]["inode"] == paths.events.stat().st_ino


def test_a_state_saved_before_rotation_existed_still_loads_and_follows_a_rotation(home, receiver):
    """state.json of the previous release: offsets are bare byte counts, no inode."""
    fleet(home, receiver.url)
    paths = InstancePaths.for_instance(home, "rot_old")
    exited(paths, "already sent")
    state = home / "logs" / ".notifier" / "state.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"offsets": {"logs/rot_old/events.jsonl": paths.events.stat().st_size},
                                 "pending": {}, "sent": {}, "summary": {"day": None, "base": {}}}))
    exited(paths, "new")
    n = notifier(home)
    wait_for(lambda: len(receiver.received) == 1, 30, "the event after the saved offset")
    stop(n)
    exited(paths, "before the rename")
    assert rotate_if_over(paths.events, max_bytes=1)
    exited(paths, "after the rename")
    n = notifier(home)
    wait_for(lambda: len(receiver.received) == 3, 30, "both sides of the rotation")
    time.sleep(1.5)
    stop(n)
    assert reasons(receiver) == ["new", "before the rename", "after the rename"]
    assert not list(state.parent.glob("state.json.corrupt-*"))


def test_the_notifier_rotates_the_fleet_file_and_still_delivers_every_fleet_event_once(home, receiver):
    fleet(home, receiver.url)
    fleet_file = fleet_events_path(home)
    n = notifier(home, env={MAX_BYTES_ENV: "1500"})
    names = [f"inst_{i:02d}_" + "n" * 60 for i in range(30)]  # ~8 KB: several rotations
    for name in names:
        assert append_fleet_event(home, RESUMED, started=[name], failed={}, skipped=[], digest=[])
        time.sleep(0.05)  # as `resume` runs now and then, while the notifier takes turns
    wait_for(lambda: len(receiver.received) >= len(names), 60, "every resumed alert")
    time.sleep(1.5)
    stop(n)
    started = [m["message"].splitlines()[0].removeprefix("Started: ") for m in receiver.received]
    assert started == names
    assert os.path.exists(rotated_path(fleet_file))
    assert not fleet_file.exists() or fleet_file.stat().st_size <= 1500 + 1000
