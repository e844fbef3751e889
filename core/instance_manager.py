"""InstanceRegistry: per-instance records (the truth) behind the seeds' API, plus the shared claims.

Each instance keeps its own record beside its pid file (logs/{id}/instance.json, core/
instance_record.py), rewritten only by its one writer: the supervisor never touches shared state,
so 200 supervisors cost no more than 200 small files and a bot's respawn waits for no lock.
`logs/instances.json` holds only the claims that need a lock across instances (ids, ports,
databases, accounts, and where each instance's log dir is) and is rebuilt from the records
whenever it is missing, empty, corrupt or of the wrong shape. Instances are found from the claims,
from logs/*/, from a small index of custom log dirs (logs/.log_dirs/{id}) and from the abstract
sockets of live supervisors, so no lost or broken file makes a running instance unmanageable.

Paths are plain os.path strings and JSON goes through core/cjson.py: `list` (run by `watch -n 1`)
reads the registry through here, and pathlib and json would load re, enum, urllib.parse and
ipaddress, about half of each run whatever the fleet's size. core.paths (pathlib) is imported only
where a record is written (instance_paths below), never by a plain `list`. For the same reason no
contextlib (it loads collections and functools): try/except, and a small class for locked().
"""
from __future__ import annotations

import fcntl
import os
import time
from _collections_abc import Callable  # collections.abc, without loading `collections`

from core import cjson, proc
from core.atomic import private_opener, write_text_atomic
from core.durable_batch import DurableBatch
from core.instance_files import RECORD, InstanceFiles, is_instance_id
from core.instance_record import CLAIM_FIELDS, FIELD_TYPES, CorruptRecord, check_types, read_record, record_text
from core.pidfile import holder_pid, locked_ids
from core.states import ATTENTION_STATES, FINAL_STATES, LIVE_STATES, State

KEEP_CORRUPT = 3          # set-aside corrupt copies of the claims file kept for a post-mortem
MISSED_CHECKINS = 3       # health intervals without a check-in before a supervisor is `unresponsive`
_CLAIM_TYPES = {k: FIELD_TYPES[k] for k in CLAIM_FIELDS}


