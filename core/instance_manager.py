"""InstanceRegistry (logs/instances.json) and InstanceManager (stats and checks over it).

The registry is a cache of what the daemons report; the locked pid files are the truth. Every
mutation happens under an flock on logs/instances.lock and is written to a unique temp file,
fsynced and os.replace'd, so a reader never sees half a file and two writers never lose an update.
A corrupt file is kept aside and the registry rebuilt from the pid files, so `list` never crashes.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from collections.abc import Callable, Iterator

from core import proc
from core.paths import INSTANCE_ID_RE, InstancePaths, registry_path
from core.pidfile import is_locked, read_pid

LIVE_STATES = ("starting", "running", "backoff", "stopping")
FINAL_STATES = ("stopped", "exited", "fatal")


class InstanceRegistry:
    """The seeds' API over logs/instances.json: register, unregister, update, get, list, cleanup."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = registry_path(self.home)
        self.lock_path = self.path.with_name("instances.lock")

    # -- storage ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, dict]]:
        """Hold the registry lock; yields the data, written back atomically on normal exit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self._read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)
        finally:
            os.close(fd)

    def _parse(self) -> dict[str, dict] | None:
        """The file's records: {} when missing or empty, None when corrupt (bad JSON, not UTF-8, wrong shape)."""
        try:
            raw = self.path.read_bytes()
            data = json.loads(raw) if raw.strip() else {}
        except FileNotFoundError:
            return {}
        except ValueError:  # JSONDecodeError and UnicodeDecodeError both
            return None
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            return None
        return data

    def _read(self) -> dict[str, dict]:
        """Under the lock: the records, a corrupt file moved aside (kept) and rebuilt from the pid files."""
        data = self._parse()
        if data is not None:
            return data
        aside = self.path.with_name(f"instances.json.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}")
        os.replace(self.path, aside)
        data = self.rebuild_from_pid_files()
        self._write(data)
        return data

    def _write(self, data: dict[str, dict]) -> None:
        tmp = self.path.with_name(f".instances.{os.getpid()}.{time.monotonic_ns()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(data, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def load(self) -> dict[str, dict]:
        """A consistent snapshot without taking the lock; a corrupt file is repaired under it."""
        data = self._parse()
        if data is not None:
            return data
        try:
            with self.locked() as data:
                return dict(data)
        except OSError:  # read-only home: show what the pid files say
            return self.rebuild_from_pid_files()

    def rebuild_from_pid_files(self) -> dict[str, dict]:
        """Records for every instance whose daemon still holds its pid file lock."""
        out: dict[str, dict] = {}
        for pid_file in sorted(self.path.parent.glob("*/daemon.pid")):
            iid = pid_file.parent.name
            pid = read_pid(pid_file)
            if not INSTANCE_ID_RE.match(iid) or not pid or not is_locked(pid_file):
                continue
            paths = InstancePaths(iid, pid_file.parent)
            bot_pid = read_pid(paths.bot_pid)
            out[iid] = {
                "instance_id": iid, "pid": pid, "pid_create_time": proc.create_time(pid),
                "bot_pid": bot_pid, "bot_create_time": proc.create_time(bot_pid),
                "log_dir": str(paths.log_dir), "web_port": read_pid(paths.web_port_file),
                "status": "running", "restart_count": 0, "config_file": "",
                "last_error": "registry rebuilt from pid files", "registered_at": time.time(),
                "last_updated": time.time(),
            }
        return out

    # -- the seeds' API --------------------------------------------------------------------
    def register(self, instance_id: str, info: dict[str, object]) -> None:
        now = time.time()
        with self.locked() as data:
            data[instance_id] = {"restart_count": 0, **info, "instance_id": instance_id,
                                 "registered_at": now, "last_updated": now}

    def unregister(self, instance_id: str) -> bool:
        with self.locked() as data:
            return data.pop(instance_id, None) is not None

    def update(self, instance_id: str, updates: dict[str, object] | None = None, /, **fields: object) -> None:
        """Merge fields into a record (re-creating it if a rebuild lost it)."""
        with self.locked() as data:
            rec = data.setdefault(instance_id, {"instance_id": instance_id, "registered_at": time.time()})
            rec.update(updates or {}, **fields)
            rec["last_updated"] = time.time()

    def get(self, instance_id: str) -> dict | None:
        rec = self.load().get(instance_id)
        return annotate(rec) if rec else None

    def list_instances(self, include_dead: bool = False) -> list[dict]:
        recs = [annotate(r) for r in self.load().values()]
        return sorted((r for r in recs if include_dead or r["alive"]), key=lambda r: r["instance_id"])

    def cleanup_dead_instances(self) -> int:
        """Forget every instance whose daemon is gone; returns how many were removed."""
        with self.locked() as data:
            dead = [iid for iid, rec in data.items() if not is_daemon_alive(rec)]
            for iid in dead:
                del data[iid]
        return len(dead)

    def get_instance_by_port(self, port: int) -> dict | None:
        for rec in self.list_instances():
            if rec.get("web_port") == port:
                return rec
        return None

    def mutate(self, fn: Callable[[dict[str, dict]], object]) -> object:
        """Run fn(data) under the lock (check-then-register without a race); returns its result."""
        with self.locked() as data:
            return fn(data)


def is_daemon_alive(rec: dict) -> bool:
    return proc.is_alive(rec.get("pid"), rec.get("pid_create_time"))


def annotate(rec: dict) -> dict:
    """A record plus what is true now: alive, bot_alive, state (dead when the daemon vanished)."""
    out = dict(rec)
    out["alive"] = is_daemon_alive(rec)
    out["bot_alive"] = out["alive"] and proc.is_alive(rec.get("bot_pid"), rec.get("bot_create_time"))
    status = rec.get("status", "unknown")
    out["state"] = status if out["alive"] or status in FINAL_STATES else "dead"
    # fatal, dead, or a bot that ended itself with a reason (stop-loss, orders left): `list` shows them
    out["needs_attention"] = out["state"] in ("fatal", "dead") or (out["state"] == "exited" and bool(rec.get("stop_reason")))
    started = rec.get("started_at")
    out["uptime_s"] = round(time.time() - started, 1) if out["alive"] and started else None
    return out


class InstanceManager:
    """Stats and config checks over the registry (the second CLI of the seeds, now in one place)."""

    def __init__(self, home: Path, registry: InstanceRegistry | None = None) -> None:
        self.home = Path(home)
        self.registry = registry or InstanceRegistry(self.home)

    def get_instance_stats(self, instance_id: str) -> dict | None:
        rec = self.registry.get(instance_id)
        if rec is None:
            return None
        daemon = proc.process_info(proc.get_process(rec.get("pid"), rec.get("pid_create_time")))
        bot = proc.process_info(proc.get_process(rec.get("bot_pid"), rec.get("bot_create_time")))
        return {
            "instance_id": instance_id, "state": rec["state"], "restart_count": rec.get("restart_count", 0),
            "web_port": rec.get("web_port"), "daemon": _brief(daemon), "bot": _brief(bot),
        }

    def get_all_stats(self) -> list[dict]:
        return [s for r in self.registry.list_instances(include_dead=True)
                if (s := self.get_instance_stats(r["instance_id"])) is not None]

    def validate_instance_config(self, instance_id: str) -> list[str]:
        """Errors of the config an instance was started from ([] when valid)."""
        from core.config_manager import ConfigError, ConfigManager

        rec = self.registry.get(instance_id)
        cm = ConfigManager(self.home)
        path = rec.get("config_file") if rec else None
        path = path or cm.find_active(instance_id)
        if not path:
            return [f"instance_id: {instance_id!r} has no registry record and no config in {cm.active_dir}"]
        try:
            cm.load(path, instance_id=instance_id)
        except ConfigError as exc:
            return exc.errors
        return []


def _brief(info: dict | None) -> dict | None:
    if info is None:
        return None
    return {"pid": info["pid"], "cpu_percent": info["cpu_percent"], "memory_mb": info["memory_info"]["rss_mb"],
            "threads": info["num_threads"], "uptime_s": info["uptime_s"]}
