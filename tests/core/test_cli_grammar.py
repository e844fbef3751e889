"""One grammar: every instance command takes -c FILE, -i ID or a bare ID; usage errors show the
subcommand's usage; start-all, restart-all, cleanup ID, new and archive."""
from __future__ import annotations

import json
import shutil

import psutil
import pytest

from core.instance_manager import InstanceRegistry
from tests.conftest import REPO, run_cli
from tests.core.util import list_json, registry, start, write_config


def assert_usage(out, command: str) -> None:
    """Exit 2 and the usage line of the subcommand, not of the whole CLI."""
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert f"usage: daemon-manager {command} " in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("argv,command", [
    (["stop"], "stop"),
    (["stop", "a", "b"], "stop"),
    (["start", "--bogus"], "start"),
    (["info"], "info"),
    (["status", "x", "-i", "y"], "status"),
    (["new", "x"], "new"),
    (["archive"], "archive"),
])
def test_usage_errors_print_the_subcommands_usage(home, argv, command):
    assert_usage(run_cli(home, *argv), command)


def test_start_of_an_unknown_id_is_unknown(home):
    out = run_cli(home, "start", "ghost", "-d")
    assert out.returncode == 4 and "ghost: unknown instance" in out.stderr


@pytest.mark.slow
def test_every_instance_command_takes_c_i_or_a_bare_id(home):
    path = write_config(home, "gram_01")
    started = run_cli(home, "start", "gram_01", "-d")  # a config in config/active is known by its id
    assert started.returncode == 0, started.stderr
    assert list_json(home)["gram_01"]["status"] == "running"
    for how in (["gram_01"], ["-i", "gram_01"], ["-c", str(path)]):
        status = run_cli(home, "status", *how)
        assert status.returncode == 0 and json.loads(status.stdout)["instance_id"] == "gram_01", how
        info = run_cli(home, "info", *how)
        assert info.returncode == 0 and "config/active/gram_01.json" in info.stdout, (how, info.stderr)
        stats = run_cli(home, "stats", *how)
        assert stats.returncode == 0 and stats.stdout.splitlines()[1].startswith("gram_01"), (how, stats.stderr)
        valid = run_cli(home, "validate", *how)
        assert valid.returncode == 0 and "1 valid, 0 invalid" in valid.stdout, (how, valid.stdout)
    old_bot = list_json(home)["gram_01"]["bot_pid"]
    restarted = run_cli(home, "restart", "gram_01")
    assert restarted.returncode == 0 and "ready" in restarted.stdout, restarted.stderr
    assert not psutil.pid_exists(old_bot)
    assert run_cli(home, "stop", "gram_01").returncode == 0
    assert registry(home)["gram_01"]["status"] == "stopped"

    # a known instance starts again from its RECORDED config, even one outside config/active
    moved = home / "elsewhere.json"
    shutil.move(path, moved)
    assert run_cli(home, "start", "-c", str(moved), "-d").returncode == 0
    assert run_cli(home, "stop", "-i", "gram_01").returncode == 0
    again = run_cli(home, "start", "-i", "gram_01", "-d")
    assert again.returncode == 0, again.stderr
    assert registry(home)["gram_01"]["config_file"] == str(moved)
    assert run_cli(home, "stop", "gram_01").returncode == 0


@pytest.mark.slow
def test_start_all_and_restart_all(home):
    for iid in ("all_01", "all_02", "all_03"):
        write_config(home, iid)
    assert start(home, home / "config" / "active" / "all_01.json").returncode == 0
    first_bot = list_json(home)["all_01"]["bot_pid"]
    out = run_cli(home, "start-all")
    assert out.returncode == 0, (out.stdout, out.stderr)
    live = list_json(home)
    assert {i for i, r in live.items() if r["status"] == "running"} == {"all_01", "all_02", "all_03"}
    assert live["all_01"]["bot_pid"] == first_bot  # the running one was left alone
    assert "all_01 is already running" in out.stdout and "started 2 of 2" in out.stdout

    bots = {i: r["bot_pid"] for i, r in live.items()}
    out = run_cli(home, "restart-all")
    assert out.returncode == 0, (out.stdout, out.stderr)
    after = list_json(home)
    assert all(after[i]["status"] == "running" and after[i]["bot_pid"] != bots[i] for i in bots)
    assert "restarted 3 of 3" in out.stdout
    assert run_cli(home, "stop-all").returncode == 0


