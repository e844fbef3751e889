"""TradingBotDaemon: start, stop, restart and status of one instance (the seeds' API).

`start` validates the config, then under the registry lock refuses conflicts with LIVE instances,
picks a web port and registers a `starting` record, all in one critical section, so ten
concurrent starts of one config give exactly one daemon. It then spawns the lean supervisor
(posix_spawn, in a new session), and waits on a pipe until the supervisor says `ready ...` or `failed: ...`.
"""
from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from core import proc, safe_json
from core.atomic import write_text_atomic
from core.config_manager import CHECKED_ENV, MAX_CONFIG_BYTES, ConfigError, ConfigManager, InstanceConfig
from core.conflicts import conflicts, live_records
from core.environment import inherited, supervisor_environment
from core.instance_manager import InstanceRegistry, is_daemon_alive
from core.masking import Masker, mask_config
from core.paths import (ENV_API_KEY, ENV_DB_PATH, ENV_INSTANCE_ID, ENV_LOG_DIR, ENV_SECRET_KEY, ENV_WEB_PORT,
                        HOME_ENV, REPO_ROOT, InstancePaths, is_repo_bot)
from core.exit_codes import (BOT_EXIT_AUTH, BOT_EXIT_CONFIG, BOT_EXIT_TERM, EXIT_FAIL, EXIT_NOT_RUNNING, EXIT_OK,
                             EXIT_UNKNOWN, EXIT_USAGE)
from core.pidfile import holder_pid, is_locked, read_pid
from core.reload import record_applied
from core.states import DESIRED_RUNNING, DESIRED_STOPPED, FINAL_STATES, State

FIRST_PORT = 5001
SUPERVISOR = REPO_ROOT / "core" / "supervisor.py"
CHECK_TIMEOUT = 60.0  # seconds for `run.py --check` (no network: it only loads and validates)


class Outcome(NamedTuple):
    """What a command did: an exit code and the line(s) to print.
    (No dataclasses in the start path: it imports inspect and ast, ~10 ms of every `start`.)"""

    code: int
    message: str


