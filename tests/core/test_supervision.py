"""The supervisor with real processes: restarts, fatal, exited, hang, leak, stop, daemon death, env, logs."""
from __future__ import annotations

import json
import os
import signal

import psutil
import pytest

from core import proc
from core.paths import InstancePaths
from tests.conftest import run_cli
from tests.core.util import daemon_log, list_json, read_int, registry, start, write_config
from tests.conftest import wait_for
pytestmark = pytest.mark.slow


def paths(home, iid):
    return InstancePaths.for_instance(home, iid)


def test_start_list_status_stop(home):
    path = write_config(home, "basic", "--mode", "bind")
    out = start(home, path)
    assert out.returncode == 0 and out.stdout.startswith("basic started: ready pid="), out
    rec = list_json(home)["basic"]
    assert rec["status"] == "running" and rec["pid"] and rec["bot_pid"]
    assert rec["web_port"] == json.loads(path.read_text())["daemon_config"]["web_port"]
    assert read_int(paths(home, "basic").daemon_pid) == rec["pid"]
    assert read_int(paths(home, "basic").bot_pid) == rec["bot_pid"]
    st = run_cli(home, "status", "-c", str(path))
    assert st.returncode == 0
    body = json.loads(st.stdout)
    assert body["running"] and body["state"] == "running" and body["bot"]["pid"] == rec["bot_pid"]
    assert body["process_info"]["memory_info"]["rss_mb"] > 0 and body["heartbeat_age_s"] is not None
    full = registry(home)["basic"]
    stop = run_cli(home, "stop", "-i", "basic")
    assert stop.returncode == 0 and "basic stopped" in stop.stdout
    assert not proc.is_alive(full["pid"], full["pid_create_time"])  # gone (or a zombie awaiting init)
    assert not proc.is_alive(full["bot_pid"], full["bot_create_time"])
    assert registry(home)["basic"]["status"] == "stopped"
    assert run_cli(home, "status", "-i", "basic").returncode == 3
    assert run_cli(home, "stop", "-i", "basic").returncode == 3
    assert run_cli(home, "status", "-i", "never_seen").returncode == 4
    assert run_cli(home, "stop", "-i", "never_seen").returncode == 4


def test_crash_restarts_and_count_shows_in_list(home):
    path = write_config(home, "crashy", "--mode", "crash", "--after", "0.3", "--crash-times", "1")
    out = start(home, path)
    assert out.returncode == 0
    first_bot = int(out.stdout.split("bot=")[1].split()[0])  # the one start saw ready (it may be gone by now)
    rec = wait_for(lambda: (r := list_json(home).get("crashy")) and r["restart_count"] == 1
                   and r["status"] == "running" and r["bot_pid"] and r, timeout=15, what="a restarted bot")
    assert rec["bot_pid"] != first_bot
    table = run_cli(home, "list").stdout
    row = next(line for line in table.splitlines() if line.startswith("crashy"))
    assert row.split()[1] == "running" and row.split()[5] == "1"
    assert "crashing with code 1" in "".join(p.read_text() for p in home.glob("logs/crashy/*/bot_stderr.log"))
    assert run_cli(home, "stop", "-i", "crashy").returncode == 0


def test_quick_crashes_become_fatal_with_exit_code(home):
    path = write_config(home, "doomed", "--mode", "crash", "--after", "0.6", "--exit-code", "7",
                        max_restart_attempts=2)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home).get("doomed", {}).get("status") == "fatal", timeout=15, what="fatal")
    rec = list_json(home)["doomed"]  # fatal shows without --all: it needs attention
    assert rec["status"] == "fatal" and rec["exit_code"] == 7 and rec["restart_count"] == 2
    assert "code 7" in rec["last_error"] and "max_restart_attempts 2" in rec["last_error"]
    st = run_cli(home, "status", "-i", "doomed")
    assert st.returncode == 3 and json.loads(st.stdout)["exit_code"] == 7
    full = registry(home)["doomed"]
    wait_for(lambda: not proc.is_alive(full["pid"], full["pid_create_time"]), timeout=15, what="daemon exit")


