"""Issue 12 goal 6: a lean `list`. It reads each instance's small files with a short first read (no
256 KB buffer per record, no buffered io stack), and its plain forms skip argparse and the other
commands (core.list_command.plain_list). What it shows must not depend on either."""
from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import DAEMON_MANAGER, REPO, home_env, run_cli
from tests.core.util import list_json, start, write_config

BOOKS = {"symbol": "SOL_USDC_PERP", "quote": "USDC", "state": "trading", "position": 1.5, "unrealized_pnl": 12.25,
         "realized_pnl": -3.5, "grid_profit": 7.75, "equity": 10016.5}


def _stopped(home, iid: str, **fields) -> None:
    """An instance's own record as `stop` leaves it (no live process), with extra fields."""
    log_dir = home / "logs" / iid
    log_dir.mkdir(parents=True)
    rec = {"instance_id": iid, "status": "stopped", "desired_state": "stopped", "log_dir": str(log_dir),
           "symbol": "SOL_USDC_PERP", "restart_count": 0, **fields}
    (log_dir / "instance.json").write_text(json.dumps(rec))


def test_records_past_the_first_read_are_read_whole_and_oversized_ones_are_corrupt(home):
    _stopped(home, "small", last_error="short")
    _stopped(home, "long", last_error="x" * 40_000)        # over the 16 KB first read, under the 256 KB limit
    _stopped(home, "edge", last_error="y" * (16 * 1024))   # the file just over one first read
    _stopped(home, "huge", last_error="z" * 300_000)       # over the limit: not a record we wrote
    rows = list_json(home, "--all")
    assert rows["small"]["last_error"] == "short" and rows["small"]["status"] == "stopped"
    assert rows["long"]["last_error"] == "x" * 40_000 and rows["long"]["status"] == "stopped"
    assert rows["edge"]["last_error"] == "y" * (16 * 1024)
    assert rows["huge"]["status"] == "corrupt" and "over 262144 bytes" in rows["huge"]["last_error"]


def test_books_are_shown_only_from_a_status_file_that_is_ours(home):
    for iid in ("plain", "oversized", "dir", "garbage"):
        _stopped(home, iid)
    (home / "logs" / "plain" / "bot_status.json").write_text(json.dumps(BOOKS))
    (home / "logs" / "oversized" / "bot_status.json").write_text(json.dumps({**BOOKS, "message": "m" * 70_000}))
    (home / "logs" / "dir" / "bot_status.json").mkdir()
    (home / "logs" / "garbage" / "bot_status.json").write_bytes(b"\xff\xfe{not json")
    rows = list_json(home, "--all")
    assert rows["plain"]["equity"] == 10016.5 and rows["plain"]["quote"] == "USDC"
    for iid in ("oversized", "dir", "garbage"):
        assert rows[iid]["equity"] is None and rows[iid]["position"] is None, iid
    table = run_cli(home, "list", "--all")
    assert table.returncode == 0 and "Traceback" not in table.stderr
    assert "fleet USDC: unrealized +12.25  realized -3.50  grid +7.75  equity 10016.50" in table.stdout


