"""What the notifier must not forget across its own crash or a reboot, in logs/.notifier/state.json.

- offsets: how far each events file has been taken in: a core.events.read_rotating cursor (the
  file's inode beside the byte offset, so a rotation is noticed); a bare int (a state saved before
  rotation existed) is still read, as an offset into the current file;
- pending: events taken in but not yet delivered to every target, with their retry schedule;
- sent: ids delivered to every target (pruned after SENT_KEEP_S), so a line read twice is not resent;
- summary: the day of the last daily summary and each instance's books then (for "today" figures).

Targets are stored as fingerprints, never as URLs (they hold tokens); they are matched against
the configured URLs at send time. The file is rewritten atomically and fsync'd after each change,
so a crash loses at most the note of a send that happened: that event goes out again
(at-least-once), never silently missing.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from core.atomic import write_text_atomic
from core.notify_start import notifier_dir

SENT_KEEP_S = 14 * 86400


def fingerprint(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class State:
    def __init__(self, home: Path) -> None:
        self.path = notifier_dir(home) / "state.json"
        self.offsets: dict[str, dict | int] = {}
        self.pending: dict[str, dict] = {}
        self.sent: dict[str, float] = {}
        self.summary: dict = {"day": None, "base": {}}

    def load(self) -> str | None:
        """Read the saved state; a corrupt file is kept aside (named in the returned note) and we start over."""
        try:
            data = json.loads(self.path.read_text())
            self.offsets, self.pending, self.sent = dict(data["offsets"]), dict(data["pending"]), dict(data["sent"])
            self.summary = dict(data.get("summary") or self.summary)
            return None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"state.json.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            return f"state file unreadable ({exc.__class__.__name__}), kept as {aside.name}; starting over"

    def save(self) -> None:
        now = time.time()
        self.sent = {i: t for i, t in self.sent.items() if now - t < SENT_KEEP_S}
        write_text_atomic(self.path, json.dumps({"offsets": self.offsets, "pending": self.pending, "sent": self.sent,
                                                  "summary": self.summary}),
                          mode=0o600)
        fd = os.open(self.path, os.O_RDONLY)  # the rename is done; make its data survive a power cut
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def known(self, event_id: str) -> bool:
        return event_id in self.sent or event_id in self.pending

    def add(self, event: dict, targets: list[str], now: float) -> None:
        self.pending[event["id"]] = {"event": event, "targets": [fingerprint(u) for u in targets],
                                     "attempts": 0, "next_at": now}

    def delivered(self, event_id: str, now: float) -> None:
        self.pending.pop(event_id, None)
        self.sent[event_id] = now