def test_exit_code_2_before_ready_is_fatal_at_once_and_start_exits_2(home):
    path = write_config(home, "misconfigured", "--mode", "exit2", startsecs=2)
    out = start(home, path)
    assert out.returncode == 2  # a config error, as if validation had caught it
    assert "failed" in out.stderr and "code 2" in out.stderr and "grid_num: 1 must be >= 2" in out.stderr
    rec = registry(home)["misconfigured"]
    assert rec["status"] == "fatal" and rec["exit_code"] == 2 and rec["restart_count"] == 0


@pytest.mark.parametrize("code,why", [(2, "invalid config"), (3, "authentication")])
def test_exit_code_2_or_3_after_ready_is_fatal_not_restarted(home, code, why):
    """Exit 2 is a config error, 3 an authentication failure (a revoked key): neither fixes itself,
    and restarting on 3 would only hammer the venue."""
    iid = f"fatal_code_{code}"
    path = write_config(home, iid, "--mode", "crash", "--after", "0.6", "--exit-code", str(code),
                        max_restart_attempts=5)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)[iid]["status"] == "fatal", timeout=15, what="fatal")
    rec = registry(home)[iid]
    assert rec["exit_code"] == code and rec["restart_count"] == 0 and why in rec["last_error"]
    assert "restarting in" not in daemon_log(home, iid)


def test_exit_0_is_exited_not_restarted(home):
    path = write_config(home, "finisher", "--mode", "exit0", "--after", "0.8")
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["finisher"]["status"] == "exited", timeout=15, what="exited")
    rec = list_json(home, "--all")["finisher"]
    assert rec["status"] == "exited" and rec["exit_code"] == 0 and rec["restart_count"] == 0
    assert "finisher" not in list_json(home)  # not live, needs no attention


@pytest.mark.parametrize("iid,misbehaviour,settings,logged", [
    ("hangs", ["--mode", "hang", "--after", "0.5"], {}, "hung: no heartbeat"),
    ("leaky", ["--mode", "leak", "--leak-mb", "100"], {"memory_limit_mb": 60}, "over memory_limit_mb 60"),
])
def test_unhealthy_bot_is_restarted(home, iid, misbehaviour, settings, logged):
    path = write_config(home, iid, *misbehaviour, "--crash-times", "1", **settings)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)[iid].get("restart_count") == 1, 15, f"restart of {iid}")
    assert logged in daemon_log(home, iid)
    assert run_cli(home, "stop", "-i", iid).returncode == 0


def test_stop_kills_a_sigterm_ignoring_bot_and_its_grandchild(home):
    path = write_config(home, "stubborn", "--mode", "ignore-term,grandchild", stop_timeout=0.5)
    assert start(home, path).returncode == 0
    grandchild_file = paths(home, "stubborn").log_dir / "grandchild.pid"
    wait_for(grandchild_file.exists, 15, "grandchild pid file")
    grandchild = psutil.Process(read_int(grandchild_file))
    bot = psutil.Process(registry(home)["stubborn"]["bot_pid"])
    assert run_cli(home, "stop", "-i", "stubborn").returncode == 0
    gone, alive = psutil.wait_procs([grandchild, bot], timeout=5)
    assert alive == []
    assert "SIGKILL to its process group" in daemon_log(home, "stubborn")


def test_daemon_sigkill_takes_the_bot_down_and_start_works_again(home):
    path = write_config(home, "orphan")
    assert start(home, path).returncode == 0
    rec = registry(home)["orphan"]
    bot = psutil.Process(rec["bot_pid"])
    os.kill(rec["pid"], signal.SIGKILL)
    gone, alive = psutil.wait_procs([bot], timeout=5)
    assert alive == []
    assert list_json(home)["orphan"]["status"] == "dead"  # needs attention: registry said running
    again = start(home, path)
    assert again.returncode == 0, again.stderr
    assert run_cli(home, "stop", "-i", "orphan").returncode == 0