class Refused(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class Seat:
    """What one start holds between its checks and the fork of its supervisor."""

    __slots__ = ("cfg", "ended", "db_identity", "lock_fd", "holder")

    def __init__(self, cfg: InstanceConfig, ended: list[str], db_identity: list | None, lock_fd: int | None,
                 holder: dict | None) -> None:
        self.cfg = cfg
        self.ended = ended              # notes on an orphaned bot of this id that was ended first
        self.db_identity = db_identity  # the database's identity to keep in the new record
        self.lock_fd = lock_fd          # the account lock, handed to the supervisor
        self.holder = holder            # who holds the account lock, when it was not ours to take

    def release(self) -> None:
        """Close our copy of the account lock: the supervisor has its own, held for its life."""
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None


def _unwritable(iid: str, exc: OSError) -> Outcome:
    """Disk full, read-only logs/: say so, start nothing."""
    return Outcome(EXIT_FAIL, f"{iid} not started: cannot write {exc.filename or 'its files'}: {exc.strerror or exc}")


def bot_environment(cfg: InstanceConfig, home: Path, web_port: int, base: dict[str, str]) -> dict[str, str]:
    """The bot's env, by allow-list (core/environment.py): PATH, HOME, LANG, TZ, LC_* and the names the
    config lists in inherit_environment from the CLI's env; then the ${VAR}s and `environment` of this
    config and its contract variables (the exchange keys of THIS config reach THIS bot only)."""
    env = inherited(base, cfg.daemon.get("inherit_environment", ()))
    env.update(cfg.used_vars)
    env.update(cfg.daemon.get("environment", {}))
    env.update({ENV_INSTANCE_ID: cfg.instance_id, ENV_DB_PATH: cfg.daemon["db_path"], ENV_WEB_PORT: str(web_port),
                ENV_LOG_DIR: cfg.daemon["log_dir"], HOME_ENV: str(home), "PYTHONUNBUFFERED": "1"})
    if cfg.api_key:
        env[ENV_API_KEY] = cfg.api_key
    if cfg.secret_key:
        env[ENV_SECRET_KEY] = cfg.secret_key
    if cfg.digest:  # the schema passed here: the bot need not import jsonschema to judge it again
        env[CHECKED_ENV] = cfg.digest
    return env


def _check_command(cfg: InstanceConfig, home: Path) -> tuple[list[str], dict[str, str], str]:
    """(argv, env, cwd) of the config's `run.py --check`."""
    argv = [cfg.daemon["python_path"], cfg.daemon["script_path"], "--check", "--config", str(cfg.source_path),
            "--instance-id", cfg.instance_id]
    env = bot_environment(cfg, home, cfg.daemon.get("web_port") or FIRST_PORT, dict(os.environ))
    cwd = cfg.daemon["working_dir"] if os.path.isdir(cfg.daemon["working_dir"]) else str(home)
    return argv, env, cwd


def preflight(cfg: InstanceConfig, home: Path, key: str | None = None) -> list[str] | None:
    """Run `run.py --check` on a config that runs the repository's bot; None when it passes (or when
    the bot is another program, or a run.py without --check), else the lines to show the trader.

    The check loads and validates the config exactly as the bot would (grid against the market,
    margin, keys), with the bot's own environment, but places nothing and writes nothing.
    key (start): check_key(cfg) taken before the check, set as cfg.preflight_key if it passes.
    """
    if not is_repo_bot(cfg.daemon["script_path"]):
        return None
    import subprocess  # only when a check runs: a repeated start (its verdict kept) needs none

    argv, env, cwd = _check_command(cfg, home)
    masker = Masker(cfg.secrets())
    try:
        out = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             errors="replace", timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return [f"{cfg.daemon['script_path']} --check did not answer within {CHECK_TIMEOUT:g} s"]
    except OSError as exc:
        return [f"cannot run {cfg.daemon['python_path']} {cfg.daemon['script_path']} --check: {exc}"]
    if out.returncode == 0:
        cfg.preflight_key = key
        return None
    lines = [masker(line) for line in out.stderr.splitlines() if line.strip()]
    if out.returncode not in (BOT_EXIT_CONFIG, BOT_EXIT_AUTH):  # missing or rejected keys: a config problem too
        lines.append(f"(run.py --check exited with code {out.returncode})")
    return lines or [f"run.py --check exited with code {out.returncode} and said nothing"]


def check_key(cfg: InstanceConfig, home: Path) -> str | None:
    """The key of cfg's pre-flight (core/preflight_key.py: every input of its verdict); None for
    a bot that has none (not the repository's run.py)."""
    if not is_repo_bot(cfg.daemon["script_path"]):
        return None
    from core.preflight_key import preflight_key

    argv, env, cwd = _check_command(cfg, home)
    return preflight_key(argv, env, cwd, cfg.exchange.get("price_csv"))


PARALLEL_CHECKS = 4  # `run.py --check`s at once: each is an interpreter; more only queue on a small VPS
CHECKED_FILE = "config.checked"  # in the instance's log dir: config_digest of the last document start validated


class _Checks:
    """The pre-flights of one checked_configs call: none for a bot without one, none when this
    instance passed one on the very same inputs (PASSED_FILE), else `run.py --check` in a pool
    thread, started as soon as the config's draft is known (the pool made only then)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.pool = None

    def start(self, cfg: InstanceConfig) -> object | None:
        """A future of preflight(cfg), or None when nothing is to be run (cfg passes)."""
        from core.preflight_key import passed_key

        key = check_key(cfg, self.home)  # taken before the check runs: never newer than what it judged
        if key is None:
            return None
        if key == passed_key(cfg.daemon["log_dir"]):
            cfg.preflight_key = key
            return None
        if self.pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=PARALLEL_CHECKS)
        return self.pool.submit(preflight, cfg, self.home, key)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def checked_configs(home: Path, targets: list[tuple[str, str | None]],
                    cm: ConfigManager | None = None) -> list[InstanceConfig | Outcome]:
    """Each (config file, instance id or None) loaded, validated and passed by the bot's pre-flight,
    or the exit-2 Outcome saying why not, in order.

    Each config is read, expanded and completed once, as a draft (everything but the schema), and
    its pre-flight (if it is not known to pass: _Checks) starts on it while this process judges the
    drafts by the schema (jsonschema imported once), except a document this instance was started
    with before (its digest in CHECKED_FILE): the schema's verdict on it stands, as it does for the
    bot. A config that does not even make a draft is loaded in full, which says why."""
    cm = cm or ConfigManager(home)
    checks = _Checks(home)
    out: list[InstanceConfig | Outcome] = []
    try:
        drafts = [_draft(cm, path, iid) for path, iid in targets]
        early = [checks.start(draft) if draft else None for draft in drafts]
        for (path, iid), draft, check in zip(targets, drafts, early):
            try:
                if draft is None:
                    cfg = cm.load(path, instance_id=iid)
                    check = checks.start(cfg)
                else:
                    cfg = cm.validated(draft, _validated_before(draft))
            except ConfigError as exc:
                if check is not None:
                    check.cancel()
                out.append(Outcome(EXIT_USAGE, f"invalid config {path}:\n  " + "\n  ".join(exc.errors)))
                continue
            problems = check.result() if check is not None else None
            out.append(Outcome(EXIT_USAGE, f"invalid config {path}:\n  " + "\n  ".join(problems)) if problems else cfg)
    finally:
        checks.close()
    return out


def _validated_before(draft: InstanceConfig) -> str | None:
    """The digest of the document this instance was last started with (CHECKED_FILE), if any."""
    try:
        with open(Path(draft.daemon["log_dir"]) / CHECKED_FILE, "rb") as fh:
            return fh.read(128).decode("ascii", "replace").strip() or None
    except OSError:
        return None


def _draft(cm: ConfigManager, path: str, iid: str | None) -> InstanceConfig | None:
    """The config without its schema check, or None when it does not even load that far (the full
    load then says why)."""
    try:
        return cm.load(path, instance_id=iid, schema=False)
    except Exception:  # noqa: BLE001 - an unvalidated document may break a draft in any way
        return None


def port_is_free(port: int) -> bool:
    import socket  # only a config without web_port needs it

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class TradingBotDaemon:
    """One instance, named by a config file or by its id."""

    def __init__(self, home: Path, config_file: str | None = None, instance_id: str | None = None) -> None:
        self.home = Path(home)
        self.config_file = config_file
        self.flag_id = instance_id
        self.cm = ConfigManager(self.home)
        self.registry = InstanceRegistry(self.home)

    @property
    def instance_id(self) -> str:
        if self.config_file:
            return self.cm.instance_id_of(self.config_file, self.flag_id)
        assert self.flag_id, "an instance needs a config file or an id"
        return self.flag_id

    def paths(self, rec: dict | None = None) -> InstancePaths:
        return InstancePaths.for_instance(self.home, self.instance_id, (rec or {}).get("log_dir"))

    # -- start -----------------------------------------------------------------------------
    def checked_config(self) -> InstanceConfig | Outcome:
        """The config loaded, validated and passed by the bot's pre-flight, or the exit-2 Outcome
        saying why not. Run before anything is started or stopped."""
        return checked_configs(self.home, [(self.config_file, self.flag_id)], self.cm)[0]

    def start(self, daemonize: bool = True, cfg: InstanceConfig | None = None, fresh_db: bool = False) -> Outcome:
        """Start the instance (`cfg`: a config restart() has already checked): refuse conflicts and
        a lost database, claim, start the supervisor. fresh_db accepts that an instance which has
        run before begins again on a new, empty database."""
        if cfg is None:
            checked = self.checked_config()
            if isinstance(checked, Outcome):
                return checked
            cfg = checked
        if daemonize:
            return start_checked(self.home, [cfg], fresh_db, self.registry)[0]
        seat = self._reserve(cfg, fresh_db, self.registry.get(cfg.instance_id))
        if isinstance(seat, Outcome):
            return seat
        try:
            try:
                record = self.registry.mutate(lambda data: self._claim(data, cfg, seat.holder, seat.db_identity))
                spec = self._spec(cfg, record)
            except Refused as exc:
                return Outcome(exc.code, exc.message)
            except OSError as exc:
                return _unwritable(cfg.instance_id, exc)
            # foreground: this process becomes the supervisor (exec, same pid) and keeps the account
            # lock; what this command has to say must be out before the exec
            print(*seat.ended, sep="\n", end="\n" if seat.ended else "")
            return self._exec_foreground(spec, seat.lock_fd)
        finally:
            seat.release()

    def _reserve(self, cfg: InstanceConfig, fresh_db: bool, before: dict | None) -> Seat | Outcome:
        """What a start settles before the claims lock: an orphaned bot of this id is ended (never a
        second bot beside one), a lost database refused, the account's machine-wide lock taken.
        before: the instance's record (registry.get) as this start found it."""
        ended = self.registry.end_orphans([before], "start") if before else []
        db_path = cfg.daemon["db_path"]
        if before and before.get("db_identity") and not os.path.exists(db_path) and not fresh_db:
            return Outcome(EXIT_USAGE, f"{cfg.instance_id} has run before on {db_path}, which is missing now: its "
                                       "account and orders would start from nothing. Restore the file, or "
                                       "`start --fresh-db` to begin on a new database")
        keep_identity = before.get("db_identity") if before and not fresh_db and os.path.exists(db_path) else None
        lock_fd, holder = self._claim_account(cfg)
        return Seat(cfg, ended, keep_identity, lock_fd, holder)

    def _claim_account(self, cfg: InstanceConfig) -> tuple[int | None, dict | None]:
        """The machine-wide lock on the config's account and symbol (core/account_lock.py): its fd,
        or who holds it (refused by _claim, after the conflicts this home's registry names)."""
        if not cfg.account:
            return None, None
        from core import account_lock

        try:
            return account_lock.claim(cfg.account, cfg.metadata["symbol"], self._holder(cfg)), None
        except account_lock.AccountBusy as busy:
            return None, busy.holder

    def _holder(self, cfg: InstanceConfig) -> dict:
        return {"home": str(self.home), "instance_id": cfg.instance_id}

    def _claim(self, data: dict[str, dict], cfg: InstanceConfig, account_holder: dict | None = None,
               db_identity: list | None = None, live: dict[str, dict] | None = None,
               memo: dict[str, str] | None = None) -> dict:
        """Under the claims lock: refuse conflicts (all at once), choose the port, write the `starting` record.
        live: live_records(data), when the caller keeps it (start_checked: one liveness pass for
        fifty claims, each claim added as it is made); memo: the realpaths of that pass."""
        iid, d = cfg.instance_id, cfg.daemon
        pid_file = InstancePaths(iid, Path(d["log_dir"])).daemon_pid
        live = live_records(data) if live is None else live
        supervisor = holder_pid(self.home, iid)
        if iid in live or supervisor:
            raise Refused(EXIT_FAIL, f"{iid} is already running (pid {supervisor or live[iid].get('pid')})")
        if account_holder == self._holder(cfg):  # a concurrent start of this very instance took it first
            raise Refused(EXIT_FAIL, f"{iid} is already starting or running")
        port = d.get("web_port")
        found = conflicts(cfg, live, memo)
        if account_holder is not None and not any(line.startswith("metadata.symbol") for line in found):
            from core.account_lock import describe  # held from another home, or by a record this one lost

            found.append(describe(account_holder, cfg.metadata["exchange"], cfg.metadata["symbol"], iid))
        if found:
            raise Refused(EXIT_USAGE, "\n".join(found))
        if is_locked(pid_file):
            raise Refused(EXIT_FAIL, f"{iid} is already running (pid {read_pid(pid_file)})")
        if not port:
            taken = {rec.get("web_port") for rec in live.values()}
            port = next(p for p in range(FIRST_PORT, 65536) if p not in taken and port_is_free(p))
        me = os.getpid()
        data[iid] = {
            "instance_id": iid, "config_file": str(cfg.source_path), "log_dir": d["log_dir"], "db_path": d["db_path"],
            "web_port": port, "exchange": cfg.metadata["exchange"], "symbol": cfg.metadata["symbol"],
            "account": cfg.account, "status": State.STARTING, "desired_state": DESIRED_RUNNING,
            "pid": me, "pid_create_time": proc.create_time(me), "bot_pid": None, "bot_create_time": None,
            "restart_count": 0, "exit_code": None, "last_error": None, "stop_reason": None, "db_identity": db_identity,
            "stop_timeout": float(d["stop_timeout"]), "health_check_interval": float(d["health_check_interval"]),
            "started_at": time.time(), "registered_at": time.time(), "last_updated": time.time(),
        }
        return dict(data[iid])

    def _spec(self, cfg: InstanceConfig, record: dict) -> dict:
        d = cfg.daemon
        port = record["web_port"]
        Path(d["log_dir"]).mkdir(parents=True, exist_ok=True)
        Path(d["db_path"]).parent.mkdir(parents=True, exist_ok=True)
        record_applied(InstancePaths(cfg.instance_id, Path(d["log_dir"])), cfg)  # what `reload` compares with
        write_text_atomic(Path(d["log_dir"]) / CHECKED_FILE, f"{cfg.digest}\n")  # the next start's schema verdict
        if cfg.preflight_key:  # the pre-flight this start passed: not run again on the same inputs
            from core.preflight_key import PASSED_FILE

            write_text_atomic(Path(d["log_dir"]) / PASSED_FILE, f"{cfg.preflight_key}\n")
        return {
            "instance_id": cfg.instance_id, "home": str(self.home), "log_dir": d["log_dir"], "cwd": d["working_dir"],
            "argv": cfg.bot_argv(), "env": bot_environment(cfg, self.home, port, dict(os.environ)),
            "secrets": cfg.secrets(), "settings": d, "record": record,
        }

    def _exec_foreground(self, spec: dict, keep_fd: int | None) -> Outcome:
        """Become the supervisor in place: exec it with the allow-listed environment (the shell's
        credentials stay out of its /proc/PID/environ) under this pid, which systemd (Type=simple)
        and the trader's Ctrl-C already know. The spec (the bot's secrets) goes through a memfd,
        never a file; the supervisor prints its readiness line, then the final state, and exits
        with the code this command would have. Returns only if the exec failed."""
        spec_fd = os.memfd_create("gridbot-spec")
        with os.fdopen(os.dup(spec_fd), "w") as fh:
            fh.write(json.dumps(spec))
        os.lseek(spec_fd, 0, os.SEEK_SET)
        for fd in (spec_fd, keep_fd):
            if fd is not None:
                os.set_inheritable(fd, True)
        sys.stdout.flush()
        sys.stderr.flush()
        from core.supervisor import FOREGROUND

        argv = [sys.executable, "-S", str(SUPERVISOR), str(REPO_ROOT), str(spec_fd), FOREGROUND]
        try:
            os.execve(sys.executable, argv, supervisor_environment(os.environ, self.home))
        except OSError as exc:
            os.close(spec_fd)
            reason = f"failed: cannot run the supervisor: {exc.strerror or exc}"
            self._mark_failed(spec["instance_id"], reason)
            return Outcome(EXIT_FAIL, f"{spec['instance_id']} {reason}")

    def _spawn_supervisors(self, batch: list[tuple[dict, int | None]]) -> list[int]:
        """Start the supervisors of a batch of (spec, account lock fd to hand over) in a new
        session; the read end of each one's readiness pipe, in the batch's order. OSError when
        the process cannot be started (no process left, no such interpreter): then none is.

        One posix_spawn (core/spawn.py) for the whole batch: core/supervisor.py boots one
        interpreter, imports once, and forks each supervisor (the double fork of DESIGN.md). No
        copy of this CLI's page tables, no wait for an intermediate child; the spawned process
        exits once it forked them, and `_reap_first_halves` collects it. Each spec (the bot's
        secrets) goes through its own pipe, never argv or a file."""
        from core.spawn import spawn

        readies: list[int] = []
        writers: list[int] = []
        seats: list[tuple[int, ...]] = []
        theirs: list[int] = []          # the child's ends: closed here once it has them
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            for _, lock_fd in batch:
                ready_r, ready_w = os.pipe()
                readies.append(ready_r)
                theirs.append(ready_w)
                spec_r, spec_w = os.pipe()
                writers.append(spec_w)
                theirs.append(spec_r)
                seats.append((spec_r, ready_w) if lock_fd is None else (spec_r, ready_w, lock_fd))
            argv = [sys.executable, "-S", str(SUPERVISOR), str(REPO_ROOT), *(",".join(map(str, s)) for s in seats)]
            _FIRST_HALVES.append(spawn(argv, supervisor_environment(os.environ, self.home), str(self.home), null,
                                       null, True, tuple(fd for seat in seats for fd in seat)))
        except BaseException:
            for fd in readies + writers:
                os.close(fd)
            raise
        finally:
            os.close(null)
            for fd in theirs:
                os.close(fd)
        for (spec, _), spec_w in zip(batch, writers):
            try:
                with os.fdopen(spec_w, "w") as fh:
                    fh.write(json.dumps(spec))  # one C encoding; json.dump streams through the Python encoder
            except BrokenPipeError:             # that supervisor died unread: its readiness pipe says so
                pass
        return readies

    def _outcome(self, iid: str, line: str) -> Outcome:
        """What the supervisor's readiness line (empty: it died without one) means for `start`."""
        if line.startswith("ready"):
            return Outcome(EXIT_OK, f"{iid} started: {line}")
        if not line:
            line = "failed: the daemon exited without reporting (see its daemon.log)"
            self._mark_failed(iid, line)
        rec = self.registry.get(iid) or {}  # the daemon records its end before it reports
        config_error = rec.get("status") == State.FATAL and rec.get("exit_code") == BOT_EXIT_CONFIG
        return Outcome(EXIT_USAGE if config_error else EXIT_FAIL, f"{iid} {line}")

    def _mark_failed(self, iid: str, reason: str) -> None:
        """If the record still names this CLI as its pid, no daemon took over: say so."""
        def fix(data: dict[str, dict]) -> None:
            rec = data.get(iid)
            if rec and rec.get("pid") == os.getpid():
                rec.update(status=State.FATAL, last_error=reason, pid=None)
        self.registry.mutate(fix)

    # -- stop ------------------------------------------------------------------------------
    def stop(self, keep_desired: bool = False) -> Outcome:
        """The trader's stop: the desired state becomes `stopped` (so `resume` leaves it alone)
        unless keep_desired (a shutdown's stop-all, a restart)."""
        iid = self.instance_id
        rec = self.registry.get(iid)
        if rec is None:
            return Outcome(EXIT_UNKNOWN, f"{iid}: unknown instance")
        if rec["state"] == State.ORPHANED and rec["bot_alive"]:
            outcome = Outcome(EXIT_OK, "\n".join(self.registry.end_orphans([rec], "stop")))
        elif rec["state"] == State.CORRUPT and holder_pid(self.home, iid) is None:
            return Outcome(EXIT_NOT_RUNNING, f"{iid} is not running (its record is corrupt: {rec.get('last_error')})")
        elif not rec["alive"] and holder_pid(self.home, iid) is None:
            why = rec.get("stop_reason") or (rec.get("last_error") if rec["state"] == State.FATAL else None)
            outcome = Outcome(EXIT_NOT_RUNNING, f"{iid} is not running ({rec['state']})" + (f": {why}" if why else ""))
        else:
            outcome = stop_many(self.registry, [rec])[0]
        if not keep_desired and rec["state"] != State.CORRUPT:
            try:
                self.registry.update(iid, desired_state=DESIRED_STOPPED)
            except OSError as exc:
                return Outcome(EXIT_FAIL, f"{outcome.message}\n{iid}: cannot record the stop ({exc.strerror or exc}): "
                                          "`resume` would start it again")
        return outcome

    def restart(self) -> Outcome:
        rec = self.registry.get(self.instance_id)
        if self.config_file is None and rec:
            self.config_file = rec.get("config_file")
        if not self.config_file:
            return Outcome(EXIT_UNKNOWN, f"{self.instance_id}: unknown instance (no config to restart from)")
        # A typo must not take a trading bot down: the new config passes every check first.
        checked = self.checked_config()
        if not isinstance(checked, Outcome):
            others = {k: v for k, v in live_records(self.registry.load()).items() if k != checked.instance_id}
            found = conflicts(checked, others)  # checked again under the lock by start
            if found:
                checked = Outcome(EXIT_USAGE, "\n".join(found))
        if isinstance(checked, Outcome):
            return Outcome(checked.code, f"{checked.message}\n{self.instance_id} left as it was (nothing stopped)")
        stopped = self.stop(keep_desired=True)
        if stopped.code not in (EXIT_OK, EXIT_NOT_RUNNING, EXIT_UNKNOWN):
            return stopped
        started = self.start(daemonize=True, cfg=checked)
        return Outcome(started.code, f"{stopped.message}\n{started.message}")

    # -- status ----------------------------------------------------------------------------
    def status(self) -> tuple[int, dict]:
        """Seed 001's JSON, with LSB exit codes: 0 running, 3 not running, 4 unknown."""
        iid = self.instance_id
        rec = self.registry.get(iid)
        now = time.time()
        out: dict = {"instance_id": iid, "running": False, "state": "unknown",
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now))}
        if rec is None:
            known = bool(self.config_file) or self.cm.find_active(iid) is not None
            out["state"] = "not started" if known else "unknown"
            return (EXIT_NOT_RUNNING if known else EXIT_UNKNOWN), out
        daemon = proc.get_process(rec.get("pid"), rec.get("pid_create_time"))
        bot = proc.get_process(rec.get("bot_pid"), rec.get("bot_create_time"))
        paths = self.paths(rec)
        from core import heartbeat

        hb = heartbeat.age(paths.heartbeat)
        out.update({
            "running": rec["alive"], "state": rec["state"], "pid": rec.get("pid") if daemon else None,
            "process_info": proc.process_info(daemon),
            "bot": {"pid": rec.get("bot_pid") if bot else None, "process_info": proc.process_info(bot)},
            "restart_count": rec.get("restart_count", 0), "web_port": rec.get("web_port"),
            "url": f"http://127.0.0.1:{rec['web_port']}/" if rec.get("web_port") else None,
            "exit_code": rec.get("exit_code"), "last_error": rec.get("last_error"),
            "stop_reason": rec.get("stop_reason"), "needs_attention": rec["needs_attention"],
            "cpu_warning": bool(rec.get("cpu_warning")), "cpu_percent": rec.get("cpu_percent"),
            "memory_mb": rec.get("memory_mb"), "uptime_s": rec.get("uptime_s"),
            "heartbeat_age_s": round(hb, 1) if hb is not None and bot else None,
            "config_file": rec.get("config_file"), "config": self._masked_file(rec.get("config_file")),
        })
        return (EXIT_OK if rec["alive"] else EXIT_NOT_RUNNING), out

    def _masked_file(self, path: str | None) -> dict | None:
        """The config as written (placeholders, not expanded secrets), secret fields masked."""
        if not path:
            return None
        try:
            return mask_config(safe_json.loads(safe_json.read_bounded(path, MAX_CONFIG_BYTES)))
        except (OSError, ValueError):
            return None


