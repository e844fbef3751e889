"""A passed pre-flight is not run again on the same inputs (issue 12): `start` of an unchanged
config spawns no `run.py --check`, and any input the check depends on (the config document, the
environment a ${VAR} names, a file the check reads, the bot's code) makes it run again, and its
failure is reported (exit 2, nothing started).

Whether the check ran is seen through the interpreter: the config's python_path is a wrapper that
logs every command line it is given, then execs the real Python.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import REPO_ROOT
from tests.conftest import free_port, home_env, run_cli
from tests.core.util import registry

GOOD_CSV = "time,price\n1700000000,150\n1700000060,150.5\n1700000120,151\n"


def wrapper_python(home: Path) -> tuple[Path, Path]:
    """(interpreter wrapper, its log of command lines)."""
    log = home / "python_calls.log"
    wrapper = home / "bin" / "python"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def checks_run(log: Path) -> int:
    return sum(" --check " in f" {line} " for line in log.read_text().splitlines()) if log.exists() else 0


def csv_config(home: Path, iid: str, python: Path, **daemon) -> Path:
    """A paper run.py config replaying the CSV that ${CHECK_PRICES} names."""
    doc = json.loads((REPO_ROOT / "config" / "active" / "paper_sol_01.json").read_text())
    doc["metadata"]["instance_id"] = iid
    doc["daemon_config"] = {"web_port": free_port(), "stop_timeout": 10, "python_path": str(python), **daemon}
    doc["exchange_config"]["price_csv"] = "${CHECK_PRICES}"
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc))
    return path


def start_stop(home: Path, path: Path, env: dict[str, str], cli=run_cli) -> None:
    out = cli(home, "start", "-c", str(path), "-d", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    out = cli(home, "stop", "-c", str(path), env=env)
    assert out.returncode == 0, out.stdout + out.stderr


def refused(home: Path, path: Path, env: dict[str, str], needle: str, cli=run_cli) -> None:
    """start exits 2 naming the check's failure, and leaves the instance stopped."""
    out = cli(home, "start", "-c", str(path), "-d", env=env)
    assert out.returncode == 2, out.stdout + out.stderr
    assert needle in out.stderr, out.stderr
    (rec,) = registry(home).values()
    assert rec["status"] not in ("starting", "running"), rec


@pytest.mark.slow
def test_the_check_runs_again_only_when_an_input_changed(home):
    python, log = wrapper_python(home)
    prices = home / "prices.csv"
    prices.write_text(GOOD_CSV)
    env = {"CHECK_PRICES": str(prices)}
    path = csv_config(home, "cached_01", python)

    start_stop(home, path, env)
    assert checks_run(log) == 1
    key_file = home / "logs" / "cached_01" / "config.preflight"
    assert key_file.stat().st_mode & 0o777 == 0o600
    start_stop(home, path, env)
    assert checks_run(log) == 1, log.read_text()  # same inputs: the passed verdict stands

    prices.write_text("time,price\n1700000000,150\n1700000060,-3\n")  # a file the check reads changed
    refused(home, path, env, "price must be > 0")
    assert checks_run(log) == 2

    prices.write_text(GOOD_CSV)
    other = home / "other.csv"
    other.write_text("time,price\n1700000000,nope\n1700000060,x\n")
    refused(home, path, {"CHECK_PRICES": str(other)}, "expected 'time,price'")  # the ${VAR} changed
    assert checks_run(log) == 3

    doc = json.loads(path.read_text())
    doc["strategy_config"]["quantity"] = 0.001  # the config document changed
    path.write_text(json.dumps(doc))
    refused(home, path, env, "minimum")
    assert checks_run(log) == 4


def copied_tree(dest: Path) -> Path:
    """The code the bot and the CLI run, copied, so a test may edit it."""
    for name in ("bot", "strategies", "exchanges", "core", "database", "web", "config/schema"):
        shutil.copytree(REPO_ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO_ROOT / "run.py", dest / "run.py")
    return dest


@pytest.mark.slow
def test_an_edited_bot_source_file_makes_the_check_run_again(home, tmp_path):
    tree = copied_tree(tmp_path / "tree")

    def cli(h: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(tree / "core" / "daemon_manager.py"), "--home", str(h), *args],
                              cwd=str(tree), env=home_env(h, env), capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)

    python, log = wrapper_python(home)
    prices = home / "prices.csv"
    prices.write_text(GOOD_CSV)
    env = {"CHECK_PRICES": str(prices)}
    path = csv_config(home, "code_01", python, script_path=str(tree / "run.py"))
    start_stop(home, path, env, cli)
    assert checks_run(log) == 1
    modes = tree / "bot" / "modes.py"
    with modes.open("a") as fh:  # the edited check refuses every config
        fh.write("\n\ndef check_mode(cfg, say):\n    raise UsageError('the edited check refuses')\n")
    os.utime(modes, ns=(modes.stat().st_atime_ns, modes.stat().st_mtime_ns + 1))
    refused(home, path, env, "the edited check refuses", cli)
    assert checks_run(log) == 2
