"""Environments by allow-list: credentials planted in the shell that runs the CLI reach neither
the supervisor nor the bot (read from their /proc/PID/environ), unless the config lists them; nor
the long-lived processes the CLI leaves behind: a foreground `start` (itself the supervisor), the
notifier and a detached dashboard.

Before, the supervisor kept all 8 planted credentials and the bot 6 of them (a deny-list by name).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from core.pidfile import is_locked, read_pid
from tests.conftest import DAEMON_MANAGER, REPO, free_port, home_env, run_cli, wait_for
from tests.core.util import registry, start, write_config

PLANTED = {"AWS_SECRET_ACCESS_KEY": "aws-secret-1111111111", "GITHUB_TOKEN": "ghp_2222222222222222",
           "PGPASSWORD": "pg-pass-3333333333", "OTHER_BOT_API_KEY": "other-key-4444444444",
           "STRIPE_SK": "sk_live_5555555555", "DATABASE_URL": "postgres://u:p6666666666@db/x",
           "SLACK_WEBHOOK": "https://hooks.example/7777777777", "VAULT_ADDR_CRED": "cred-8888888888"}
ALLOWED = {"HTTPS_PROXY": "http://127.0.0.1:3128"}


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


def test_planted_credentials_reach_neither_supervisor_nor_bot(home):
    dump = home / "env.json"
    path = write_config(home, "allow_01", "--dump-env", str(dump), inherit_environment=list(ALLOWED),
                        environment={"GRID_FLAVOUR": "vanilla"})
    assert start(home, path, env={**PLANTED, **ALLOWED, "LC_TIME": "C"}).returncode == 0
    wait_for(lambda: dump.exists(), 15, "the bot's environment dump")
    rec = registry(home)["allow_01"]
    supervisor, bot = environ_of(rec["pid"]), environ_of(rec["bot_pid"])
    for env in (supervisor, bot):
        leaked = [k for k, v in env.items() if k in PLANTED or v in PLANTED.values()]
        assert leaked == [], leaked
        assert env["PATH"] == os.environ["PATH"] and env["LC_TIME"] == "C" and env["GRIDBOT_HOME"] == str(home)
    assert bot["HTTPS_PROXY"] == ALLOWED["HTTPS_PROXY"] and "HTTPS_PROXY" not in supervisor
    assert bot["GRID_FLAVOUR"] == "vanilla" and bot["INSTANCE_ID"] == "allow_01" and bot["PYTHONUNBUFFERED"] == "1"
    # the per-user state dir (account locks, a key's request budget) is where the CLI's is
    assert supervisor["GRIDBOT_STATE_DIR"] == bot["GRIDBOT_STATE_DIR"] == os.environ["GRIDBOT_STATE_DIR"]
    assert set(supervisor) <= ({"PATH", "HOME", "LANG", "TZ", "GRIDBOT_HOME", "GRIDBOT_STATE_DIR", "XDG_STATE_HOME"}
                               | {k for k in supervisor if k.startswith("LC_")})
    assert json.loads(dump.read_text()) == bot
    assert run_cli(home, "stop", "-i", "allow_01").returncode == 0


def test_a_placeholder_in_bot_args_is_refused(home):
    path = write_config(home, "argv_01", "--api-key", "${SOME_KEY}")
    for command in ("validate", "start"):
        out = run_cli(home, command, "-c", str(path), env={"SOME_KEY": "k-1234567890123"})
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        said = out.stdout + out.stderr
        assert "daemon_config.bot_args[1]" in said and "${SOME_KEY}" in said and "ps" in said
        assert "k-1234567890123" not in said
    assert registry(home) == {}


def test_a_dotenv_readable_by_others_is_warned_about(home):
    path = write_config(home, "dotenv_01")
    env_file = home / ".env"
    env_file.write_text("UNUSED_SECRET=abcdefabcdef\n")
    env_file.chmod(0o644)
    for command in (["validate"], ["start", "-c", str(path), "-d"]):
        out = run_cli(home, *command)
        assert out.returncode == 0, out.stderr
        assert f"{env_file} is mode -rw-r--r--" in out.stderr and "chmod 600" in out.stderr
    env_file.chmod(0o600)
    quiet = run_cli(home, "validate")
    assert quiet.returncode == 0 and ".env" not in quiet.stderr
    assert run_cli(home, "stop", "-i", "dotenv_01").returncode == 0


def _clean(env: dict[str, str], home) -> None:
    leaked = [k for k, v in env.items() if k in PLANTED or v in PLANTED.values()]
    assert leaked == [], leaked
    assert env["GRIDBOT_HOME"] == str(home) and env["PATH"] == os.environ["PATH"]


def test_a_foreground_start_becomes_a_supervisor_without_the_shells_credentials(home):
    """The CLI process itself supervises (same pid), exec'd with the allow-list only."""
    path = write_config(home, "fg_env")
    cli = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "start", "-c", str(path)],
                           cwd=str(REPO), env=home_env(home, PLANTED), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stdout.readline().startswith("ready pid="), cli.stderr.read() if cli.poll() is not None else ""
        rec = registry(home)["fg_env"]
        assert rec["pid"] == cli.pid
        supervisor = environ_of(cli.pid)
        _clean(supervisor, home)
        assert set(supervisor) <= ({"PATH", "HOME", "LANG", "TZ", "GRIDBOT_HOME", "GRIDBOT_STATE_DIR", "XDG_STATE_HOME"}
                                   | {k for k in supervisor if k.startswith("LC_")})
        _clean(environ_of(rec["bot_pid"]), home)
        cli.send_signal(signal.SIGTERM)
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0 and "fg_env: stopped" in out, (out, err)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_the_notifier_started_by_start_keeps_only_the_allow_list_and_its_urls(home):
    path = write_config(home, "notif_env")
    urls = "json://127.0.0.1:9/alerts"
    assert start(home, path, env={**PLANTED, "GRIDBOT_NOTIFY": urls}).returncode == 0
    pid_file = home / "logs" / ".notifier" / "notifier.pid"
    wait_for(lambda: is_locked(pid_file), 15, "the notifier")
    pid = read_pid(pid_file)
    try:
        notifier = environ_of(pid)
        _clean(notifier, home)
        assert notifier["GRIDBOT_NOTIFY"] == urls
    finally:
        os.kill(pid, signal.SIGTERM)
    assert run_cli(home, "stop", "-i", "notif_env").returncode == 0


def test_a_detached_dashboard_keeps_only_the_allow_list(home):
    port = free_port()
    done = run_cli(home, "dashboard", "-d", "--port", str(port), env=PLANTED)
    assert done.returncode == 0 and done.stdout.startswith(f"dashboard: http://127.0.0.1:{port}/"), done.stderr
    pid = read_pid(home / "logs" / "dashboard" / "dashboard.pid")
    try:
        _clean(environ_of(pid), home)
    finally:
        os.kill(pid, signal.SIGTERM)
