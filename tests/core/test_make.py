"""The set-up a newcomer meets: `make` without python3-venv says what to install, the editable
install uses a mode setuptools keeps, and a second `make demo` says the demo already runs."""
from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import REPO, free_port, home_env

# Debian's and Ubuntu's python3 without the python3-venv package: no ensurepip, so no venv.
DEBIAN_PYTHON_WITHOUT_VENV = """#!/bin/sh
case "$*" in
  *ensurepip*|*venv*)
    echo "The virtual environment was not created successfully because ensurepip is not available." >&2
    exit 1;;
esac
exec python3 "$@"
"""


def make(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), *args], capture_output=True, text=True,
                          env=env or {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")},
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_make_without_python3_venv_says_what_to_install(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text(DEBIAN_PYTHON_WITHOUT_VENV)
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    out = make("setup", f"PYTHON={fake}", f"VENV={venv}")
    said = out.stdout + out.stderr
    assert out.returncode != 0
    assert "python3-venv" in said and "apt install" in said, said
    assert not venv.exists()  # no half-made venv left to trip the next `make`


@pytest.mark.slow
def test_the_editable_install_uses_a_mode_setuptools_keeps(tmp_path):
    venv = tmp_path / "venv"
    out = make("setup", f"VENV={venv}", env={**os.environ, "PIP_NO_DEPS": "1"})
    said = out.stdout + out.stderr
    assert out.returncode == 0, said
    assert "will be removed" not in said and "deprecated" not in said.lower(), said
    pth = list(venv.glob("lib/python*/site-packages/__editable__*.pth"))
    assert len(pth) == 1
    lines = [line for line in pth[0].read_text().splitlines() if line.strip()]
    # a plain path: no import hook run by every interpreter start (it would slow every `list`)
    assert lines == [str(REPO)], lines


@pytest.mark.slow
def test_a_second_make_demo_says_the_demo_runs(home):
    for name in ("paper_sol_01.json", "paper_eth_02.json"):
        doc = json.loads((REPO / "config" / "active" / name).read_text())
        doc["daemon_config"]["web_port"] = free_port()  # 5001/5002 may be taken on a shared machine
        (home / "config" / "active" / name).write_text(json.dumps(doc))
    env = home_env(home)
    try:
        first = make("demo", env=env, timeout=180)
        assert first.returncode == 0, first.stdout + first.stderr
        second = make("demo", env=env, timeout=180)
        said = second.stdout + second.stderr
        assert second.returncode == 0 and "Error" not in said, said
        assert "the demo is already running" in said
    finally:
        make("stop", env=env, timeout=120)
    shutil.rmtree(home / "logs", ignore_errors=True)