def start_checked(home: Path, cfgs: list[InstanceConfig], fresh_db: bool = False,
                  registry: InstanceRegistry | None = None) -> list[Outcome]:
    """Start checked configs (detached), one Outcome each in their order: every claim is decided
    under one claims lock, every supervisor spawned without waiting for the one before, then all
    readiness lines are awaited together. One refused or failing instance never holds up the rest.

    `start` is this with one config; `start-all` with fifty spends one process and one lock pass
    where fifty `start` commands spent fifty interpreters and fifty lock passes."""
    return launch_checked(home, cfgs, fresh_db, registry).outcomes()


_FIRST_HALVES: list[int] = []   # spawned batch starters (core/supervisor.py): each exits after its forks


def _reap_first_halves() -> None:
    """Collect the batch starters that have exited, each by its own pid (never another child's
    status, which a pre-flight's subprocess waits for): start-all leaves no zombies behind."""
    for pid in list(_FIRST_HALVES):
        try:
            gone = os.waitpid(pid, os.WNOHANG)[0] == pid
        except ChildProcessError:
            gone = True
        if gone:
            _FIRST_HALVES.remove(pid)


class Launch:
    """Supervisors spawned by launch_checked whose readiness lines are still to come."""

    __slots__ = ("daemon", "count", "done", "waiting")

    def __init__(self, daemon: TradingBotDaemon, count: int, done: dict[int, Outcome],
                 waiting: dict[int, tuple[int, Seat]]) -> None:
        self.daemon = daemon
        self.count = count
        self.done = done        # index -> outcome already known (refused, failed to spawn)
        self.waiting = waiting  # readiness fd -> (index, seat)

    def outcomes(self) -> list[Outcome]:
        """Wait for every readiness line; one Outcome per config, in order."""
        await_launches([self])
        return [self.done[i] for i in range(self.count)]


