"""The fleet's one notifier: follows every events file, sends each event to its URLs, retries, remembers.

`daemon-manager notifier [-d]` runs it (one per home: logs/.notifier/notifier.pid is flock'd for
life). Each turn it reads what was appended to logs/*/events.jsonl and logs/.fleet.events.jsonl
since the saved offsets (after a rotation, the rest of the rotated `.1` file first), queues each
new event (de-duplicated by id) for the URLs that want its kind, and sends what is due. A target
that fails is retried with exponential backoff (capped) until it succeeds or the event is older
than give_up_s; an invalid URL is dropped at once.
Everything is saved to state.json before and after each send, so a crash or a reboot resumes where
it stopped: delivery is at least once, and exactly once unless it dies between a send and its note.
"""
from __future__ import annotations

import signal
import time
from pathlib import Path

from core.events import FLEET, append_to, fleet_events_path, read_rotating, rotate_if_over
from core.log_manager import stamp
from core.pidfile import PidLock
from notify import deliver
from notify.messages import render
from notify.settings import Settings, SettingsError
from notify.state import State, fingerprint, notifier_dir
from notify.summary import summary_events


class Notifier:
    def __init__(self, home: Path, interval: float = 2.0, max_backoff: float = 300.0,
                 give_up_s: float = 3 * 86400.0, max_age_s: float = 86400.0) -> None:
        self.home = Path(home)
        self.interval, self.max_backoff, self.give_up_s, self.max_age_s = interval, max_backoff, give_up_s, max_age_s
        self.settings = Settings(self.home)
        self.state = State(self.home)
        self.dir = notifier_dir(self.home)
        self.stop = False

    # -- logging (masked) ------------------------------------------------------------------
    def log(self, msg: str, level: str = "INFO") -> None:
        try:
            masker = self.settings.masker()
        except SettingsError:
            masker = str
        line = masker(f"{stamp()} {level} {msg}")
        with open(self.dir / "notifier.log", "a") as fh:
            fh.write(line + "\n")

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> int:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = PidLock(self.dir / "notifier.pid")
        lock.acquire()  # AlreadyLocked: the caller says which pid holds it
        try:
            signal.signal(signal.SIGTERM, self._on_stop)
            signal.signal(signal.SIGINT, self._on_stop)
            note = self.state.load()
            self.log(f"notifier started; {len(self.state.pending)} events pending" + (f"; {note}" if note else ""))
            while not self.stop:
                self.turn(time.time())
                self._sleep()
            self.log("notifier stopped")
            return 0
        finally:
            lock.release()

    def _on_stop(self, *_: object) -> None:
        self.stop = True

    def _sleep(self) -> None:
        due = min((p["next_at"] for p in self.state.pending.values()), default=float("inf"))
        end = time.time() + max(0.05, min(self.interval, due - time.time()))
        while not self.stop and time.time() < end:
            time.sleep(min(0.2, max(0.0, end - time.time())))

    def turn(self, now: float) -> None:
        """One pass: take in new events, then send whatever is due."""
        try:
            self.settings.fleet()
        except SettingsError as exc:
            self.log(str(exc), "ERROR")  # nothing is taken in: events wait in their files
            return
        self._daily_summary(now)
        if self._take_in(now):
            self.state.save()
        # The fleet file's one rotator: `resume` only appends, and this process is the home's only
        # notifier (notifier.pid is flock'd), which also writes the daily summaries into it.
        rotate_if_over(fleet_events_path(self.home), lambda m: self.log(m, "ERROR"))
        for event_id in [i for i, p in self.state.pending.items() if p["next_at"] <= now]:
            self._send(event_id, time.time())

    def _daily_summary(self, now: float) -> None:
        """Once a day from notify.daily_summary_hour on: the summaries join the fleet's events file."""
        hour, local = self.settings.summary_hour, time.localtime(now)
        day = time.strftime("%Y-%m-%d", local)
        if hour is None or local.tm_hour < hour or self.state.summary.get("day") == day:
            return
        events, base = summary_events(self.home, self.state.summary.get("base") or {})
        for event in events:
            append_to(fleet_events_path(self.home), event, lambda m: self.log(m, "ERROR"))
        self.state.summary = {"day": day, "base": base}
        self.state.save()

    def _files(self) -> list[Path]:
        return sorted(self.home.glob("logs/*/events.jsonl")) + [fleet_events_path(self.home)]

    def _take_in(self, now: float) -> bool:
        changed = False
        for path in self._files():
            key = str(path.relative_to(self.home))
            cursor = self.state.offsets.get(key)
            events, new_cursor = read_rotating(path, cursor)
            for event in events:
                if self.state.known(event["id"]):
                    continue
                if now - float(event.get("time") or now) > self.max_age_s:
                    self.log(f"skipped stale {event['kind']} event of {event.get('instance')} ({event['id']})")
                    continue
                targets = self._channel(event).wants(event["kind"])
                if targets:
                    self.state.add(event, targets, now)
            if new_cursor != cursor:
                self.state.offsets[key] = new_cursor
                changed = True
        return changed

    def _channel(self, event: dict):
        return self.settings.fleet() if event.get("instance") == FLEET else self.settings.instance(event["instance"]).channel

    def _send(self, event_id: str, now: float) -> None:
        item = self.state.pending[event_id]
        event = item["event"]
        if event.get("instance") == FLEET:
            symbol = config = ""
        else:
            info = self.settings.instance(event["instance"])
            symbol, config = info.symbol, info.config
        by_print = {fingerprint(u): u for u in self._channel(event).urls}
        masker = self.settings.masker()
        title, body = (masker(t) for t in render(event, symbol, config))
        left = []
        for fp in item["targets"]:
            url = by_print.get(fp)
            if url is None:
                self.log(f"{event['kind']} {event_id}: a target was removed from the settings; not sent there")
                continue
            failure = deliver.send(url, title, body, masker)
            if failure is None:
                self.log(f"sent {event['kind']} of {event.get('instance')} ({event_id}) to {masker(url)}")
            elif failure.permanent:
                self.log(f"{event['kind']} {event_id}: {masker(url)}: {failure}; dropped", "ERROR")
            else:
                left.append(fp)
                self.log(f"{event['kind']} {event_id}: {masker(url)}: {failure}; will retry", "WARNING")
        if not left:
            self.state.delivered(event_id, now)
        elif now - float(event.get("time") or now) > self.give_up_s:
            self.log(f"gave up on {event['kind']} {event_id} after {item['attempts'] + 1} attempts", "ERROR")
            self.state.delivered(event_id, now)
        else:
            item["targets"], item["attempts"] = left, item["attempts"] + 1
            item["next_at"] = now + min(self.max_backoff, 2.0 ** item["attempts"])
        self.state.save()
