"""Pre-flight: `start` and `validate` run the bot's own `run.py --check` before anything starts.

The check loads the config exactly as the bot would (grid parameters against the market, margin,
keys) with no network, orders, database or heartbeat; a failure is a config error: exit 2, the
bot's messages, nothing registered, no file created.
"""
from __future__ import annotations

import json

import pytest

from core.config_manager import ConfigManager
from core.daemon import preflight
from core.paths import REPO_ROOT
from tests.conftest import free_port, run_cli
from tests.core.util import registry, write_config


def paper_config(home, iid: str, **strategy) -> object:
    """A real run.py config (paper exchange) with strategy_config overrides."""
    doc = json.loads((REPO_ROOT / "config" / "active" / "paper_sol_01.json").read_text())
    doc["metadata"]["instance_id"] = iid
    doc["daemon_config"] = {"web_port": free_port(), "stop_timeout": 10}
    doc["strategy_config"].update(strategy)
    path = home / "config" / "active" / f"{iid}.json"
    path.write_text(json.dumps(doc))
    return path


BAD = [
    ("tiny_qty", {"quantity": 0.001}, ["quantity", "0.001", "minimum"]),
    ("no_margin", {"max_position": 1000}, ["max_position", "1000", "margin"]),
    ("neg_stop", {"stop_loss": -5}, ["stop_loss", "-5"]),
]


@pytest.mark.parametrize("iid,strategy,needles", BAD, ids=[b[0] for b in BAD])
def test_bad_grid_parameters_are_refused_before_anything_starts(home, iid, strategy, needles):
    path = paper_config(home, iid, **strategy)
    for command in (["start", "-c", str(path), "-d"], ["validate", "-c", str(path)]):
        out = run_cli(home, *command)
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        said = out.stdout + out.stderr
        for needle in needles:
            assert needle in said, (command, needle, said)
    assert registry(home) == {}
    assert not (home / "logs" / iid).exists() and not (home / "database" / f"{iid}.db").exists()


def test_a_good_config_passes_the_check(home):
    cfg = ConfigManager(home).load(paper_config(home, "fine_01"))
    assert preflight(cfg, home) is None
    assert not (home / "logs" / "fine_01").exists() and not (home / "database" / "fine_01.db").exists()


def test_stop_loss_and_take_profit_must_be_positive_or_null(home):
    """The schema (so editors see it too): exclusiveMinimum 0, null still allowed."""
    for field, value in (("stop_loss", -5), ("stop_loss", 0), ("take_profit", -1)):
        path = paper_config(home, "sl_01", **{field: value})
        out = run_cli(home, "validate", "-c", str(path))
        assert out.returncode == 2 and f"strategy_config.{field}: {value} must be > 0" in out.stdout, out.stdout
    ConfigManager(home).load(paper_config(home, "sl_02", stop_loss=None, take_profit=12.5))


def test_other_programs_are_not_checked(home):
    """Only the repository's run.py knows --check; any other supervised program is started as is."""
    cfg = ConfigManager(home).load(write_config(home, "fake_01"))
    assert preflight(cfg, home) is None


def test_preflight_passes_on_the_checks_own_words_for_exit_2_and_3(home, tmp_path, monkeypatch):
    """What --check says is what the trader reads: no wrapping, secrets masked, exit 3 a config problem too."""
    stand_in = tmp_path / "run.py"
    cfg = ConfigManager(home).load(paper_config(home, "old_01"))
    cfg.daemon["script_path"] = str(stand_in)
    monkeypatch.setattr("core.daemon.is_repo_bot", lambda script: True)  # the stand-in plays run.py
    stand_in.write_text("import sys\nprint('quantity: 0.001 is below the market minimum', file=sys.stderr)\n"
                        "sys.exit(2)\n")
    assert preflight(cfg, home) == ["quantity: 0.001 is below the market minimum"]
    stand_in.write_text("import sys\nprint('exchange_config.api_key: missing', file=sys.stderr)\nsys.exit(3)\n")
    assert preflight(cfg, home) == ["exchange_config.api_key: missing"]
