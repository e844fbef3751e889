"""The events a real supervisor appends to logs/{id}/events.jsonl while it runs tests/fake_bot.py."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.events import FILL, MAX_BYTES_ENV, MAX_LINE, append_event, read_events, rotated_path
from core.paths import InstancePaths
from tests.conftest import run_cli, wait_for
from tests.core.util import registry, start, write_config

pytestmark = pytest.mark.slow


def kinds(home, iid) -> list[dict]:
    return read_events(InstancePaths.for_instance(home, iid).events)[0]


def test_a_crash_loop_ending_fatal_appends_one_fatal_event_with_reason_and_stderr_tail(home):
    path = write_config(home, "doomed", "--mode", "crash", "--after", "0.6", "--exit-code", "7",
                        max_restart_attempts=3)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["doomed"]["status"] == "fatal", 20, "fatal")
    wait_for(lambda: kinds(home, "doomed"), 10, "the event the supervisor appends after its record")
    evs = kinds(home, "doomed")
    assert [e["kind"] for e in evs] == ["fatal"]  # the restart loop is left to this one alert
    (ev,) = evs
    assert ev["instance"] == "doomed" and "max_restart_attempts 3" in ev["payload"]["reason"]
    assert "fake bot crashing with code 7" in ev["payload"]["stderr_tail"][-1]


def test_a_restart_loop_far_from_fatal_appends_one_restart_loop_event(home):
    path = write_config(home, "loopy", "--mode", "crash", "--after", "0.6", "--crash-times", "3",
                        max_restart_attempts=20)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["loopy"]["restart_count"] == 3 and registry(home)["loopy"]["status"] == "running",
             20, "three restarts")
    wait_for(lambda: kinds(home, "loopy"), 10, "the event the supervisor appends after its record")
    evs = kinds(home, "loopy")
    assert [e["kind"] for e in evs] == ["restart_loop"]
    assert evs[0]["payload"]["restarts"] == 3 and "code 1" in evs[0]["payload"]["last"]
    assert run_cli(home, "stop", "-i", "loopy").returncode == 0
    assert [e["kind"] for e in kinds(home, "loopy")] == ["restart_loop"]  # a plain stop is no news


def test_a_stop_loss_exit_appends_exited_with_the_bots_reason(home):
    path = write_config(home, "stopped_out", "--mode", "reason-exit", "--after", "0.8",
                        "--reason", "stop-loss: unrealized PnL -52.10 USDC below -50")
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["stopped_out"]["status"] == "exited", 20, "exited")
    wait_for(lambda: kinds(home, "stopped_out"), 10, "the event the supervisor appends after its record")
    (ev,) = kinds(home, "stopped_out")
    assert ev["kind"] == "exited" and ev["payload"] == {"state": "exited",
                                                        "stop_reason": "stop-loss: unrealized PnL -52.10 USDC below -50"}


def test_orders_left_resting_at_a_requested_stop_is_news_too(home):
    path = write_config(home, "resting", "--mode", "reason-on-term")
    assert start(home, path).returncode == 0
    assert run_cli(home, "stop", "-i", "resting").returncode == 0
    (ev,) = kinds(home, "resting")
    assert ev["kind"] == "exited" and ev["payload"]["state"] == "stopped"
    assert "3 orders may remain" in ev["payload"]["stop_reason"]


@pytest.mark.parametrize("iid,misbehaviour,settings,kind,said", [
    ("hangs", ["--mode", "hang", "--after", "0.5"], {}, "hang_restart", "hung: no heartbeat"),
    ("leaky", ["--mode", "leak", "--leak-mb", "100"], {"memory_limit_mb": 60}, "memory_restart", "over memory_limit_mb 60"),
])
def test_health_restarts_append_their_kind(home, iid, misbehaviour, settings, kind, said):
    path = write_config(home, iid, *misbehaviour, "--crash-times", "1", **settings)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)[iid].get("restart_count") == 1, 20, f"restart of {iid}")
    wait_for(lambda: kinds(home, iid), 10, "the event the supervisor appends after its record")
    (ev,) = kinds(home, iid)
    assert ev["kind"] == kind and said in ev["payload"]["reason"]
    assert run_cli(home, "stop", "-i", iid).returncode == 0


def test_waiting_longer_than_the_threshold_then_trading_appends_both(home):
    path = write_config(home, "offline", "--mode", "waiting", "--after", "0.3", "--waiting-for", "2.5",
                        notify={"waiting_after_s": 1})
    assert start(home, path).returncode == 0
    wait_for(lambda: [e["kind"] for e in kinds(home, "offline")] == ["waiting", "trading"], 20, "waiting then trading")
    waiting, back = kinds(home, "offline")
    assert waiting["payload"]["waited_s"] >= 1 and "unreachable" in waiting["payload"]["message"]
    assert back["payload"]["waited_s"] >= waiting["payload"]["waited_s"]
    assert run_cli(home, "stop", "-i", "offline").returncode == 0


def test_the_supervisor_rotates_its_events_file_past_the_cap_so_it_stays_bounded(home):
    """The bot appends a FILL per fill, forever: the supervisor (the file's one rotator) moves it to
    events.jsonl.1 at a health check once it passes GRIDBOT_EVENTS_MAX_BYTES (here 2000)."""
    cap, paths = 2000, InstancePaths.for_instance(home, "chatty")
    rotated = Path(rotated_path(paths.events))

    def fills(n: int, tag: str) -> list[str]:
        for i in range(n):  # as bot/loop.py on_fill does, from another process than the supervisor
            append_event(paths, FILL, side="buy", price=150.0, qty=0.1, tag=f"{tag}{i}")
        return [f"{tag}{i}" for i in range(n)]

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except FileNotFoundError:  # just rotated, no event since
            return 0

    def tags(path: Path) -> list[str]:
        return [e["payload"]["tag"] for e in read_events(path)[0]]

    before = fills(20, "before")  # ~2.8 KB already there when the supervisor starts
    assert size(paths.events) > cap
    path = write_config(home, "chatty", "--interval", "0.2")
    assert start(home, path, env={MAX_BYTES_ENV: str(cap)}).returncode == 0
    wait_for(lambda: rotated.exists(), 20, "the first rotation")
    assert tags(rotated) == before
    for round_ in range(3):  # each batch alone passes the cap: at least one more rotation each
        last = rotated.stat().st_ino
        fills(20, f"r{round_}-")
        wait_for(lambda: rotated.stat().st_ino != last and size(paths.events) <= cap, 20, f"rotation {round_ + 1}")
        assert size(paths.events) + size(rotated) < 2 * (cap + MAX_LINE)
    assert run_cli(home, "stop", "-i", "chatty").returncode == 0
