"""The ccxt the tests run on is the one the lock file pins and pyproject.toml's range allows.

A fresh machine installs requirements.lock (make setup); a venv that drifted from it would test
something no one else runs.
"""
from __future__ import annotations

import re
import tomllib

import ccxt

from tests.conftest import REPO


def test_the_installed_ccxt_is_the_locked_one_inside_the_declared_range():
    locked = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (REPO / "requirements.lock").read_text(), re.M))
    assert ccxt.__version__ == locked["ccxt"]
    declared = next(d for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
                    if d.startswith("ccxt"))
    low, high = re.fullmatch(r"ccxt>=([\d.]+),<([\d.]+)", declared).groups()
    version = tuple(int(p) for p in ccxt.__version__.split("."))
    assert tuple(int(p) for p in low.split(".")) <= version < tuple(int(p) for p in high.split("."))
