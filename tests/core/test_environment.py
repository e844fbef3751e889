"""Environments by allow-list: credentials planted in the shell that runs the CLI reach neither
the supervisor nor the bot (read from their /proc/PID/environ), unless the config lists them.

Before, the supervisor kept all 8 planted credentials and the bot 6 of them (a deny-list by name).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from tests.conftest import run_cli, wait_for
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
