"""Alerts end to end: real supervised bots, the real notifier process, real deliveries on 127.0.0.1."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from core.events import append_event, EXITED
from core.paths import InstancePaths
from tests.conftest import DAEMON_MANAGER, REPO, free_port, home_env, run_cli, wait_for
from tests.core.util import registry, start, write_config
from tests.notify.receivers import JsonReceiver, SmtpReceiver

pytestmark = pytest.mark.slow

EXCHANGE_SECRET = "exch-secret-9f8e7d6c5b4a3210"


def fleet(home, *urls: str, events: list[str] | None = None) -> None:
    notify = {"urls": list(urls), **({"events": events} if events else {})}
    (home / "config" / "fleet.json").write_text(json.dumps({"notify": notify}))


def notifier(home, *extra: str, env: dict | None = None) -> subprocess.Popen:
    """The real notifier, in the foreground, fast turns; killed by the home fixture if a test fails."""
    return subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "notifier",
                             "--interval", "0.2", "--max-backoff", "1", *extra],
                            cwd=str(REPO), env=home_env(home, env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    return out, err


def everything_written(home) -> str:
    """Every log and state file of the home: where a secret must never appear."""
    return "".join(p.read_text(errors="replace") for p in home.glob("logs/**/*") if p.is_file())


@pytest.fixture
def receiver():
    r = JsonReceiver(free_port()).start()
    yield r
    r.stop()


def test_a_crash_loop_ending_fatal_gives_one_alert_naming_the_instance_on_json_and_mail(home, receiver):
    smtp = SmtpReceiver(free_port()).start()
    try:
        fleet(home, receiver.url, smtp.url)
        path = write_config(home, "sol_doomed", "--mode", "crash", "--after", "0.6", "--exit-code", "7",
                            max_restart_attempts=3, symbol="SOL_USDC_PERP")
        n = notifier(home)
        assert start(home, path).returncode == 0
        wait_for(lambda: registry(home)["sol_doomed"]["status"] == "fatal", 30, "fatal")
        wait_for(lambda: receiver.received and smtp.messages, 30, "the alert on both channels")
        time.sleep(1.5)  # several more notifier turns: nothing else may arrive
        assert len(receiver.received) == 1 and len(smtp.messages) == 1
        msg = receiver.received[0]
        assert msg["title"] == "FATAL sol_doomed SOL_USDC_PERP"
        assert "code 7" in msg["message"] and "crashing with code 7" in msg["message"]
        assert "daemon-manager start -c config/active/sol_doomed.json -d" in msg["message"]
        assert "FATAL sol_doomed SOL_USDC_PERP" in smtp.messages[0]
        stop(n)
    finally:
        smtp.stop()


def test_a_stop_loss_exit_is_sent_with_its_reason(home, receiver):
    fleet(home, receiver.url)
    path = write_config(home, "eth_sl", "--mode", "reason-exit", "--after", "0.8",
                        "--reason", "stop-loss: unrealized PnL -52.10 USDC below -50", symbol="ETH_USDC_PERP")
    n = notifier(home)
    assert start(home, path).returncode == 0
    wait_for(lambda: receiver.received, 30, "the stop-loss alert")
    msg = receiver.received[0]
    assert msg["title"] == "STOPPED eth_sl ETH_USDC_PERP"
    assert "stop-loss: unrealized PnL -52.10 USDC below -50" in msg["message"]
    stop(n)


def test_receiver_down_then_up_gets_the_alert_exactly_once_across_a_notifier_crash(home):
    port = free_port()
    receiver = JsonReceiver(port)  # not started: the receiver is down
    fleet(home, receiver.url)
    paths = InstancePaths.for_instance(home, "btc_1")
    append_event(paths, EXITED, state="exited", stop_reason="take-profit: +40 USDC")
    n = notifier(home)
    log = home / "logs" / ".notifier" / "notifier.log"
    wait_for(lambda: log.exists() and log.read_text().count("will retry") >= 2, 30, "failed attempts")
    n.send_signal(signal.SIGKILL)  # the notifier crashes while the alert is still pending
    n.wait(timeout=10)
    receiver.start()
    try:
        n = notifier(home)
        wait_for(lambda: receiver.received, 30, "the alert once the receiver is back")
        append_event(paths, EXITED, state="exited", stop_reason="second")  # proves later turns ran
        wait_for(lambda: len(receiver.received) == 2, 30, "the next alert")
        stop(n)
        n = notifier(home)  # a restart (as after a reboot) re-reads its saved offsets and sent ids
        time.sleep(1.5)
        stop(n)
        assert [m["message"].splitlines()[0].split(": ", 1)[1] for m in receiver.received] == \
            ["take-profit: +40 USDC", "second"]
    finally:
        receiver.stop()


def test_a_secret_in_the_config_and_in_the_url_is_in_no_message_and_no_log(home, receiver):
    fleet(home, receiver.url)
    path = write_config(home, "leaky_secret", "--mode", "secret,crash", "--after", "0.6",
                        max_restart_attempts=1, exchange_config={"api_key": "key-abcdef-123456",
                                                                  "secret_key": EXCHANGE_SECRET},
                        notify={"urls": [receiver.url.replace("/alerts/", "/own/")]})
    n = notifier(home)
    assert start(home, path).returncode == 0
    wait_for(lambda: len(receiver.received) == 2, 30, "the fatal alert at both URLs (fleet's and the instance's)")
    assert sorted(receiver.paths) == [f"/alerts/{receiver.token}", f"/own/{receiver.token}"]
    out, err = stop(n)
    test = run_cli(home, "notify-test")
    status = run_cli(home, "status", "-i", "leaky_secret")
    for text in ["\n".join(receiver.texts()), everything_written(home), out + err, test.stdout + test.stderr,
                 status.stdout + status.stderr]:
        assert EXCHANGE_SECRET not in text and receiver.token not in text and "key-abcdef-123456" not in text
    assert "stderr leaks ****3210" in everything_written(home)  # the bot really printed it, masked


def test_notify_test_reports_each_url_masked(home, receiver):
    dead = f"json://127.0.0.1:{free_port()}/alerts/dead-token-abcdef012345"
    (home / ".env").write_text(f"GRIDBOT_NOTIFY={dead}\n")
    fleet(home, receiver.url)
    out = run_cli(home, "notify-test")
    assert out.returncode == 1, out
    lines = out.stdout.splitlines()
    assert lines[0] == f"ok     json://****{receiver.token[-4:]}"
    assert lines[1].startswith("FAILED json://****2345: ") and "Connection error" in lines[1]
    assert lines[2] == "1 of 2 delivered"
    assert receiver.received[0]["title"] == "gridbot alerts: test"
    assert "dead-token" not in out.stdout + out.stderr and receiver.token not in out.stdout + out.stderr


def test_an_instance_can_replace_the_fleets_urls_and_choose_its_events(home, receiver):
    other = JsonReceiver(free_port()).start()
    try:
        fleet(home, receiver.url)
        path = write_config(home, "quiet", "--mode", "reason-exit", "--after", "0.8",
                            notify={"urls": [other.url], "mode": "replace", "events": ["fatal"]})
        loud = write_config(home, "loud", "--mode", "reason-exit", "--after", "0.8",
                            notify={"urls": [other.url], "mode": "replace"})
        n = notifier(home)
        assert start(home, path).returncode == 0 and start(home, loud).returncode == 0
        wait_for(lambda: registry(home)["quiet"]["status"] == "exited", 30, "quiet exited")
        wait_for(lambda: other.received, 30, "loud's alert")
        time.sleep(1.5)
        stop(n)
        assert [m["title"].split()[1] for m in other.received] == ["loud"]  # quiet wants fatal only
        assert receiver.received == []  # both replaced the fleet's URL
    finally:
        other.stop()


def test_the_notifier_is_one_per_home_and_bad_fleet_settings_are_reported(home):
    (home / "config" / "fleet.json").write_text('{"notify": {"urls": "json://not-a-list"}}')
    n = notifier(home)
    log = home / "logs" / ".notifier" / "notifier.log"
    wait_for(lambda: log.exists() and "notify must be an object with a list `urls`" in log.read_text(), 30, "an error")
    again = run_cli(home, "notifier")
    assert again.returncode == 0 and f"already running (pid {n.pid})" in again.stdout
    test = run_cli(home, "notify-test")
    assert test.returncode == 2 and "fleet.json" in test.stderr and "Traceback" not in test.stderr
    stop(n)
    assert n.returncode == 0


def test_an_events_file_rewritten_shorter_is_reread_but_what_was_sent_is_not_sent_again(home, receiver):
    fleet(home, receiver.url)
    paths = InstancePaths.for_instance(home, "trimmed")
    for reason in ("first", "second", "third"):
        append_event(paths, EXITED, state="exited", stop_reason=reason)
    n = notifier(home)
    wait_for(lambda: len(receiver.received) == 3, 30, "three alerts")
    kept = paths.events.read_text().splitlines()[-1:]  # trimmed to its last line by some tool
    paths.events.write_text("\n".join(kept) + "\n")
    append_event(paths, EXITED, state="exited", stop_reason="fourth")
    wait_for(lambda: len(receiver.received) == 4, 30, "the new alert")
    time.sleep(1.5)
    stop(n)
    assert [m["message"].splitlines()[0].split(": ", 1)[1] for m in receiver.received] == \
        ["first", "second", "third", "fourth"]


def test_start_brings_up_the_notifier_when_urls_are_configured_and_only_one(home, receiver):
    plain = write_config(home, "no_alerts", "--mode", "run")
    assert "notifier" not in start(home, plain).stdout  # nothing configured: no notifier
    assert not (home / "logs" / ".notifier" / "notifier.pid").exists()
    (home / ".env").write_text(f"GRIDBOT_NOTIFY={receiver.url}\n")
    path = write_config(home, "sl_auto", "--mode", "reason-exit", "--after", "1.5", "--reason", "take-profit: +12 USDC")
    out = start(home, path)
    assert out.returncode == 0 and "notifier running (pid" in out.stdout, out
    wait_for(lambda: receiver.received, 30, "the alert through the notifier `start` launched")
    assert "take-profit: +12 USDC" in receiver.received[0]["message"]
    again = start(home, write_config(home, "second", "--mode", "run"))
    assert again.returncode == 0 and "notifier" not in again.stdout  # already running: left alone
    assert run_cli(home, "stop-all").returncode == 0


def test_the_daily_summary_goes_once_a_day_per_instance_and_for_the_fleet(home, receiver):
    from core.bot_status import write_bot_status

    (home / "config" / "fleet.json").write_text(json.dumps({"notify": {"urls": [receiver.url], "daily_summary_hour": 0}}))
    for iid, pnl, fills in (("sol_a", 12.5, 40), ("eth_b", -2.0, 7)):
        write_bot_status(InstancePaths.for_instance(home, iid).bot_status,
                         {"instance_id": iid, "state": "trading", "quote": "USDC", "realized_pnl": pnl, "grid_profit": 3.0,
                          "fill_count": fills, "position": 0.001, "equity": 1000.0})
    n = notifier(home)
    wait_for(lambda: len(receiver.received) == 3, 30, "two instance summaries and the fleet's")
    stop(n)
    n = notifier(home)  # restarted the same day: no second summary
    time.sleep(1.5)
    stop(n)
    titles = sorted(m["title"] for m in receiver.received)
    assert titles == ["DAILY eth_b", "DAILY fleet: 2 instances", "DAILY sol_a"]
    sol = next(m["message"] for m in receiver.received if m["title"] == "DAILY sol_a")
    assert "PnL 12.50 USDC" in sol and "Fills 40" in sol and "position 0.001" in sol
    fleet_msg = next(m["message"] for m in receiver.received if m["title"].startswith("DAILY fleet"))
    assert "PnL 10.50" in fleet_msg and "Fills 47" in fleet_msg


def test_without_a_summary_hour_no_summary_is_sent(home, receiver):
    from core.bot_status import write_bot_status

    fleet(home, receiver.url)
    write_bot_status(InstancePaths.for_instance(home, "sol_a").bot_status, {"state": "trading", "realized_pnl": 1.0})
    append_event(InstancePaths.for_instance(home, "sol_a"), EXITED, state="exited", stop_reason="marker")
    n = notifier(home)
    wait_for(lambda: receiver.received, 30, "the marker alert")
    time.sleep(1)
    stop(n)
    assert [m["title"] for m in receiver.received] == ["STOPPED sol_a"]


def test_an_instance_whose_keys_the_notifier_lacks_still_alerts_with_its_own_url_from_env(home, receiver):
    """The notifier may run without an instance's exchange keys (another shell, systemd): the
    config is read for its alerts, not validated, and ${VAR} in a URL comes from .env."""
    (home / ".env").write_text(f"MY_ALERT_URL={receiver.url}\n")
    path = write_config(home, "nokeys", "--mode", "run", symbol="BTC_USDC_PERP",
                        exchange_config={"api_key": "${NOT_IN_THE_NOTIFIERS_ENV}"},
                        notify={"urls": ["${MY_ALERT_URL}"]})
    (home / "logs" / "nokeys").mkdir(parents=True)
    append_event(InstancePaths.for_instance(home, "nokeys"), EXITED, state="exited", stop_reason="take-profit")
    assert path.exists()
    n = notifier(home)
    wait_for(lambda: receiver.received, 30, "the alert")
    stop(n)
    assert receiver.received[0]["title"] == "STOPPED nokeys BTC_USDC_PERP"


def test_validate_names_a_bad_notify_setting(home):
    path = write_config(home, "badnotify", "--mode", "run", notify={"events": ["fatal", "everything"]})
    out = run_cli(home, "validate", "-c", str(path))
    assert out.returncode == 2 and "daemon_config.notify.events" in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_notify_test_without_any_url_says_where_to_set_one(home):
    out = run_cli(home, "notify-test", env={"GRIDBOT_NOTIFY": ""})
    assert out.returncode == 2 and "GRIDBOT_NOTIFY" in out.stderr and "config/fleet.json" in out.stderr
