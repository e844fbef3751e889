"""The per-instance record: logs/{id}/instance.json, the truth the shared registry only caches.

One writer at a time: the `start` CLI writes the first record before the supervisor exists, the
supervisor rewrites it (its own file only, no lock, no shared state) while it lives, and the CLI
writes again only once no supervisor holds the instance (the trader's `stop` sets desired_state,
a command that ended an orphaned bot says so). Each write is a whole-file atomic replace, so a
reader sees the old record or the new one, never half of one.

A record that cannot be read or has wrong types raises CorruptRecord: readers show the instance
as `corrupt` with its id instead of crashing or dropping it.
"""
from __future__ import annotations

import os

from core import cjson  # json's text without json's pure-Python layer: the supervisor writes records
from core.atomic import write_text_atomic

MAX_BYTES = 256 * 1024  # a record is about 1 KB; a bigger file is not ours
FIRST_READ = 16 * 1024

# field -> the types it may hold (None always allowed): what readers rely on before doing arithmetic
_NUM = (int, float)
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "instance_id": (str,), "config_file": (str,), "log_dir": (str,), "db_path": (str,), "account": (str,),
    "symbol": (str,), "exchange": (str,), "web_port": (int,), "stop_timeout": _NUM, "started_at": _NUM,
    "desired_state": (str,), "status": (str,), "restart_count": (int,), "last_error": (str,),
    "stop_reason": (str,), "exit_code": (int,), "pid": (int,), "pid_create_time": _NUM, "bot_pid": (int,),
    "bot_create_time": _NUM, "cpu_percent": _NUM, "memory_mb": _NUM, "cpu_warning": (bool,),
    "checked_at": _NUM, "health_check_interval": _NUM, "registered_at": _NUM, "last_updated": _NUM,
    "db_identity": (list,),
}
# What conflict checks and `restart` need; kept in the shared claims file as well.
CLAIM_FIELDS = ("instance_id", "log_dir", "db_path", "web_port", "account", "symbol", "exchange", "config_file")


class CorruptRecord(Exception):
    """The record exists but is not a record we wrote (bad JSON, not an object, wrong types)."""


def check_types(rec: object, fields: dict[str, tuple[type, ...]] = FIELD_TYPES) -> dict:
    """rec itself when it is an object whose known fields have their types, else CorruptRecord."""
    if not isinstance(rec, dict):
        raise CorruptRecord(f"not a JSON object but {type(rec).__name__}")
    for key, types in fields.items():
        value = rec.get(key)
        if value is None:
            continue
        if isinstance(value, bool) and bool not in types:  # True is an int to Python, not to us
            raise CorruptRecord(f"{key}: {value!r} is not {types[0].__name__}")
        if not isinstance(value, types):
            raise CorruptRecord(f"{key}: {value!r} is not {types[0].__name__}")
    return rec


def read_record(path: str | os.PathLike) -> dict | None:
    """The record, None when there is none, CorruptRecord when there is one we cannot trust.

    checked_at is the later of the field and the file's mtime: a supervisor checks in by touching
    its record (`os.utime`, 4 us) and rewrites it only when a field changed (0.3 ms on ext4).
    Plain os.open/os.read: `list` reads one record per instance, and the io stack costs double.
    A first read of FIRST_READ bytes: asking for MAX_BYTES at once makes malloc map, shrink and
    unmap a 256 KB buffer for each ~1 KB record (30 us, a third of `list`'s cost per instance)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptRecord(f"{path}: {exc.strerror}") from None
    try:
        raw = os.read(fd, FIRST_READ)
        if len(raw) == FIRST_READ:  # a big one: the rest, up to one byte past the limit
            raw += os.read(fd, MAX_BYTES + 1 - FIRST_READ)
        touched = os.fstat(fd).st_mtime
    except IsADirectoryError:
        raise CorruptRecord(f"{path} is a directory") from None
    except OSError as exc:
        raise CorruptRecord(f"{path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise CorruptRecord(f"{path} is over {MAX_BYTES} bytes")
    if not raw.strip():
        raise CorruptRecord(f"{path} is empty")
    try:
        rec = check_types(cjson.loads(raw))
    except ValueError as exc:
        raise CorruptRecord(f"{path}: {exc}") from None
    if rec.get("checked_at") is not None and touched > rec["checked_at"]:
        rec["checked_at"] = touched
    return rec


def record_text(rec: dict) -> str:
    """The record as its file holds it: compact JSON, keys sorted (one writer's text is every writer's)."""
    return cjson.dumps(rec, separators=(",", ":"), sort_keys=True)


def write_record(path: str | os.PathLike, rec: dict, durable: bool = False) -> None:
    """Replace the record atomically; durable also fsyncs it and its directory (desired state
    changes must survive a power loss, a supervisor's frequent check-ins need not)."""
    write_text_atomic(path, record_text(rec), mode=0o600, durable=durable)