def await_launches(launches: list[Launch]) -> None:
    """Every launch's readiness lines, all watched at once, into its `done`."""
    owner = {fd: launch for launch in launches for fd in launch.waiting}
    for fd, line in readiness_lines(list(owner)):
        launch = owner[fd]
        i, seat = launch.waiting.pop(fd)
        said = launch.daemon._outcome(seat.cfg.instance_id, line)
        launch.done[i] = Outcome(said.code, "\n".join([*seat.ended, said.message]))
    _reap_first_halves()            # they exited long before any supervisor was ready


def launch_checked(home: Path, cfgs: list[InstanceConfig], fresh_db: bool = False,
                   registry: InstanceRegistry | None = None, memo: dict[str, str] | None = None) -> Launch:
    """start_checked up to the readiness wait: claims under one lock, supervisors spawned. start-all
    launches its configs a few at a time as they are validated, so the first supervisors boot on
    the other core while this process still judges the rest, and awaits them all at the end.
    memo: realpaths already resolved by this command (conflicts.same_path), kept across its batches."""
    daemon = TradingBotDaemon(home)
    if registry is not None:
        daemon.registry = registry
    outcomes: dict[int, Outcome] = {}
    seats: dict[int, Seat] = {}
    waiting: dict[int, tuple[int, Seat]] = {}  # readiness fd -> (index, seat)
    try:
        found = daemon.registry.get_many([cfg.instance_id for cfg in cfgs]) if cfgs else {}
        for i, cfg in enumerate(cfgs):
            seat = daemon._reserve(cfg, fresh_db, found[cfg.instance_id])
            if not isinstance(seat, Outcome) and seat.ended:  # its record changed: a repeat of this id sees that
                found[cfg.instance_id] = daemon.registry.get(cfg.instance_id)
            if isinstance(seat, Outcome):
                outcomes[i] = seat
            else:
                seats[i] = seat

        known = {} if memo is None else memo
        for seat in seats.values():  # resolved when loaded (ConfigManager._daemon_defaults): their own realpaths
            known.setdefault(seat.cfg.daemon["log_dir"], seat.cfg.daemon["log_dir"])
            known.setdefault(seat.cfg.daemon["db_path"], seat.cfg.daemon["db_path"])

        def claim_all(data: dict[str, dict]) -> dict[int, dict]:
            records, live = {}, live_records(data)
            for i, seat in seats.items():
                try:
                    records[i] = daemon._claim(data, seat.cfg, seat.holder, seat.db_identity, live, known)
                    live[seat.cfg.instance_id] = data[seat.cfg.instance_id]
                except Refused as exc:
                    outcomes[i] = Outcome(exc.code, exc.message)
            return records

        try:
            records = daemon.registry.mutate(claim_all) if seats else {}
        except OSError as exc:
            records = {}
            outcomes.update({i: _unwritable(seat.cfg.instance_id, exc) for i, seat in seats.items()})
        batch: list[tuple[int, dict]] = []
        for i, record in records.items():
            try:
                batch.append((i, daemon._spec(seats[i].cfg, record)))
            except OSError as exc:
                outcomes[i] = _unwritable(seats[i].cfg.instance_id, exc)
        if batch:
            try:
                readies = daemon._spawn_supervisors([(spec, seats[i].lock_fd) for i, spec in batch])
                waiting.update((fd, (i, seats[i])) for fd, (i, _) in zip(readies, batch))
            except OSError as exc:  # no process left to fork (EAGAIN, ENOMEM)
                reason = f"failed: cannot start the supervisor: {exc.strerror or exc}"
                for i, _ in batch:
                    daemon._mark_failed(seats[i].cfg.instance_id, reason)
                    outcomes[i] = Outcome(EXIT_FAIL, f"{seats[i].cfg.instance_id} {reason}")
    finally:
        for seat in seats.values():
            seat.release()
    return Launch(daemon, len(cfgs), outcomes, waiting)


