"""bench/bench_peers.py in its smallest mode: it runs to the end and prints every figure's line.

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

FIGURES = ["management memory, PSS, 2 instances", "idle CPU of management, 2 instances",
           "respawn (kill -> new child), 2 inst.", "start 2 programs until all are up, start-all",
           "start 2 programs, ours `start -d` x10 in parallel", "list / status / pm2 ls, 2 instances",
           "one paper bot, start until its page answers"]


@pytest.mark.slow
def test_quick_mode_prints_every_figure_with_ours_peer_and_ratio():
    # a short directory of its own: supervisord's unix socket path must fit in 108 bytes
    work = Path(tempfile.mkdtemp(prefix="bp_"))
    try:
        out = subprocess.run([sys.executable, str(REPO / "bench" / "bench_peers.py"), "--n", "2", "--quick",
                              "--timeout", "240", "--dir", str(work)],
                             capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        left = list(work.iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    pm2_skipped = any(line.startswith("PM2: skipped (") for line in lines)
    for figure in FIGURES:
        line = next((ln for ln in lines if ln.startswith(figure)), None)
        assert line is not None, f"no line for {figure!r}:\n{out.stdout}"
        assert re.search(r"ours [\d.]+ .*\| supervisord [\d.]+ .*\(ratio ([\d.]+|n/a)\)", line), line
        assert ("PM2" in line) != pm2_skipped, line
    assert "Traceback" not in out.stderr
    assert left == [], "the bench left its temporary homes behind"
