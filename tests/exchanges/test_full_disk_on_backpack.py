"""run.py on the local Backpack server when the disk under its database fills up: the bot cannot
book what its orders trade, so it must not leave them trading. It cancels every resting order of
its own straight on the venue (without the books it cannot write), says why in one clear message
without a traceback, and exits 1."""
from __future__ import annotations

import re

from tests.bot.proc import running_bot
from tests.conftest import wait_for
from tests.exchanges.backpack_server import BackpackServer
from tests.exchanges.test_bot_outages_on_backpack import IID, config
from tests.full_disk import fill, small_tmpfs


def test_a_full_disk_under_the_database_cancels_the_grid_on_the_venue_and_exits_1(home):
    with small_tmpfs(home / "database") as database, BackpackServer(center=150.0, amplitude=3.0, period=4.0) as server:
        with running_bot(home, config(home, server.url), "--no-web") as proc:
            wait_for(lambda: len(server.open) == 8 and (home / "logs" / IID / "heartbeat").exists(), timeout=60,
                     what="the grid placed and the loop running")
            fill(database)
            out, err = proc.communicate(timeout=90)
        assert server.open == {}, f"resting on the venue after the bot ended: {server.open}"
    assert proc.returncode == 1, out + err
    assert "Traceback" not in err, err
    # the first write to fail names it: the database's, or the placements journal's beside it
    assert "cannot write its database" in err and ("database or disk is full" in err
                                                    or "No space left on device" in err), err
    reason = (home / "logs" / IID / "stop_reason").read_text()     # what `list` and the exited alert say
    # 8, or 7 when the full disk refused the journal of a fill's counter-order, which then was never sent
    assert "cannot write its database" in reason and re.search(r"its [78] resting orders were cancelled", reason), reason