class InstanceRegistry:
    """The seeds' API (register, unregister, update, get, list_instances, cleanup_dead_instances,
    get_instance_by_port) over the claims file and the per-instance records."""

    def __init__(self, home: str | os.PathLike) -> None:
        self.home = os.fspath(home)
        logs = os.path.join(self.home, "logs")
        self.path = os.path.join(logs, "instances.json")
        self.lock_path = os.path.join(logs, "instances.lock")
        self.index_dir = os.path.join(logs, ".log_dirs")

    # -- the claims file -------------------------------------------------------------------
    def _parse_claims(self) -> dict[str, dict] | None:
        """Valid claims by id; {} when missing or empty, None when corrupt as a whole. A single
        entry of the wrong shape is dropped: the instance's own record still names it."""
        try:
            with open(self.path, "rb") as fh:
                raw = fh.read()
            data = cjson.loads(raw) if raw.strip() else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):  # a directory, unreadable, not JSON, not UTF-8
            return None
        if not isinstance(data, dict):
            return None
        good = {}
        for iid, claim in data.items():
            try:
                if is_instance_id(iid) and check_types(claim, _CLAIM_TYPES):
                    good[iid] = claim
            except CorruptRecord:
                continue
        return good

    def _set_aside(self) -> None:
        """Move a corrupt claims file out of the way (kept for a post-mortem, the oldest pruned)."""
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns()}"
        logs = os.path.dirname(self.path)
        try:
            os.replace(self.path, os.path.join(logs, f"instances.json.corrupt-{stamp}"))
        except FileNotFoundError:
            pass
        with os.scandir(logs) as entries:
            old = sorted(e.path for e in entries if e.name.startswith("instances.json.corrupt-"))
        for extra in old[:-KEEP_CORRUPT]:
            try:
                if os.path.isdir(extra) and not os.path.islink(extra):
                    import shutil

                    shutil.rmtree(extra)
                else:
                    os.unlink(extra)
            except OSError:
                pass

    def _write_claims(self, claims: dict[str, dict], batch: DurableBatch) -> None:
        # compact: an indent makes json use its pure-Python encoder (start-all rewrites this per batch)
        batch.stage(self.path, cjson.dumps(claims, separators=(",", ":"), sort_keys=True))

    # -- finding instances -----------------------------------------------------------------
    def instance_dirs(self, claims: dict[str, dict] | None = None) -> dict[str, str]:
        """Every instance id this home knows of -> its log dir (claims, logs/*/, the index of
        custom log dirs, live supervisors' sockets)."""
        claims = self._parse_claims() if claims is None else claims
        dirs: dict[str, str] = {}
        logs, home = os.path.dirname(self.path), self.home
        try:
            for entry in os.scandir(logs):
                if entry.is_dir(follow_symlinks=False) and is_instance_id(entry.name) and \
                        os.path.exists(os.path.join(entry.path, "instance.json")):
                    dirs[entry.name] = entry.path
        except OSError:
            pass
        try:
            for entry in os.scandir(self.index_dir):
                if is_instance_id(entry.name):
                    try:
                        with open(entry.path) as fh:
                            text = fh.read(4096).strip()
                    except (OSError, UnicodeDecodeError):
                        continue
                    if text:
                        dirs[entry.name] = text
        except OSError:
            pass
        for iid, claim in (claims or {}).items():
            if claim.get("log_dir"):
                dirs[iid] = os.path.join(home, os.path.expanduser(claim["log_dir"]))  # an absolute one wins
        for iid in locked_ids(self.home):
            if is_instance_id(iid):
                dirs.setdefault(iid, os.path.join(logs, iid))
        return dirs

    def _read_one(self, iid: str, log_dir: str, claim: dict | None) -> dict | None:
        """The instance's record; a corrupt one as status `corrupt` with its id; a lost one
        rebuilt from its claim and its live supervisor (or None when nothing is left of it)."""
        try:
            rec = read_record(os.path.join(log_dir, "instance.json"))
        except CorruptRecord as exc:
            return {**(claim or {}), "instance_id": iid, "log_dir": str(log_dir), "status": State.CORRUPT,
                    "last_error": f"unreadable record: {exc}", "pid": None, "bot_pid": None}
        if rec is not None:
            rec["instance_id"] = iid  # the directory names it; a record cannot claim another id
            rec.setdefault("log_dir", str(log_dir))
            return rec
        pid = holder_pid(self.home, iid)
        if pid is None and claim is None:
            return None
        rec = {**(claim or {}), "instance_id": iid, "log_dir": str(log_dir), "status": State.DEAD,
               "last_error": "record lost"}
        if pid is not None:
            rec.update(pid=pid, pid_create_time=proc.create_time(pid), status=State.RUNNING,
                       last_error="record lost; the supervisor is alive and rewrites it at its next check-in")
        return rec

    def _view(self, claims: dict[str, dict] | None) -> dict[str, dict]:
        out = {}
        for iid, log_dir in sorted(self.instance_dirs(claims).items()):
            rec = self._read_one(iid, log_dir, (claims or {}).get(iid))
            if rec is not None:
                out[iid] = rec
        return out

    def load(self) -> dict[str, dict]:
        """Every known instance's record by id (no lock: each record is replaced atomically). A
        corrupt claims file is set aside and rebuilt from the records on the way, when writable."""
        claims = self._parse_claims()
        if claims is None:
            try:
                with self.locked() as data:
                    return dict(data)
            except OSError:  # a home we cannot write: what the records say, unrepaired
                pass
        return self._view(claims)

    # -- writing ---------------------------------------------------------------------------
    def locked(self) -> Locked:
        """`with registry.locked() as data:` holds the claims lock; data is every record by id.
        Records added, changed or removed in it are written on normal exit, and the claims file
        rebuilt to match, all made durable together (core/durable_batch.py: one flush for
        start-all's batch, not two fsyncs a file)."""
        return Locked(self)

    def _save(self, data: dict[str, dict], before: dict[str, str], claims: dict[str, dict] | None) -> None:
        """What a locked() block changed: records written or removed, the claims rebuilt to match."""
        for iid in before.keys() - data.keys():
            self._forget(iid, cjson.loads(before[iid]).get("log_dir") or "")
        batch = DurableBatch()
        try:
            for iid, rec in data.items():
                changed = cjson.dumps(rec, sort_keys=True, default=str) != before.get(iid)
                if changed and rec.get("status") != State.CORRUPT:
                    self._write_record(iid, rec, batch)
            wanted = {iid: {k: rec.get(k) for k in CLAIM_FIELDS} for iid, rec in data.items()
                      if rec.get("status") != State.CORRUPT}
            wanted.update({iid: claims[iid] for iid, rec in data.items()
                           if rec.get("status") == State.CORRUPT and claims and iid in claims})
            if wanted != claims:
                self._write_claims(wanted, batch)
            batch.commit()
        finally:
            batch.discard()  # what an error left staged: no temp file behind

    def _write_record(self, iid: str, rec: dict, batch: DurableBatch) -> None:
        paths = instance_paths(self.home, iid, rec.get("log_dir"))
        rec["log_dir"] = str(paths.log_dir)
        kept = {k: v for k, v in rec.items() if not k.startswith("_")}
        batch.stage(paths.record, record_text(kept))
        default = instance_paths(self.home, iid).log_dir
        if paths.log_dir != default:  # found again even if the claims file is lost
            write_text_atomic(os.path.join(self.index_dir, iid), f"{paths.log_dir}\n", mode=0o600)

    def _forget(self, iid: str, log_dir: str) -> None:
        files = [os.path.join(log_dir, RECORD)] if log_dir else []  # (without one it has no file)
        for path in (*files, os.path.join(self.index_dir, iid)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

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
        """Merge fields into a record (re-creating it if it was lost). Only for an instance no
        supervisor owns: a live supervisor is its record's one writer."""
        with self.locked() as data:
            rec = data.setdefault(instance_id, {"instance_id": instance_id, "registered_at": time.time()})
            rec.update(updates or {}, **fields)
            rec["last_updated"] = time.time()

    def get(self, instance_id: str) -> dict | None:
        return self.get_many([instance_id])[instance_id]

    def get_many(self, instance_ids: list[str]) -> dict[str, dict | None]:
        """get() of each id with one read of the claims and one scan of logs/ (start-all's fifty
        get()s each parsed every claim and listed every log dir: O(N^2))."""
        claims = self._parse_claims() or {}
        dirs = self.instance_dirs(claims)
        out: dict[str, dict | None] = {}
        for iid in instance_ids:
            log_dir = dirs.get(iid) if is_instance_id(iid) else None
            rec = self._read_one(iid, log_dir, claims.get(iid)) if log_dir else None
            out[iid] = annotate(rec) if rec else None
        return out

    def list_instances(self, include_dead: bool = False) -> list[dict]:
        recs = [annotate(r) for r in self.load().values()]
        for rec in recs:
            if rec["state"] == State.UNRESPONSIVE:
                self._tell_unresponsive(rec)
        return [r for r in recs if include_dead or r["alive"]]

    def _tell_unresponsive(self, rec: dict) -> None:
        """One `unresponsive` event per silence (keyed by its last check-in), for the notifier: the
        supervisor cannot say it itself. A marker file beside the record remembers it was said."""
        paths = InstanceFiles.for_instance(self.home, rec["instance_id"], rec.get("log_dir"))
        marker = os.path.join(paths.log_dir, "unresponsive.reported")
        key = str(rec.get("checked_at"))
        try:
            with open(marker) as fh:
                if fh.read() == key:
                    return
        except (OSError, ValueError):  # missing, unreadable, not UTF-8: say it again
            pass
        from core.events import UNRESPONSIVE, append_event

        silent = time.time() - float(rec.get("checked_at") or 0)
        try:
            write_text_atomic(marker, key)
            append_event(paths, UNRESPONSIVE, reason=f"supervisor pid {rec.get('pid')} has not checked in for "
                                                     f"{silent:.0f} s (health_check_interval "
                                                     f"{rec.get('health_check_interval'):g} s)")
        except OSError:  # a home we cannot write: the next list says it again
            pass

    def cleanup_dead_instances(self) -> int:
        """Forget every instance whose supervisor is gone; never one that lives, whatever its files say."""
        with self.locked() as data:
            dead = [iid for iid, rec in data.items()
                    if not (a := annotate(rec))["alive"] and not a["bot_alive"] and holder_pid(self.home, iid) is None]
            for iid in dead:
                del data[iid]
        return len(dead)

    def get_instance_by_port(self, port: int) -> dict | None:
        for rec in self.list_instances():
            if rec.get("web_port") == port:
                return rec
        return None

    def mutate(self, fn: Callable[[dict[str, dict]], object]) -> object:
        """Run fn(records) under the claims lock (check-then-claim without a race); returns its result."""
        with self.locked() as data:
            return fn(data)

    def end_orphans(self, recs: list[dict], by: str) -> list[str]:
        """End the bot groups of supervisors that died with their bot alive: SIGTERM (the bot
        cancels its orders), SIGKILL to the group after stop_timeout; record it. Returns messages."""
        orphans = [r for r in recs if r.get("state") == State.ORPHANED and r.get("bot_alive")]
        if not orphans:
            return []
        import signal  # only here: its enums cost every `list` a millisecond

        fds = {}
        for rec in orphans:
            fd = proc.open_pidfd(rec.get("bot_pid"), rec.get("bot_create_time"))
            if fd is not None:
                fds[fd] = rec
                proc.kill_group(rec["bot_pid"], rec.get("bot_create_time"), signal.SIGTERM)
        try:
            timeout = max((float(r.get("stop_timeout") or 10) for r in fds.values()), default=0)
            proc.wait_exit(list(fds), timeout)
        finally:
            for fd in fds:
                os.close(fd)
        messages = []
        for rec in orphans:
            proc.kill_group(rec["bot_pid"], rec.get("bot_create_time"))
            note = (f"supervisor died with its bot alive: `{by}` ended the bot's process group "
                    f"(pid {rec['bot_pid']}) at {time.strftime('%Y-%m-%d %H:%M:%S')}")
            if holder_pid(self.home, rec["instance_id"]) is None:  # nobody else writes this record
                try:
                    self.update(rec["instance_id"], status=State.ORPHANED, last_error=note, bot_pid=None,
                                bot_create_time=None, pid=None)
                except OSError:  # unwritable: the note below still tells the trader
                    pass
            rec.update(state=State.ORPHANED, last_error=note, bot_alive=False, needs_attention=True)
            messages.append(f"{rec['instance_id']}: {note}")
            from core.events import ORPHAN_ENDED, append_event

            append_event(InstanceFiles.for_instance(self.home, rec["instance_id"], rec.get("log_dir")), ORPHAN_ENDED,
                         reason=note, bot_pid=rec["bot_pid"])
        return messages


class Locked:
    """InstanceRegistry.locked(): the claims lock and every record by id for a `with` block,
    written back (InstanceRegistry._save) only when the block ends normally. A class rather than
    @contextlib.contextmanager because contextlib loads collections and functools, a tenth of a
    `list`, which never writes."""

    def __init__(self, registry: InstanceRegistry) -> None:
        self.registry = registry

    def __enter__(self) -> dict[str, dict]:
        reg = self.registry
        os.makedirs(os.path.dirname(reg.path), exist_ok=True)
        self.fd = private_opener(reg.lock_path, os.O_RDWR | os.O_CREAT)  # 0600: no other user can freeze us
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.claims = reg._parse_claims()
            if self.claims is None:
                reg._set_aside()
            self.data = reg._view(self.claims)
            self.before = {iid: cjson.dumps(rec, sort_keys=True, default=str) for iid, rec in self.data.items()}
        except BaseException:
            os.close(self.fd)
            raise
        return self.data

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            if exc_type is None:
                self.registry._save(self.data, self.before, self.claims)
        finally:
            os.close(self.fd)


def instance_paths(home: str | os.PathLike, iid: str, log_dir: str | None = None) -> InstancePaths:  # noqa: F821
    """InstancePaths.for_instance for the writers: the record's stored log_dir is its Path form.
    Imported here, when first needed, so that a plain `list` never loads pathlib."""
    from core.paths import InstancePaths

    return InstancePaths.for_instance(home, iid, log_dir)


def is_daemon_alive(rec: dict) -> bool:
    return proc.is_alive(rec.get("pid"), rec.get("pid_create_time"))


def annotate(rec: dict) -> dict:
    """A record plus what is true now: alive, bot_alive, state (what a reader concludes: dead,
    orphaned, unresponsive, corrupt), needs_attention, uptime_s."""
    out = dict(rec)
    status = rec.get("status") or State.DEAD
    if status == State.CORRUPT:
        out.update(alive=False, bot_alive=False, state=State.CORRUPT, needs_attention=True, uptime_s=None)
        return out
    out["alive"] = alive = is_daemon_alive(rec)
    out["bot_alive"] = bot_alive = proc.is_alive(rec.get("bot_pid"), rec.get("bot_create_time"))
    if alive:
        state = status
        checked, every = rec.get("checked_at"), rec.get("health_check_interval")
        if status in LIVE_STATES and checked and every and time.time() - checked > MISSED_CHECKINS * every:
            state = State.UNRESPONSIVE  # (`waiting` comes from the bot's own word: core/books.py)
    elif bot_alive:
        state = State.ORPHANED
    elif status in FINAL_STATES or status == State.ORPHANED:
        state = status
    else:
        state = State.DEAD
    out["state"] = state
    # what `list` shows without --all: the trader must act, or a bot ended itself with a reason
    out["needs_attention"] = state in ATTENTION_STATES or (state == State.EXITED and bool(rec.get("stop_reason")))
    started = rec.get("started_at")
    out["uptime_s"] = round(time.time() - started, 1) if alive and started else None
    return out


class InstanceManager:
    """Stats and config checks over the registry (the second CLI of the seeds, now in one place)."""

    def __init__(self, home: str | os.PathLike, registry: InstanceRegistry | None = None) -> None:
        self.home = home
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
