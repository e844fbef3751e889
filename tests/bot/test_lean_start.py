"""A paper bot's start loads only what it needs before its page answers (issue 12, goal 4).

Code that only a later turn, another mode or a rarer request uses is imported when that happens,
so it is not in the start's import time. What the bot imported is its own sys.modules (full
dotted names), written at its exit by a sitecustomize module on its PYTHONPATH; the bot ran its
page (/health, /api/status) and traded for a few turns, but nobody asked for /metrics, an
adjustment or a flatten.
"""
from __future__ import annotations

from tests.conftest import free_port, wait_for
from tests.web.paper_bot import start_bot, stop_bot

# module -> what loads it when it is needed
LAZY_IN_A_PAPER_BOT = {
    "concurrent.futures": "a grid adjustment or a flatten asked on the page (bot/runtime.py)",
    "core.instance_manager": "/metrics, for the restart count (web/server.py)",
    "web.metrics": "/metrics (web/server.py)",
    "web.export": "/api/fills.csv, the fills download (web/server.py)",
    "core.reload": "SIGHUP, a reload of the config (bot/loop.py)",
}
DUMP_MODULES = """import atexit, os, sys

def _dump():
    with open(os.path.join(os.environ["MODULES_DUMP"], str(os.getpid())), "w") as fh:
        fh.write("\\n".join(sorted(name for name, m in sys.modules.items() if m is not None)))

atexit.register(_dump)
"""


def test_a_paper_bot_defers_what_its_start_does_not_use(home, tmp_path):
    dump = tmp_path / "modules"
    dump.mkdir()
    (tmp_path / "sitecustomize.py").write_text(DUMP_MODULES)
    bot = start_bot(home, "lean_bot_01", free_port(), env={"PYTHONPATH": str(tmp_path), "MODULES_DUMP": str(dump)})
    wait_for(lambda: bot.get("/api/status").json().get("fill_count"), 30, "a fill: the loop has traded")
    stop_bot(bot)                           # SIGTERM: a clean exit, which writes the dump
    modules = set((dump / str(bot.proc.pid)).read_text().split())
    assert {"flask", "web.server", "bot.loop", "exchanges.paper_exchange"} <= modules  # the dump is the bot's
    loaded = {name: why for name, why in LAZY_IN_A_PAPER_BOT.items() if name in modules}
    assert not loaded, f"imported although only these need them: {loaded}"


# Notes, in a file per module, whether the page's server thread was running when the strategy
# code and the grid's parameters were first imported: the page needs neither, so both are loaded
# after it listens (by the grid's start).
AFTER_THE_PAGE = ("strategies.perp_grid_strategy", "strategies.grid_params")
NOTE_FIRST_IMPORTS = """import os, sys, threading

class _NoteFirstImport:
    def find_spec(self, name, path=None, target=None):
        if name in %r:
            serving = any(t.name == "web-server" for t in threading.enumerate())
            with open(os.path.join(os.environ["IMPORT_NOTE"], name), "w") as fh:
                fh.write("page serving" if serving else "page not serving yet")
        return None

sys.meta_path.insert(0, _NoteFirstImport())
""" % (AFTER_THE_PAGE,)


def test_a_paper_bot_imports_its_strategy_once_its_page_listens(home, tmp_path):
    note = tmp_path / "note"
    note.mkdir()
    (tmp_path / "sitecustomize.py").write_text(NOTE_FIRST_IMPORTS)
    bot = start_bot(home, "lean_bot_02", free_port(), env={"PYTHONPATH": str(tmp_path), "IMPORT_NOTE": str(note)})
    try:
        assert "grid" in bot.get("/api/status").json()          # the strategy runs: it was imported
        noted = {name: (note / name).read_text() for name in AFTER_THE_PAGE}
        assert noted == dict.fromkeys(AFTER_THE_PAGE, "page serving")
    finally:
        stop_bot(bot)