def readiness_lines(fds: list[int]) -> Iterator[tuple[int, str]]:
    """(fd, first line) of each supervisor's readiness pipe as it arrives ('' if it closed without
    one); each fd is closed once read. All are watched at once (selectors): fifty supervisors
    starting side by side are awaited in the time of the slowest, not the sum."""
    buffers = {fd: b"" for fd in fds}
    with selectors.DefaultSelector() as sel:
        for fd in fds:
            sel.register(fd, selectors.EVENT_READ)
        while buffers:
            for key, _ in sel.select():
                fd = key.fd
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    chunk = b""
                buffers[fd] += chunk
                if chunk and b"\n" not in buffers[fd]:
                    continue
                sel.unregister(fd)
                os.close(fd)
                yield fd, buffers.pop(fd).split(b"\n", 1)[0].decode(errors="replace").strip()


TAKEOVER_TIMEOUT = 10.0
RESPONSIVE_GRACE = 2.0  # seconds for a supervisor to show `stopping` before it is treated as hung


def _supervised(registry: InstanceRegistry, rec: dict) -> dict | None:
    """The record with the pid of the live supervisor (the holder of the instance's socket lock,
    whatever the pid file or the record say); None if there is none.

    From `start`'s claim until the supervisor binds its lock, the record's pid is the waiting start
    CLI: never signal it, wait for the supervisor instead."""
    iid = rec["instance_id"]
    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while True:
        pid = holder_pid(registry.home, iid)
        if pid:
            return {**rec, "pid": pid, "pid_create_time": proc.create_time(pid)}
        if not is_daemon_alive(rec) or time.monotonic() > deadline:
            return None
        time.sleep(0.02)
        rec = registry.get(iid) or rec


