"""`logs`: the last N lines across rotated files and dated directories, -f that follows rotation and
midnight's new directory, several instances merged with an `id |` prefix, and the bot's fill lines."""
from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest

from core.log_manager import DatedLog
from core.paths import InstancePaths
from tests.bot.proc import bot_config, run_bot
from tests.conftest import DAEMON_MANAGER, REPO, home_env, run_cli, wait_for
from tests.core.util import on_a_terminal, start, write_config

STAMP = re.compile(r"^\[\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)? UTC\] ")


def write(path, *lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.writelines(f"{line}\n" for line in lines)


def test_last_lines_span_rotated_files_and_earlier_days(home):
    logs = home / "logs" / "old_01"
    write(logs / "2026-01-01" / "bot_stdout.log", *[f"line {i}" for i in range(1, 6)])
    write(logs / "2026-01-02" / "bot_stdout.log.1", *[f"line {i}" for i in range(6, 9)])
    write(logs / "2026-01-02" / "bot_stdout.log", "line 9", "line 10")
    write(logs / "2026-01-02" / "bot_stderr.log", "oops")
    write(logs / "2026-01-02" / "daemon.log", "spawned bot")

    out = run_cli(home, "logs", "old_01", "-n", "7")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"line {i}" for i in range(4, 11)]
    assert run_cli(home, "logs", "-i", "old_01", "--stderr").stdout.splitlines() == ["oops"]
    assert run_cli(home, "logs", "old_01", "--daemon", "-n", "1").stdout.splitlines() == ["spawned bot"]
    every = run_cli(home, "logs", "old_01", "--all-streams", "-n", "1").stdout.splitlines()
    assert sorted(every) == ["old_01 daemon | spawned bot", "old_01 stderr | oops", "old_01 stdout | line 10"]

    unknown = run_cli(home, "logs", "nobody")
    assert unknown.returncode == 4 and "nobody" in unknown.stderr
    assert run_cli(home, "logs", "old_01", "--stderr", "--daemon").returncode == 2  # one stream choice
    assert run_cli(home, "logs", "old_01", "-n", "-3").returncode == 2


class Follower:
    """A real `logs -f` process whose output lines are collected as they come."""

    def __init__(self, home, *args):
        self.proc = subprocess.Popen([sys.executable, str(DAEMON_MANAGER), "--home", str(home), "logs", "-f", *args],
                                     cwd=str(REPO), env=home_env(home), stdout=subprocess.PIPE, text=True,
                                     stdin=subprocess.DEVNULL)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self):
        self.proc.kill()
        self.proc.wait(timeout=10)


def test_follow_survives_rotation_and_the_next_days_directory(home):
    paths = InstancePaths.for_instance(home, "day_01")
    # the supervisor's own writer, rotating often; backups enough that no line leaves the disk
    log = DatedLog(paths, "bot_stdout.log", max_bytes=200, backups=100)
    log.write_line("before follow")
    follower = Follower(home, "day_01", "-n", "1")
    try:
        wait_for(lambda: follower.lines == ["before follow"], 20, "the last line before following")
        expected = ["before follow"]
        for i in range(40):  # 40 lines of ~30 bytes: rotated about six times
            log.write_line(f"rotating line {i:03d} ..........")
            expected.append(f"rotating line {i:03d} ..........")
        wait_for(lambda: len(follower.lines) >= len(expected), 20, "every line across rotations")
        assert len(list(paths.dated_dir().glob("bot_stdout.log.*"))) >= 1  # it did rotate
        log.close()
        # midnight: the supervisor opens the next dated directory; `logs -f` must move to it
        tomorrow = paths.log_dir / "2999-12-31" / "bot_stdout.log"
        write(tomorrow, "after midnight 1")
        expected.append("after midnight 1")
        wait_for(lambda: len(follower.lines) >= len(expected), 20, "the first line of the next day")
        write(tomorrow, "after midnight 2")
        expected.append("after midnight 2")
        wait_for(lambda: len(follower.lines) >= len(expected), 20, "the second line of the next day")
        assert follower.lines == expected
    finally:
        follower.stop()


@pytest.mark.slow
def test_all_live_instances_merged_with_an_id_prefix(home):
    for iid in ("mix_01", "mix_02"):
        assert start(home, write_config(home, iid)).returncode == 0
    wait_for(lambda: all(list((home / "logs" / i).glob("*/bot_stdout.log")) and
                         any(p.stat().st_size for p in (home / "logs" / i).glob("*/bot_stdout.log"))
                         for i in ("mix_01", "mix_02")), 20, "both bots' first line")
    out = run_cli(home, "logs", "-n", "5")
    assert out.returncode == 0, out.stderr
    prefixes = {line.split(" | ")[0] for line in out.stdout.splitlines()}
    assert prefixes == {"mix_01", "mix_02"}
    assert any(line.startswith("mix_01 | fake bot") for line in out.stdout.splitlines())
    coloured = on_a_terminal(home, "logs", "mix_01", "mix_02")
    assert "\x1b[" in coloured and "mix_02" in coloured
    run_cli(home, "stop-all")


def test_the_bot_logs_each_fill_and_range_change_with_a_time(home):
    cfg = bot_config(home, strategy={"boundary_action": "adjust_range", "grid_lower_price": 147,
                                     "grid_upper_price": 153}, exchange={"volatility": 0.01})
    out = run_bot(home, "--config", str(cfg), "--no-web", "--duration", "3")
    assert out.returncode == 0, out.stderr
    fills = [line for line in out.stdout.splitlines() if " FILL " in line]
    assert fills, out.stdout
    for line in fills:
        assert STAMP.match(line), line
        assert re.search(r"FILL bot_t1 SOL_USDC_PERP: (buy|sell) [\d.]+ @ [\d.]+ \(level \d+", line), line
    ranges = [line for line in out.stdout.splitlines() if "range now" in line]
    assert ranges and all(STAMP.match(line) for line in ranges), out.stdout
    assert all(STAMP.match(line) for line in out.stdout.splitlines() if "SUMMARY" in line or "FINAL" in line)