def test_cleanup_one_dead_instance(home):
    reg = InstanceRegistry(home)
    reg.register("gone_01", {"pid": None, "status": "stopped"})
    reg.register("gone_02", {"pid": None, "status": "fatal"})
    out = run_cli(home, "cleanup", "gone_01")
    assert out.returncode == 0 and "removed gone_01" in out.stdout
    assert set(registry(home)) == {"gone_02"}
    assert run_cli(home, "cleanup", "-i", "nobody").returncode == 4


@pytest.mark.slow
def test_cleanup_and_archive_refuse_a_running_instance(home):
    path = write_config(home, "busy_01")
    assert start(home, path).returncode == 0
    out = run_cli(home, "cleanup", "busy_01")
    assert out.returncode == 1 and "busy_01 is running" in out.stderr and "busy_01" in registry(home)
    out = run_cli(home, "archive", "busy_01")
    assert out.returncode == 1 and "busy_01 is running" in out.stderr and path.exists()
    assert run_cli(home, "stop", "busy_01").returncode == 0
    out = run_cli(home, "archive", "busy_01")
    assert out.returncode == 0, out.stderr
    assert not path.exists()
    archived = list((home / "config" / "archived").glob("busy_01*.json"))
    assert len(archived) == 1 and json.loads(archived[0].read_text())["metadata"]["instance_id"] == "busy_01"
    assert run_cli(home, "archive", "busy_01").returncode == 4  # nothing left to archive


def _templates(home):
    for t in (REPO / "config" / "templates").glob("*.json"):
        shutil.copy(t, home / "config" / "templates" / t.name)


def test_new_writes_a_config_from_a_template_only_if_it_validates(home):
    _templates(home)
    out = run_cli(home, "new", "eth_01", "--template", "paper_perp_grid", "--symbol", "ETH_USDC_PERP",
                  "--lower", "2000", "--upper", "2400", "--grid-num", "12")
    assert out.returncode == 0, out.stderr
    doc = json.loads((home / "config" / "active" / "eth_01.json").read_text())
    assert doc["metadata"]["instance_id"] == "eth_01" and doc["metadata"]["symbol"] == "ETH_USDC_PERP"
    assert (doc["strategy_config"]["grid_lower_price"], doc["strategy_config"]["grid_upper_price"]) == (2000, 2400)
    assert doc["strategy_config"]["grid_num"] == 12
    assert run_cli(home, "validate", "eth_01").returncode == 0

    before = sorted(p.name for p in (home / "config" / "active").iterdir())
    for bad, needle in ((["--lower", "2400", "--upper", "2000"], "grid_lower_price"),
                        (["--grid-num", "1"], "grid_num"),
                        (["--template", "nope"], "nope")):
        argv = ["new", "bad_01", "--template", "paper_perp_grid", *bad]
        out = run_cli(home, *argv)
        assert out.returncode == 2 and needle in out.stderr, (bad, out.stderr)
        assert "Traceback" not in out.stderr
        assert sorted(p.name for p in (home / "config" / "active").iterdir()) == before
    out = run_cli(home, "new", "eth_01", "--template", "paper_perp_grid")
    assert out.returncode == 2 and "already" in out.stderr  # never overwrites
    out = run_cli(home, "new", "../x", "--template", "paper_perp_grid")
    assert out.returncode == 2 and "../x" in out.stderr


def test_new_in_a_fresh_home_uses_the_repositorys_templates(home):
    out = run_cli(home, "new", "fresh_01", "--template", "paper_perp_grid")
    assert out.returncode == 0, out.stderr
    assert json.loads((home / "config" / "active" / "fresh_01.json").read_text())["metadata"]["instance_id"] == "fresh_01"
    unknown = run_cli(home, "new", "fresh_02", "--template", "nope")
    assert unknown.returncode == 2 and "paper_perp_grid" in unknown.stderr  # says which templates exist
