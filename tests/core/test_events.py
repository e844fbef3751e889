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
