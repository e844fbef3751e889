"""bench/bench_peers.py in its smallest mode: it runs to the end and prints every figure's line, with
the issue's goal beside each figure that has one.

What it measures is never asserted (the machine is shared; figures are printed, not tested).
It needs supervisor (pip) and, if npm reaches its registry, PM2, both installed under /tmp once.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# (line start, a goal is printed): the big stage at --n 3, the start stage at --start-n 2
FIGURES = [("start 3 programs until all are up (info)", False), ("management PSS, 3 instances", False),
           ("management PSS per instance", False), ("idle CPU of management, 3 instances", True),
           ("respawn median (kill -> new child), 3 inst.", True), ("list / supervisorctl status / pm2 ls, 3 inst.", True),
           ("start 2 programs until all are up, start-all", True), ("list / supervisorctl status / pm2 ls, 2 inst.", True),
           ("start 2 programs, ours `start -d` x10 in parallel", False),
           ("one paper bot, start command until its page answers", True)]
OURS_ONLY = ["one supervisor's PSS", "paper bot with its page, RSS", "paper bot, process start until its page answers",
             "real-exchange bot (ccxt, local Backpack), RSS", "real-exchange bot, process start until its page answers"]


@pytest.mark.slow
def test_quick_mode_prints_every_figure_with_ours_peer_and_ratio():
    # a short directory of its own: supervisord's unix socket path must fit in 108 bytes
    work = Path(tempfile.mkdtemp(prefix="bp_"))
    try:
        out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_peers.py"), "--n", "3", "--start-n", "2",
                              "--quick", "--settle", "1", "--timeout", "400", "--dir", str(work)],
                             capture_output=True, text=True, timeout=460, stdin=subprocess.DEVNULL)
        left = list(work.iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    pm2_skipped = any(line.startswith("PM2: skipped (") for line in lines)
    for figure, with_goal in FIGURES:
        line = next((ln for ln in lines if ln.startswith(figure)), None)
        assert line is not None, f"no line for {figure!r}:\n{out.stdout}"
        assert re.search(r"ours [\d.]+ .*\| supervisord [\d.]+ .*\(ratio ([\d.]+|n/a)\)", line), line
        assert ("PM2" in line) != pm2_skipped, line
        assert bool(re.search(r"\| goal <= [\d.]+\S* [^|]*: (met|NOT MET)$", line)) == with_goal, line
    for figure in OURS_ONLY:
        line = next((ln for ln in lines if ln.startswith(figure)), None)
        assert line is not None, f"no line for {figure!r}:\n{out.stdout}"
        assert re.search(r"ours [\d.]+ \S+ \| goal (<= [\d.]+ \S+: (met|NOT MET)|reported)$", line), line
    assert "Traceback" not in out.stderr
    assert left == [], "the bench left its temporary homes behind"