def test_bot_environment_has_own_keys_only(home, monkeypatch):
    monkeypatch.delenv("EXCHANGE_API_KEY", raising=False)
    (home / ".env").write_text("MINE_KEY=mine-key-1234567890\nMINE_SECRET=mine-secret-0987654321\n"
                               "OTHER_BOT_SECRET=other-secret-555555555\n")
    dump = home / "env.json"
    path = write_config(home, "envy", "--dump-env", str(dump), exchange="backpack",
                        exchange_config={"api_key": "${MINE_KEY}", "secret_key": "${MINE_SECRET}"},
                        environment={"GRID_FLAVOUR": "vanilla"})
    assert start(home, path, env={"EXCHANGE_SECRET_KEY": "leaked-from-shell-0000"}).returncode == 0
    env = json.loads(wait_for(lambda: dump.exists() and dump.read_text(), timeout=15, what="env dump"))
    rec = registry(home)["envy"]
    assert env["INSTANCE_ID"] == "envy" and env["DB_PATH"] == str(home / "database" / "envy.db")
    assert env["WEB_PORT"] == str(rec["web_port"]) and env["LOG_DIR"] == str(home / "logs" / "envy")
    assert env["GRIDBOT_HOME"] == str(home) and env["GRID_FLAVOUR"] == "vanilla"
    assert env["EXCHANGE_API_KEY"] == "mine-key-1234567890" and env["EXCHANGE_SECRET_KEY"] == "mine-secret-0987654321"
    assert "OTHER_BOT_SECRET" not in env
    assert run_cli(home, "stop", "-i", "envy").returncode == 0


def test_only_this_configs_secrets_reach_the_bot(home):
    dump = home / "env.json"
    shell = {"ALPHA_API_KEY": "alpha-key-111111111", "BRAVO_API_KEY": "bravo-key-222222222",
             "SOME_SERVICE_TOKEN": "tok-333333333", "DB_PASSWORD": "pw-444444444", "my_passphrase": "pp-55555555",
             "LISTED_SECRET": "from-shell-666666", "HTTPS_PROXY": "http://127.0.0.1:3128", "LC_ALL": "C.UTF-8",
             "PYTHONDONTWRITEBYTECODE": "1"}
    path = write_config(home, "clean_env", "--dump-env", str(dump), exchange="backpack",
                        exchange_config={"api_key": "${ALPHA_API_KEY}"},
                        environment={"LISTED_SECRET": "from-config-777777"},
                        inherit_environment=["HTTPS_PROXY", "PYTHONDONTWRITEBYTECODE"])  # by allow-list only
    assert start(home, path, env=shell).returncode == 0
    env = json.loads(wait_for(lambda: dump.exists() and dump.read_text(), 15, "env dump"))
    assert env["ALPHA_API_KEY"] == "alpha-key-111111111" and env["EXCHANGE_API_KEY"] == "alpha-key-111111111"
    for name in ("BRAVO_API_KEY", "SOME_SERVICE_TOKEN", "DB_PASSWORD", "my_passphrase", "EXCHANGE_SECRET_KEY"):
        assert name not in env, name
    assert env["LISTED_SECRET"] == "from-config-777777"
    assert env["HTTPS_PROXY"] == "http://127.0.0.1:3128" and env["LC_ALL"] == "C.UTF-8"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["PATH"] == os.environ["PATH"]
    assert run_cli(home, "stop", "-i", "clean_env").returncode == 0


