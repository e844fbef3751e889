"""Fill history as CSV: what a trader hands to a spreadsheet or an accountant."""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Iterable

COLUMNS = ("time_utc", "trade_id", "side", "price", "qty", "fee", "level")


def fills_to_csv(fills: Iterable[dict]) -> str:
    """Oldest first (the API gives newest first), times as ISO 8601 UTC beside the raw trade id."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for f in reversed(list(fills)):
        when = datetime.fromtimestamp(f["timestamp"] / 1000, timezone.utc).isoformat(timespec="milliseconds")
        writer.writerow((when, f.get("trade_id"), f.get("side"), f.get("price"), f.get("qty"), f.get("fee"), f.get("level")))
    return out.getvalue()
