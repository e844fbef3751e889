"""Dated log layout, size-bounded rotation, and log_retention_days clean-up (also at daemon start)."""
from __future__ import annotations

import time

from core.log_manager import DatedLog, remove_old_dirs
from core.paths import InstancePaths
from tests.conftest import run_cli
from tests.core.util import start, write_config

DAY = 86400


def day(offset: int) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(time.time() + offset * DAY))


def test_rotation_keeps_each_file_bounded(home):
    paths = InstancePaths.for_instance(home, "rot")
    log = DatedLog(paths, "bot_stdout.log", max_bytes=1000, backups=3)
    for i in range(200):
        log.write_line(f"line {i:04d} " + "x" * 40)
    log.close()
    files = sorted(p.name for p in paths.dated_dir().iterdir())
    assert files == ["bot_stdout.log", "bot_stdout.log.1", "bot_stdout.log.2", "bot_stdout.log.3"]
    assert all(p.stat().st_size <= 1100 for p in paths.dated_dir().iterdir())
    newest = "".join((paths.dated_dir() / n).read_text() for n in ("bot_stdout.log.1", "bot_stdout.log"))
    assert "line 0199" in newest and "line 0000" not in newest


def test_retention_removes_only_old_dated_dirs(home):
    log_dir = home / "logs" / "ret"
    keep = [day(0), day(-1), day(-2)]
    drop = [day(-3), day(-30)]
    for name in keep + drop + ["not-a-date"]:
        (log_dir / name).mkdir(parents=True)
    removed = remove_old_dirs(log_dir, 3)
    assert sorted(removed) == sorted(drop)
    assert sorted(p.name for p in log_dir.iterdir()) == sorted(keep + ["not-a-date"])


def test_daemon_applies_retention_at_start(home):
    old = home / "logs" / "aged" / day(-10)
    old.mkdir(parents=True)
    (old / "bot_stdout.log").write_text("ancient\n")
    recent = home / "logs" / "aged" / day(-1)
    recent.mkdir()
    assert start(home, write_config(home, "aged", log_retention_days=2)).returncode == 0
    assert not old.exists() and recent.exists()
    assert (home / "logs" / "aged" / day(0) / "daemon.log").exists()
    assert run_cli(home, "stop", "-i", "aged").returncode == 0
