"""`start-all`: one process starts the fleet, and one bad instance never stops the others.

Every config is validated in that one process, the claims are decided under one lock and the
supervisors are forked without waiting for each other; each instance still gets what a single
`start` would say, with its own reason when it fails.
"""
from __future__ import annotations

import json
import os

import pytest

from tests.conftest import run_cli
from tests.core.test_preflight import paper_config
from tests.core.util import list_json, write_config


@pytest.mark.slow
def test_start_all_starts_the_good_and_names_each_failure_with_its_reason(home):
    good = [f"fleet_{i:02d}" for i in range(4)]
    for iid in good:
        write_config(home, iid)
    write_config(home, "quits_01", "--mode", "exit2")  # the bot refuses its config once it runs
    paper_config(home, "tiny_01", quantity=0.001)  # run.py's own pre-flight refuses it: below the minimum
    taken = json.loads((home / "config" / "active" / "fleet_00.json").read_text())["daemon_config"]["web_port"]
    write_config(home, "zz_clash_01", web_port=taken)  # sorted after fleet_00: the port is fleet_00's by then
    bad = write_config(home, "bad_01")
    doc = json.loads(bad.read_text())
    doc["strategy_config"]["grid_num"] = "ten"
    bad.write_text(json.dumps(doc))

    out = run_cli(home, "start-all")
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert "Traceback" not in said
    live = list_json(home, "--all")
    assert {iid for iid, rec in live.items() if rec["status"] == "running"} == set(good), said
    assert "started 4 of 8 instances" in out.stdout, said
    for iid in good:
        assert f"{iid} started: ready" in said
    assert "strategy_config.grid_num" in said and '"ten"' in said  # the schema's words, before anything ran
    assert "bad_01" not in live
    assert f"daemon_config.web_port: {taken} of zz_clash_01 is already used by instance fleet_00" in said
    assert "zz_clash_01" not in live
    assert "quits_01 failed" in said and "grid_num: 1 must be >= 2" in said  # the bot's own stderr tail
    assert live["quits_01"]["status"] == "fatal"
    tiny = "\n".join(said[said.index("tiny_01.json:"):].splitlines()[1:4])  # run.py --check's own words
    assert "invalid parameters" in tiny and "0.001" in tiny and "minimum" in tiny, tiny
    assert "tiny_01" not in live and not (home / "database" / "tiny_01.db").exists()

    again = run_cli(home, "start-all")  # the running ones are left alone, the failing ones fail again
    assert again.returncode == 1
    assert all(f"{iid} is already running" in again.stdout for iid in good), again.stdout
    assert {iid: rec["bot_pid"] for iid, rec in list_json(home).items() if iid in good} == \
        {iid: live[iid]["bot_pid"] for iid in good}
    assert run_cli(home, "stop-all").returncode == 0


@pytest.mark.slow
def test_a_claim_in_a_later_batch_sees_the_instances_started_by_an_earlier_one(home):
    """start-all launches a batch at a time (core/fleet_commands.py LAUNCH_BATCH): a config of the
    last batch that wants the port of one in the first is refused, as in one lock pass."""
    from core.fleet_commands import LAUNCH_BATCH

    good = [f"fleet_{i:02d}" for i in range(LAUNCH_BATCH)]
    for iid in good:
        write_config(home, iid)
    taken = json.loads((home / "config" / "active" / "fleet_00.json").read_text())["daemon_config"]["web_port"]
    write_config(home, "zz_clash_01", web_port=taken)  # sorted last: alone in the second batch

    out = run_cli(home, "start-all")
    said = out.stdout + out.stderr
    assert out.returncode == 1, said
    assert f"started {LAUNCH_BATCH} of {LAUNCH_BATCH + 1} instances" in out.stdout, said
    assert f"daemon_config.web_port: {taken} of zz_clash_01 is already used by instance fleet_00" in said
    lines = out.stdout.splitlines()
    assert [ln.split()[0] for ln in lines[:LAUNCH_BATCH + 1]] == [*good, "daemon_config.web_port:"], said
    live = list_json(home, "--all")
    assert {iid for iid, rec in live.items() if rec["status"] == "running"} == set(good), said
    assert "zz_clash_01" not in live
    assert run_cli(home, "stop-all").returncode == 0


def pipes_of(pid: int) -> set[str]:
    """The pipes a process holds open ("pipe:[inode]")."""
    fd_dir = f"/proc/{pid}/fd"
    links = (os.readlink(os.path.join(fd_dir, fd)) for fd in os.listdir(fd_dir))
    return {link for link in links if link.startswith("pipe:")}


def test_each_daemon_is_double_forked_in_its_own_session_but_not_its_leader(home):
    """DESIGN.md's `start -d`: the supervisor is in a session of its own (the terminal's signals
    never reach it), not that session's leader (opening a terminal can never make it its
    controlling one), and not a child of the command that started it. One process starts a
    whole batch (core/supervisor.py), yet each supervisor has its own session and holds none of
    another's pipes (a sibling keeping a readiness pipe or an account lock open would outlive it)."""
    for iid in ("df_01", "df_02", "df_03"):
        write_config(home, iid)
    out = run_cli(home, "start-all")
    try:
        assert out.returncode == 0, out.stdout + out.stderr
        pids = {iid: rec["pid"] for iid, rec in list_json(home).items()}
        assert len(pids) == 3
        for iid, pid in pids.items():
            assert os.getsid(pid) != os.getsid(0), iid     # not in our session
            assert os.getsid(pid) != pid, iid              # not its session's leader
            assert os.getpgid(pid) != pid, iid             # nor a group leader: a second fork made it
        assert len({os.getsid(pid) for pid in pids.values()}) == 3     # a session each
        held = {iid: pipes_of(pid) for iid, pid in pids.items()}
        for iid in pids:
            others = set().union(*(pipes for other, pipes in held.items() if other != iid))
            assert not held[iid] & others, f"{iid} shares pipes with another supervisor"
    finally:
        assert run_cli(home, "stop-all").returncode == 0
