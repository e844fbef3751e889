"""A relative `-c` resolves against the project home, always (never sometimes the cwd), as documented."""
from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import DAEMON_MANAGER, home_env
from tests.core.util import write_config


def cli_in(cwd, home, *args):
    return subprocess.run([sys.executable, str(DAEMON_MANAGER), "--home", str(home), *args], cwd=str(cwd),
                          env=home_env(home), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def test_a_relative_config_resolves_against_the_home_never_the_cwd(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(write_config(home, "in_home"), elsewhere / "only_here.json")
    out = cli_in(elsewhere, home, "validate", "-c", "only_here.json")
    assert out.returncode == 2, out.stdout
    said = out.stdout + out.stderr
    assert str(home) in said and "relative to the home" in said and str(elsewhere / "only_here.json") in said
    # the same name in both places: the home's, whatever the cwd
    shutil.copy(elsewhere / "only_here.json", elsewhere / "in_home.json")
    (elsewhere / "config" / "active").mkdir(parents=True)
    shutil.copy(elsewhere / "only_here.json", elsewhere / "config" / "active" / "in_home.json")
    for cwd in (elsewhere, home, tmp_path):
        ok = cli_in(cwd, home, "validate", "-c", "config/active/in_home.json")
        assert ok.returncode == 0 and "OK       config/active/in_home.json" in ok.stdout, (cwd, ok.stdout)