def _cli(home, *args: str, env_home: bool = False, importtime: bool = False) -> subprocess.CompletedProcess:
    """daemon_manager.py ARGS as typed (no --home added), the home in GRIDBOT_HOME."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, str(DAEMON_MANAGER), *args], cwd=str(REPO),
                          env=home_env(home), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_the_plain_forms_print_what_argparse_would(home):
    _stopped(home, "plain_a", last_error="boom")
    _stopped(home, "plain_b", config_file=str(home / "config" / "active" / "plain_b.json"))
    (home / "logs" / "plain_a" / "bot_status.json").write_text(json.dumps(BOOKS))
    h = str(home)
    # left: a plain form; right: the same request in a form only argparse takes (a repeated flag,
    # an abbreviation), so it goes the long way
    for plain, parsed in ((["--home", h, "list", "--all"], ["--home", h, "list", "--all", "--all"]),
                          ([f"--home={h}", "list", "--json", "--all"], ["--home", h, "list", "--js", "--al"]),
                          (["list", "--all"], ["list", "--al"])):
        fast, slow = _cli(home, *plain), _cli(home, *parsed)
        assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
        assert fast.stdout == slow.stdout and fast.stderr == slow.stderr == "", plain
        assert "plain_a" in fast.stdout and "12.25" in fast.stdout
    assert _cli(home, "list").stdout.startswith("no instances (list --all shows stopped ones)\n")


def test_the_plain_forms_load_no_argparse_and_no_other_command(home):
    _stopped(home, "lean_a")
    fast = _cli(home, "list", "--all", importtime=True)
    slow = _cli(home, "list", "--all", "--all", importtime=True)
    assert fast.returncode == slow.returncode == 0
    loaded = {line.rsplit("|", 1)[-1].strip() for line in fast.stderr.splitlines() if line.startswith("import time:")}
    assert "core.list_command" in loaded and "core.instance_manager" in loaded  # the probe sees imports
    assert loaded & {"argparse", "gettext", "core.commands", "core.targets", "core.fleet_commands",
                     "core.logs_command", "jsonschema", "dotenv", "psutil"} == set()
    assert "| argparse" in slow.stderr  # the long way does load it


def _imported(out: subprocess.CompletedProcess) -> set[str]:
    return {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}


def test_the_plain_list_loads_neither_pathlib_nor_re_nor_json(home):
    """pathlib (through fnmatch and urllib.parse: re, enum, functools, collections, ipaddress),
    json and contextlib (collections, functools) were about half of what a `list` cost whatever the
    fleet's size. The rows need none of them: a live instance with its books, a stopped one and a
    corrupt one go the plain way."""
    cfg = write_config(home, "lean_live", "--books", json.dumps(BOOKS))
    assert start(home, cfg).returncode == 0
    _stopped(home, "lean_stopped", config_file=str(home / "config" / "active" / "lean_stopped.json"))
    (home / "logs" / "lean_stopped" / "bot_status.json").write_text(json.dumps(BOOKS))
    (home / "logs" / "lean_corrupt").mkdir()
    (home / "logs" / "lean_corrupt" / "instance.json").write_text('{"status": 7}')  # (one not JSON loads json)
    try:
        for flags in ((), ("--all",)):
            out = _cli(home, "list", *flags, importtime=True)
            assert out.returncode == 0, out.stderr
            assert "lean_live" in out.stdout and "lean_corrupt" in out.stdout and "10016.50" in out.stdout
            loaded = _imported(out)
            assert {"core.list_command", "core.instance_manager", "core.books"} <= loaded  # the probe sees imports
            assert loaded & {"pathlib", "re", "json", "enum", "urllib.parse", "ipaddress", "core.paths", "contextlib",
                             "collections", "functools"} == set(), flags
    finally:
        run_cli(home, "stop-all")
    assert "lean_stopped" in out.stdout and "config/active/lean_stopped.json" in out.stdout


def test_bad_list_command_lines_still_get_argparse_s_message(home, tmp_path):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    for args, words in ((["--home", str(not_a_dir), "list"], "not a directory"),
                        (["list", "--bogus"], "unrecognized arguments: --bogus"),
                        (["list", "--all", "extra"], "unrecognized arguments: extra"),
                        (["--home", "list"], "COMMAND")):
        out = _cli(home, *args)
        assert out.returncode == 2 and words in out.stderr and "Traceback" not in out.stderr, (args, out.stderr)


def test_a_reader_that_leaves_early_gets_no_traceback(home):
    for n in range(30):
        _stopped(home, f"pipe_{n:02d}", last_error="x" * 300)
    proc = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "list", "--all", "--json"], cwd=str(REPO),
                            env=home_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL)
    proc.stdout.close()  # `list | head -0`: nobody reads
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
