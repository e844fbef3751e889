"""core/events.py: the append-only event log the supervisor writes and the notifier reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from core import events
from core.events import RestartWindow, WaitingWatch, append_event, read_events
from core.paths import InstancePaths
from tests.conftest import REPO


def test_append_then_read_gives_typed_events_with_unique_ids(tmp_path):
    paths = InstancePaths("bot_a", tmp_path / "logs" / "bot_a")
    assert append_event(paths, events.FATAL, reason="gave up", stderr_tail=["Traceback", "boom"])
    assert append_event(paths, events.HANG_RESTART, reason="hung")
    got, offset = read_events(paths.events)
    assert [e["kind"] for e in got] == ["fatal", "hang_restart"]
    assert got[0]["instance"] == "bot_a" and got[0]["payload"] == {"reason": "gave up", "stderr_tail": ["Traceback", "boom"]}
    assert got[0]["id"] != got[1]["id"] and offset == paths.events.stat().st_size
    assert read_events(paths.events, offset) == ([], offset)  # nothing new after the saved offset
    assert paths.events.stat().st_mode & 0o777 == 0o600  # stderr tails may say what the trader holds


def test_a_half_written_line_waits_and_a_foreign_line_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    good = json.dumps(events.new_event(events.EXITED, "x", {"stop_reason": "stop-loss"}))
    path.write_bytes(b"not json\n" + json.dumps({"kind": "nonsense", "id": "1"}).encode() + b"\n"
                     + good.encode() + b"\n" + good[:20].encode())
    got, offset = read_events(path)
    assert [e["payload"]["stop_reason"] for e in got] == ["stop-loss"]
    assert offset == path.stat().st_size - 20  # the partial line is read when it is complete
    with open(path, "ab") as fh:
        fh.write(good[20:].encode() + b"\n")
    again, end = read_events(path, offset)
    assert [e["id"] for e in again] == [got[0]["id"]] and end == path.stat().st_size


def test_a_file_replaced_by_a_shorter_one_is_read_from_the_start(tmp_path):
    paths = InstancePaths("b", tmp_path)
    for _ in range(3):
        append_event(paths, events.WAITING, message="x" * 100)
    _, offset = read_events(paths.events)
    paths.events.unlink()
    append_event(paths, events.TRADING, waited_s=301)
    got, _ = read_events(paths.events, offset)
    assert [e["kind"] for e in got] == ["trading"]


def test_a_failed_append_is_reported_and_never_raises(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the log directory should be")
    said: list[str] = []
    assert append_event(InstancePaths("b", blocker), events.FATAL, on_error=said.append, reason="r") is False
    assert len(said) == 1 and "cannot append fatal event" in said[0]


def test_a_huge_payload_is_cut_to_one_atomic_line_not_lost(tmp_path):
    paths = InstancePaths("b", tmp_path)
    append_event(paths, events.FATAL, reason="r" * 10_000, stderr_tail=["e" * 5000] * 20)
    raw = paths.events.read_bytes()
    assert raw.count(b"\n") == 1 and len(raw) <= events.MAX_LINE + 1
    (ev,), _ = read_events(paths.events)
    assert ev["kind"] == "fatal" and ev["payload"]["reason"].startswith("rrr")


def test_restart_window_fires_once_per_loop_and_leaves_a_loop_bound_for_fatal_to_fatal():
    w = RestartWindow(count=3, window_s=600)
    assert [w.add(t) for t in (0, 100, 200)] == [False, False, True]
    assert [w.add(t) for t in (300, 400)] == [False, False]  # started over after firing
    assert RestartWindow().add(0) is False
    spread = RestartWindow(count=3, window_s=600)
    assert [spread.add(t) for t in (0, 400, 800)] == [False, False, False]  # never 3 within 10 min
    doomed = RestartWindow(count=3, window_s=600)  # quick failures that fatal will end within 2 more
    assert [doomed.add(t, quick_failures_left=n) for t, n in ((0, 2), (1, 1), (2, 0))] == [False, False, False]
    patient = RestartWindow(count=3, window_s=600)  # max_restart_attempts 50: fatal is far away
    assert [patient.add(t, quick_failures_left=n) for t, n in ((0, 49), (1, 48), (2, 47))] == [False, False, True]


def test_waiting_watch_alerts_after_the_threshold_and_once_back_to_trading():
    w = WaitingWatch(after_s=300)
    waiting = {"state": "waiting", "message": "exchange unreachable"}
    assert w.check({"state": "trading"}, 0) is None
    assert w.check(waiting, 10) is None and w.check(waiting, 200) is None
    kind, payload = w.check(waiting, 311)
    assert kind == "waiting" and payload["waited_s"] == 301 and payload["message"] == "exchange unreachable"
    assert w.check(waiting, 400) is None and w.check(None, 450) is None  # once; unreadable status is no news
    assert w.check({"state": "trading"}, 500) == ("trading", {"waited_s": 490})
    short = WaitingWatch(after_s=300)
    assert short.check(waiting, 0) is None and short.check({"state": "trading"}, 60) is None  # brief: silent


def test_the_supervisor_never_imports_a_notification_library():
    """The modules a real supervisor daemon loads (it runs as `python -S core/supervisor.py`, which
    imports core.supervision)."""
    code = ("import sys; sys.path[0] = sys.argv[1]; import core.supervision; "
            "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}, check=True)
    loaded = set(out.stdout.split())
    assert "core.events" in loaded and "core.supervision" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("apprise", "notify", "requests", "flask")}


def _exited(paths, reason: str) -> None:
    assert append_event(paths, events.EXITED, state="exited", stop_reason=reason)


def _reasons(got: list[dict]) -> list[str]:
    return [e["payload"]["stop_reason"] for e in got]


def test_rotate_if_over_moves_a_full_file_to_dot_1_replacing_the_last_and_leaves_a_small_one(tmp_path):
    paths = InstancePaths("b", tmp_path)
    assert events.rotate_if_over(paths.events, max_bytes=100) is False  # no file yet: nothing to do
    _exited(paths, "first")
    size = paths.events.stat().st_size
    assert events.rotate_if_over(paths.events, max_bytes=size) is False and paths.events.exists()
    _exited(paths, "second")
    assert events.rotate_if_over(paths.events, max_bytes=size) is True
    assert not paths.events.exists()
    assert _reasons(read_events(events.rotated_path(paths.events))[0]) == ["first", "second"]
    _exited(paths, "third")
    _exited(paths, "fourth")
    assert events.rotate_if_over(paths.events, max_bytes=size)
    assert _reasons(read_events(events.rotated_path(paths.events))[0]) == ["third", "fourth"]  # one predecessor kept
    assert events.MAX_BYTES == 1 << 20  # the default cap (no GRIDBOT_EVENTS_MAX_BYTES in the test env)


def test_read_rotating_reads_the_rest_of_the_rotated_file_then_the_new_one_and_a_late_write(tmp_path):
    paths = InstancePaths("b", tmp_path)
    _exited(paths, "one")
    got, cursor = events.read_rotating(paths.events, None)
    assert _reasons(got) == ["one"] and cursor["inode"] == paths.events.stat().st_ino
    _exited(paths, "two")  # appended after the reader's last look, before the rename
    racer = os.open(paths.events, os.O_WRONLY | os.O_APPEND)  # a bot that opened the path just before
    try:
        assert events.rotate_if_over(paths.events, max_bytes=1)
        for reason in ("three", "four-" + "x" * 400):  # the new file outgrows the old offset
            _exited(paths, reason)
        got, cursor = events.read_rotating(paths.events, cursor)
        assert _reasons(got) == ["two", "three", "four-" + "x" * 400]
        os.write(racer, events._line(events.new_event(events.EXITED, "b", {"stop_reason": "late"})))
    finally:
        os.close(racer)
    got, cursor = events.read_rotating(paths.events, cursor)
    assert _reasons(got) == ["late"]  # landed in .1 after the switch: still read
    assert events.read_rotating(paths.events, cursor) == ([], cursor)
    assert json.loads(json.dumps(cursor)) == cursor  # it is saved in the notifier's state.json


def test_an_offset_saved_without_an_inode_is_taken_as_the_current_files(tmp_path):
    """A notifier state written before rotation existed holds bare offsets (or cursors without inode)."""
    paths = InstancePaths("b", tmp_path)
    _exited(paths, "old")
    offset = paths.events.stat().st_size
    _exited(paths, "new")
    for saved in (offset, {"offset": offset}):
        got, cursor = events.read_rotating(paths.events, saved)
        assert _reasons(got) == ["new"] and cursor["offset"] == paths.events.stat().st_size
        assert cursor["inode"] == paths.events.stat().st_ino
    got, _ = events.read_rotating(paths.events, None)
    assert _reasons(got) == ["old", "new"]
    assert events.read_rotating(tmp_path / "missing.jsonl", 0) == ([], {"inode": None, "offset": 0})


def test_a_rotated_file_left_over_the_read_limit_is_finished_before_the_new_one(tmp_path):
    paths = InstancePaths("b", tmp_path)
    _, cursor = events.read_rotating(paths.events, None)
    _exited(paths, "a")
    _, cursor = events.read_rotating(paths.events, cursor)
    for reason in ("b", "c", "d"):
        _exited(paths, reason)
    events.rotate_if_over(paths.events, max_bytes=1)
    _exited(paths, "e")
    one_line = paths.events.stat().st_size
    seen: list[str] = []
    for _ in range(6):
        got, cursor = events.read_rotating(paths.events, cursor, limit_bytes=one_line + 10)
        seen += _reasons(got)
    assert seen == ["b", "c", "d", "e"]
