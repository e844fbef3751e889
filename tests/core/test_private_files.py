"""Nothing another local user can read, block or steer: files the product creates are private
(0600/0700), a web.token that is a symlink or open to others is refused, and nothing in logs/{id}
is written through a planted symlink.

Before, lock files were 0644 (any user could take the registry lock), database, logs and registry
world-readable, a symlinked pid file overwrote a file outside the home, and a symlinked
web.token made a value its planter knew the token.
"""
from __future__ import annotations

import os
import stat
import time

import pytest
import requests

from core.web_token import UnsafeToken, ensure_token, read_token
from tests.conftest import run_cli, wait_for
from tests.core.test_preflight import paper_config
from tests.core.util import daemon_log, registry, start, write_config

VICTIM_TEXT = "precious, not yours to overwrite\n"


def victim(tmp_path, name: str):
    path = tmp_path / "outside" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(VICTIM_TEXT)
    return path


def open_to_others(root) -> list[str]:
    """Everything under root (root excluded) that a group or other user may read, write or enter."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o077:
                found.append(f"{stat.filemode(st.st_mode)} {os.path.relpath(os.path.join(dirpath, name), root)}")
    return found


@pytest.mark.slow
def test_what_a_running_instance_creates_is_private_and_a_planted_token_is_refused(home, tmp_path):
    known = victim(tmp_path, "known_token")
    known.chmod(0o600)  # even a private file is refused when it is reached through a symlink
    (home / "logs" / "priv_01").mkdir(mode=0o700)  # as start would make it: the test checks the rest
    (home / "logs" / "priv_01" / "web.token").symlink_to(known)
    path = paper_config(home, "priv_01")
    assert start(home, path).returncode == 0
    rec = registry(home)["priv_01"]
    wait_for(lambda: "web.token" in "".join(p.read_text() for p in home.glob("logs/priv_01/*/bot_*.log")),
             30, "the bot to report the refused token")
    said = "".join(p.read_text() for p in home.glob("logs/priv_01/*/bot_*.log"))
    assert "is a symlink: refused" in said
    assert known.read_text() == VICTIM_TEXT
    try:  # no page serves the planted token's value
        r = requests.post(f"http://127.0.0.1:{rec['web_port']}/api/grid/adjust", timeout=5,
                          headers={"Authorization": f"Bearer {VICTIM_TEXT.strip()}"}, json={"grid_lower_price": 141})
        assert r.status_code != 200
    except requests.ConnectionError:
        pass
    info = run_cli(home, "info", "priv_01")
    assert info.returncode == 0 and VICTIM_TEXT.strip() not in info.stdout and "refused" in info.stdout
    assert open_to_others(home / "logs") == [] and open_to_others(home / "database") == []
    assert (home / "database" / "priv_01.db").exists() and (home / "logs" / "instances.json").exists()
    assert run_cli(home, "stop", "-i", "priv_01").returncode == 0


def test_a_symlinked_pid_file_is_not_written_through(home, tmp_path):
    target = victim(tmp_path, "daemon_pid_victim")
    (home / "logs" / "pid_01").mkdir()
    (home / "logs" / "pid_01" / "daemon.pid").symlink_to(target)
    out = start(home, write_config(home, "pid_01"))
    assert out.returncode == 1 and "symlink" in out.stderr, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert target.read_text() == VICTIM_TEXT


def test_symlinked_bot_pid_and_logs_are_not_written_through(home, tmp_path):
    day = time.strftime("%Y-%m-%d")
    logs = home / "logs" / "links_01"
    (logs / day).mkdir(parents=True)
    planted = {logs / "bot.pid": victim(tmp_path, "bot_pid_victim"),
               logs / day / "bot_stdout.log": victim(tmp_path, "stdout_victim")}
    for link, target in planted.items():
        link.symlink_to(target)
    out = start(home, write_config(home, "links_01"))
    assert "Traceback" not in out.stderr
    if out.returncode == 0:
        assert run_cli(home, "stop", "-i", "links_01").returncode == 0
    else:
        assert "symlink" in out.stderr + daemon_log(home, "links_01"), out.stderr
    for target in planted.values():
        assert target.read_text() == VICTIM_TEXT, target


def test_a_token_readable_by_others_is_refused(tmp_path):
    token = tmp_path / "web.token"
    mine = ensure_token(token)
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and read_token(token) == mine
    token.chmod(0o644)
    with pytest.raises(UnsafeToken, match="-rw-r--r--"):
        ensure_token(token)


def test_logs_and_database_an_older_build_left_open_are_made_private_by_start(home):
    """An older build made logs/ and database/ 0755 and its files 0644 (before the CLI set its
    umask): every bot's books, fills and logs stayed readable by any local user after an upgrade.
    `start` and `start-all` close both folders (0700: nothing inside is reachable then) and say so."""
    for name in ("logs", "database"):
        (home / name).chmod(0o755)
    old_db = home / "database" / "old_01.db"
    old_db.write_text("an older build's books\n")
    old_db.chmod(0o644)
    path = write_config(home, "priv_02")
    out = run_cli(home, "start", "-c", str(path), "-d")
    assert out.returncode == 0, out.stderr
    for name in ("logs", "database"):
        assert stat.S_IMODE((home / name).stat().st_mode) == 0o700
        assert f"{home / name}: made private (drwx------, was drwxr-xr-x)" in out.stderr
    assert run_cli(home, "stop", "-i", "priv_02").returncode == 0
    again = run_cli(home, "start-all")
    assert again.returncode == 0 and "made private" not in again.stderr
    assert run_cli(home, "stop-all").returncode == 0