def test_secret_never_in_outputs_or_logs(home, monkeypatch):
    secret = "s3cr3t-VALUE-abcdef123456"
    (home / ".env").write_text(f"LEAKY_SECRET={secret}\n")
    path = write_config(home, "leaker", "--mode", "secret", exchange="backpack",
                        exchange_config={"api_key": "pub-key-12345678", "secret_key": "${LEAKY_SECRET}"})
    outputs = [start(home, path)]
    wait_for(lambda: any("leaks" in p.read_text() for p in home.glob("logs/leaker/*/bot_stderr.log")),
             15, "the bot's leak attempt")
    for args in (["list"], ["list", "--json"], ["status", "-i", "leaker"], ["info", "leaker"],
                 ["stats"], ["validate", "-v"], ["validate", "-i", "leaker", "-v"]):
        outputs.append(run_cli(home, *args))
    outputs.append(run_cli(home, "stop", "-i", "leaker"))
    for out in outputs:
        assert secret not in out.stdout + out.stderr
    assert "****3456" in "".join(p.read_text() for p in home.glob("logs/leaker/*/bot_stdout.log"))
    (home / ".env").unlink()  # the one place the trader put it on purpose
    for f in home.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_a_secret_straddling_the_64k_cut_is_still_masked(home):
    """Issue 10 item 9: the cut of an unterminated line never splits a secret into two clear halves,
    in the logs or in the stderr tail that becomes last_error."""
    secret = "s3cr3t-VALUE-abcdef123456"
    (home / ".env").write_text(f"LEAKY_SECRET={secret}\n")
    path = write_config(home, "straddler", "--mode", "straddle", exchange="backpack", max_restart_attempts=0,
                        exchange_config={"api_key": "pub-key-12345678", "secret_key": "${LEAKY_SECRET}"})
    start(home, path)
    rec = wait_for(lambda: (r := registry(home).get("straddler")) and r["status"] == "fatal" and r,
                   what="the straddling bot to end fatal")
    logs = "".join(p.read_text() for p in home.glob("logs/straddler/*/bot_*.log"))
    assert "x" * 1000 in logs and "and more" in logs  # the probe worked: the long line was logged
    halves = (secret[:len(secret) // 2], secret[len(secret) // 2:])
    for text in (logs, rec["last_error"] or ""):
        assert not any(half in text for half in halves), text[-300:]
    assert "****3456" in logs


def test_dated_log_layout(home):
    path = write_config(home, "logged")
    assert start(home, path).returncode == 0
    assert run_cli(home, "stop", "-i", "logged").returncode == 0
    day = paths(home, "logged").dated_dir()
    assert {p.name for p in day.iterdir()} >= {"daemon.log", "bot_stdout.log", "bot_stderr.log"}
    assert "fake bot" in (day / "bot_stdout.log").read_text()
    assert "state stopped" in (day / "daemon.log").read_text()


def test_output_without_newlines_is_logged_in_pieces_not_buffered_forever(home):
    """A progress bar writes \r and never \n: the supervisor must not hold it all in memory."""
    path = write_config(home, "progress", "--mode", "progress", "--interval", "0.01")
    assert start(home, path).returncode == 0
    out = paths(home, "progress").dated_dir() / "bot_stdout.log"
    wait_for(lambda: out.exists() and "#" * 1000 in out.read_text(errors="replace"), timeout=20,
             what="progress output in bot_stdout.log")
    assert run_cli(home, "stop", "-i", "progress").returncode == 0


def test_cpu_over_limit_for_three_checks_is_reported(home):
    path = write_config(home, "busy", "--mode", "spin", cpu_limit_percent=20, health_check_interval=0.2)
    assert start(home, path).returncode == 0
    wait_for(lambda: registry(home)["busy"].get("cpu_warning"), 15, "cpu_warning")
    st = json.loads(run_cli(home, "status", "-i", "busy").stdout)
    assert st["cpu_warning"] is True and st["cpu_percent"] > 20
    assert "over cpu_limit_percent 20 for 3 checks" in daemon_log(home, "busy")
    assert "busy" in run_cli(home, "list").stdout and "running!" in run_cli(home, "list").stdout
    assert run_cli(home, "stop", "-i", "busy").returncode == 0


def test_stop_of_a_hung_daemon_kills_it_and_its_bot(home):
    path = write_config(home, "frozen", stop_timeout=0.5)
    assert start(home, path).returncode == 0
    rec = registry(home)["frozen"]
    os.kill(rec["pid"], signal.SIGSTOP)  # the daemon can no longer act on SIGTERM
    out = run_cli(home, "stop", "-i", "frozen")
    assert out.returncode == 0 and "supervisor was hung" in out.stdout
    assert not proc.is_alive(rec["pid"], rec["pid_create_time"])
    assert not proc.is_alive(rec["bot_pid"], rec["bot_create_time"])
    assert registry(home)["frozen"]["status"] == "stopped"
