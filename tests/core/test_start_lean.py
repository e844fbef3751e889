"""A paper bot started by `start` loads no library it never uses, and trusts `start`'s schema
check only for the very document `start` checked.

What the bot imported is its own sys.modules, written at its exit by a sitecustomize module the
config puts on its PYTHONPATH (daemon_config.environment), so it runs exactly as `start` runs it.
"""
from __future__ import annotations

import json
import os
import signal

import pytest

from tests.conftest import run_cli, wait_for
from tests.core.test_preflight import paper_config
from tests.core.util import list_json, start

NEVER_IN_A_PAPER_BOT = {"ccxt", "aiohttp", "requests", "numpy", "apprise", "websocket", "jsonschema"}
DUMP_MODULES = """import atexit, os, sys

def _dump():
    with open(os.path.join(os.environ["MODULES_DUMP"], str(os.getpid())), "w") as fh:
        fh.write("\\n".join(sorted({name.split(".")[0] for name, m in sys.modules.items() if m is not None})))

atexit.register(_dump)
"""


@pytest.mark.slow
def test_a_paper_bot_imports_no_client_library_and_revalidates_an_edited_config(home, tmp_path):
    dump = tmp_path / "modules"
    dump.mkdir()
    (tmp_path / "sitecustomize.py").write_text(DUMP_MODULES)
    path = paper_config(home, "lean_01")
    doc = json.loads(path.read_text())
    doc["daemon_config"].update(environment={"PYTHONPATH": str(tmp_path), "MODULES_DUMP": str(dump)},
                                restart_delay=0.1)
    path.write_text(json.dumps(doc))
    out = start(home, path)
    assert out.returncode == 0, out.stdout + out.stderr
    bot_pid = list_json(home)["lean_01"]["bot_pid"]
    assert run_cli(home, "stop", "lean_01").returncode == 0
    modules = set((dump / str(bot_pid)).read_text().split())
    assert {"flask", "sqlite3", "strategies"} <= modules  # the dump is the bot's, page included
    assert not modules & NEVER_IN_A_PAPER_BOT, sorted(modules & NEVER_IN_A_PAPER_BOT)

    # edited after `start` checked it: the respawned bot judges the new document itself
    assert run_cli(home, "start", "lean_01", "-d").returncode == 0
    doc["strategy_config"]["grid_num"] = "ten"
    path.write_text(json.dumps(doc))
    os.kill(list_json(home)["lean_01"]["bot_pid"], signal.SIGKILL)  # the pid this test's own start recorded
    rec = wait_for(lambda: (r := list_json(home, "--all")["lean_01"])["status"] == "fatal" and r, 60,
                   "the respawned bot to refuse the edited config")
    assert "strategy_config.grid_num" in rec["last_error"] and rec["exit_code"] == 2, rec


def cli_imports(out) -> set[str]:
    """Top-level packages the CLI imported, from its own PYTHONPROFILEIMPORTTIME trace on stderr."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in out.stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


@pytest.mark.slow
def test_start_judges_a_document_with_the_schema_once_and_an_edited_one_again(home):
    path = paper_config(home, "lean_02")
    trace = {"PYTHONPROFILEIMPORTTIME": "1"}
    first = run_cli(home, "start", "-c", str(path), "-d", env=trace)
    assert first.returncode == 0, first.stdout + first.stderr[-3000:]
    assert "jsonschema" in cli_imports(first)
    assert run_cli(home, "stop", "lean_02").returncode == 0

    again = run_cli(home, "start", "-c", str(path), "-d", env=trace)  # the same document: its verdict stands
    assert again.returncode == 0, again.stdout + again.stderr[-3000:]
    assert "jsonschema" not in cli_imports(again)
    assert run_cli(home, "stop", "lean_02").returncode == 0

    doc = json.loads(path.read_text())
    doc["daemon_config"]["stop_timeout"] = "soon"
    path.write_text(json.dumps(doc))
    edited = run_cli(home, "start", "-c", str(path), "-d")
    assert edited.returncode == 2 and 'daemon_config.stop_timeout: "soon"' in edited.stderr, edited.stderr
    assert list_json(home, "--all")["lean_02"]["status"] == "stopped"
