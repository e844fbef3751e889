"""Issue 12 goal 6: `list` reads each instance's small files with a short first read (no 256 KB
buffer per record, no buffered io stack); what it shows must not depend on how a file is read."""
from __future__ import annotations

import json

from tests.conftest import run_cli
from tests.core.util import list_json

BOOKS = {"symbol": "SOL_USDC_PERP", "quote": "USDC", "state": "trading", "position": 1.5, "unrealized_pnl": 12.25,
         "realized_pnl": -3.5, "grid_profit": 7.75, "equity": 10016.5}


def _stopped(home, iid: str, **fields) -> None:
    """An instance's own record as `stop` leaves it (no live process), with extra fields."""
    log_dir = home / "logs" / iid
    log_dir.mkdir(parents=True)
    rec = {"instance_id": iid, "status": "stopped", "desired_state": "stopped", "log_dir": str(log_dir),
           "symbol": "SOL_USDC_PERP", "restart_count": 0, **fields}
    (log_dir / "instance.json").write_text(json.dumps(rec))


def test_records_past_the_first_read_are_read_whole_and_oversized_ones_are_corrupt(home):
    _stopped(home, "small", last_error="short")
    _stopped(home, "long", last_error="x" * 40_000)        # over the 16 KB first read, under the 256 KB limit
    _stopped(home, "edge", last_error="y" * (16 * 1024))   # the file just over one first read
    _stopped(home, "huge", last_error="z" * 300_000)       # over the limit: not a record we wrote
    rows = list_json(home, "--all")
    assert rows["small"]["last_error"] == "short" and rows["small"]["status"] == "stopped"
    assert rows["long"]["last_error"] == "x" * 40_000 and rows["long"]["status"] == "stopped"
    assert rows["edge"]["last_error"] == "y" * (16 * 1024)
    assert rows["huge"]["status"] == "corrupt" and "over 262144 bytes" in rows["huge"]["last_error"]


def test_books_are_shown_only_from_a_status_file_that_is_ours(home):
    for iid in ("plain", "oversized", "dir", "garbage"):
        _stopped(home, iid)
    (home / "logs" / "plain" / "bot_status.json").write_text(json.dumps(BOOKS))
    (home / "logs" / "oversized" / "bot_status.json").write_text(json.dumps({**BOOKS, "message": "m" * 70_000}))
    (home / "logs" / "dir" / "bot_status.json").mkdir()
    (home / "logs" / "garbage" / "bot_status.json").write_bytes(b"\xff\xfe{not json")
    rows = list_json(home, "--all")
    assert rows["plain"]["equity"] == 10016.5 and rows["plain"]["quote"] == "USDC"
    for iid in ("oversized", "dir", "garbage"):
        assert rows[iid]["equity"] is None and rows[iid]["position"] is None, iid
    table = run_cli(home, "list", "--all")
    assert table.returncode == 0 and "Traceback" not in table.stderr
    assert "fleet USDC: unrealized +12.25  realized -3.50  grid +7.75  equity 10016.50" in table.stdout