def _stop_wait(registry: InstanceRegistry, rec: dict) -> float:
    """stop_timeout, or the longer time the bot asked for to cancel its orders (core/stop_time.py)."""
    from core.stop_time import stop_seconds

    paths = InstancePaths.for_instance(registry.home, rec["instance_id"], rec.get("log_dir"))
    return stop_seconds(paths.stop_seconds, float(rec.get("stop_timeout") or 10))


def stop_many(registry: InstanceRegistry, recs: list[dict]) -> list[Outcome]:
    """SIGTERM every supervisor at once and wait for all. A supervisor that does not even record
    `stopping` (SIGSTOPped, hung) is bypassed: its bot group gets the SIGTERM (to cancel its orders)
    and stop_timeout, and only then SIGKILL, the supervisor too. Signals go through pidfds opened
    and identity-checked first, so a reused pid is never hit."""
    targets: dict[int, dict] = {}
    outcomes: list[Outcome] = []
    for rec in recs:
        owned = _supervised(registry, rec)
        fd = proc.open_pidfd(owned.get("pid"), owned.get("pid_create_time")) if owned else None
        if fd is None:
            outcomes.append(Outcome(EXIT_NOT_RUNNING, f"{rec['instance_id']} is not running"))
            continue
        try:
            signal.pidfd_send_signal(fd, signal.SIGTERM)
        except ProcessLookupError:
            os.close(fd)
            outcomes.append(Outcome(EXIT_NOT_RUNNING, f"{rec['instance_id']} is not running"))
            continue
        targets[fd] = owned
    try:
        pending = proc.wait_exit(list(targets), 0)
        deadline = time.monotonic() + RESPONSIVE_GRACE
        while pending and time.monotonic() < deadline:
            pending = {fd for fd in proc.wait_exit(list(pending), 0.1)
                       if (registry.get(targets[fd]["instance_id"]) or {}).get("status") != State.STOPPING}
        hung = set(pending)
        for fd in hung:  # the bot is owed its graceful stop even when its supervisor is frozen
            rec = registry.get(targets[fd]["instance_id"]) or targets[fd]
            targets[fd] = {**targets[fd], "bot_pid": rec.get("bot_pid"), "bot_create_time": rec.get("bot_create_time")}
            proc.kill_group(rec.get("bot_pid"), rec.get("bot_create_time"), signal.SIGTERM)
        timeout = max((_stop_wait(registry, r) for r in targets.values()), default=0)
        left = proc.wait_exit(list(targets), timeout + (0 if hung else 5))
        for fd, rec in targets.items():
            iid = rec["instance_id"]
            if fd in left:
                proc.kill_group(rec.get("bot_pid"), rec.get("bot_create_time"))
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                proc.wait_exit([fd], 5)
                with contextlib.suppress(OSError):
                    registry.update(iid, status=State.STOPPED, bot_pid=None, bot_create_time=None,
                                    last_error="supervisor hung on stop: its bot got SIGTERM and stop_timeout, "
                                               "then both were killed")
                outcomes.append(Outcome(EXIT_OK, f"{iid} stopped (supervisor was hung: SIGTERM to its bot, "
                                                 f"then killed both)"))
                continue
            final = registry.get(iid) or {}
            if final.get("status") not in FINAL_STATES:
                with contextlib.suppress(OSError):
                    registry.update(iid, status=State.STOPPED, bot_pid=None)
            if final.get("stop_reason") and final.get("exit_code") not in (0, BOT_EXIT_TERM, None):
                # the bot could not clear its orders (it exited 1 saying how many) or was killed doing it
                outcomes.append(Outcome(EXIT_FAIL, f"{iid} stopped, but not cleanly: {final['stop_reason']}"))
                continue
            warning = f"\nwarning: {iid}: {final['stop_reason']}" if final.get("stop_reason") else ""
            outcomes.append(Outcome(EXIT_OK, f"{iid} stopped{warning}"))
        return outcomes
    finally:
        for fd in targets:
            os.close(fd)
