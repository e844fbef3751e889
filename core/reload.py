"""`daemon-manager reload`: apply an edited config to a running instance without a restart.

A restart cancels every order and places the grid again (queue places lost, a moment without
orders). Most settings can change live instead, each where it is used:

- the bot applies the grid and risk settings (BOT_LIVE) on its loop thread, through the same
  path as the page's range adjustment (strategies/reconfigure.py): only orders that must change
  are replaced, a failure is rolled back, the answer says which;
- the supervisor applies its own settings (SUPERVISOR_LIVE) in its event loop;
- everything else (exchange, symbol, keys, db_path, log_dir, web_port, script_path, ...) needs
  `restart`: reload refuses with exit 2 naming each such field, and applies nothing.

The flow: this command validates the config exactly as `start` does (ConfigManager, then the
bot's own pre-flight `run.py --check`), compares it field by field with the config the instance
last applied (logs/{id}/applied_config.json: secrets kept only as fingerprints), writes a request
beside the instance and sends SIGHUP to the supervisor (identity-checked). The supervisor forwards
the bot's part (SIGHUP to run.py, which re-reads and re-checks its config), applies its own part
only once the bot's part is applied, and answers in a result file. SIGHUP sent to the supervisor
by anyone else (systemd's `ExecReload=`) makes the supervisor run this very command, so both
paths validate, refuse and report alike.

The applied config is what a later restart or crash uses: the bot re-reads the same file at each
start, and the strategy keeps its live grid in the instance database.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from core.atomic import private_opener, write_text_atomic
from core.paths import InstancePaths

# strategy_config fields the bot applies live
BOT_LIVE = ("grid_lower_price", "grid_upper_price", "grid_num", "grid_mode", "quantity", "max_position",
            "stop_loss", "take_profit", "boundary_action", "boundary_tolerance", "interval")
# daemon_config fields the supervisor applies live
SUPERVISOR_LIVE = ("memory_limit_mb", "cpu_limit_percent", "health_check_interval", "heartbeat_timeout",
                   "restart_delay", "max_restart_attempts", "stop_timeout", "log_retention_days", "log_max_mb",
                   "notify")
BOT, SUPERVISOR, RESTART = "bot", "supervisor", "restart"
RESULT_TIMEOUT = 75.0       # the supervisor gives the bot 45 s; this adds the supervisor's own work
FINGERPRINT = "sha256:"
FINGERPRINT_RE = re.compile(r'"sha256:[0-9a-f]{16}"')


# -- files beside the instance -------------------------------------------------------------------
def applied_file(paths: InstancePaths) -> Path:
    """The config the running instance applied last (secrets as fingerprints)."""
    return paths.log_dir / "applied_config.json"


def request_file(paths: InstancePaths) -> Path:
    """What `reload` asks the supervisor to apply (its settings; whether the bot has a part)."""
    return paths.log_dir / "reload_request.json"


def result_file(paths: InstancePaths) -> Path:
    """The supervisor's answer to a request, keyed by the request's id."""
    return paths.log_dir / "reload_result.json"


def bot_result_file(paths: InstancePaths) -> Path:
    """The bot's answer to SIGHUP: applied, rejected (nothing changed), rolled back or in doubt."""
    return paths.log_dir / "bot_reload_result.json"


def lock_file(paths: InstancePaths) -> Path:
    return paths.log_dir / "reload.lock"


def write_json(path: Path, doc: dict) -> None:
    # compact: an indent makes json use its pure-Python encoder (start-all writes one per instance)
    write_text_atomic(path, json.dumps(doc, separators=(",", ":"), sort_keys=True) + "\n", mode=0o600)


def read_json(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


# -- classification and diff ---------------------------------------------------------------------
def classify(path: str) -> str:
    """Who applies a changed field: BOT, SUPERVISOR or RESTART (needs `restart`)."""
    section, _, rest = path.partition(".")
    field = rest.split(".", 1)[0]
    if section == "strategy_config" and field in BOT_LIVE:
        return BOT
    if section == "daemon_config" and field in SUPERVISOR_LIVE:
        return SUPERVISOR
    return RESTART


def fingerprint(doc: dict) -> dict:
    """The config with every secret (a secret-looking field, each notification URL) replaced by a
    hash: comparable, never readable."""
    import hashlib

    from core.masking import SECRET_KEY_RE, URLS_KEY

    def walk(obj: object, key: str = "") -> object:
        if isinstance(obj, dict):
            return {k: walk(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, "token" if key == URLS_KEY else key) for v in obj]
        if SECRET_KEY_RE.search(key) and isinstance(obj, (str, int)) and not isinstance(obj, bool) and obj != "":
            return FINGERPRINT + hashlib.sha256(str(obj).encode()).hexdigest()[:16]
        return obj

    return walk(doc)  # type: ignore[return-value]


def flatten(doc: dict, prefix: str = "") -> dict[str, object]:
    """{'strategy_config.quantity': 0.5, ...}: dicts are walked, lists compared whole."""
    out: dict[str, object] = {}
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, path + "."))
        else:
            out[path] = v
    return out


def diff(old: dict, new: dict) -> list[tuple[str, object, object, str]]:
    """(path, old, new, who applies it) for every field that differs, in path order."""
    a, b = flatten(old), flatten(new)
    return [(p, a.get(p), b.get(p), classify(p)) for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p)]


def shown(value: object) -> str:
    """A value for the trader's eyes: fingerprints of secrets become a mask."""
    if value is None:
        return "-"
    if isinstance(value, str) and value.startswith(FINGERPRINT):
        return "****"
    return FINGERPRINT_RE.sub('"****"', json.dumps(value))      # inside a list or object


def unchanged(paths: list[str]) -> str:
    """What stayed as it was, one line per section: `unchanged:\n  strategy_config: grid_num, ...`."""
    by_section: dict[str, list[str]] = {}
    for path in paths:
        section, _, rest = path.partition(".")
        by_section.setdefault(section, []).append(rest or section)
    return "unchanged:" + "".join(f"\n  {sec}: {', '.join(sorted(names))}" for sec, names in sorted(by_section.items()))


def record_applied(paths: InstancePaths, cfg) -> None:
    """Remember what the instance runs with (called by `start` and after each applied reload)."""
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    write_json(applied_file(paths), {"config_file": str(cfg.source_path), "applied_at": time.time(),
                                     "config": fingerprint(cfg.as_dict())})


def record_event(paths: InstancePaths, ok: bool, **payload: object) -> None:
    """One event for the trader's phone (core/events.py): RELOADED, or RELOAD_FAILED with the reason."""
    from core.events import RELOAD_FAILED, RELOADED, append_event

    append_event(paths, RELOADED if ok else RELOAD_FAILED, on_error=lambda msg: print(msg, file=sys.stderr), **payload)


# -- the command ---------------------------------------------------------------------------------
def cmd_reload(home: Path, args: "argparse.Namespace") -> int:  # noqa: F821 (argparse: the CLI's)
    import fcntl

    from core.config_manager import ConfigError, ConfigManager
    from core.exit_codes import EXIT_NOT_RUNNING, EXIT_UNKNOWN, EXIT_USAGE
    from core.instance_manager import InstanceRegistry

    cm = ConfigManager(home)
    iid = args.instance_id or args.id or (cm.instance_id_of(args.config) if args.config else None)
    if not iid:
        print("reload: name an instance: reload ID, -i ID or -c CONFIG", file=sys.stderr)
        return EXIT_USAGE
    rec = InstanceRegistry(home).get(iid)
    if rec is None:
        print(f"{iid}: unknown instance", file=sys.stderr)
        return EXIT_UNKNOWN
    if not rec["alive"]:
        print(f"{iid} is not running ({rec['state']}): `start` applies the config", file=sys.stderr)
        return EXIT_NOT_RUNNING
    paths = InstancePaths.for_instance(home, iid, rec.get("log_dir"))
    config_file = args.config or rec.get("config_file")
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_file(paths), "a", opener=private_opener) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)        # one reload of an instance at a time
        try:
            cfg, changed, kept = _validate(home, cm, config_file, iid, paths)
        except ConfigError as exc:
            print(f"reload {iid}: invalid config {config_file}; nothing applied:\n  " + "\n  ".join(exc.errors),
                  file=sys.stderr)
            record_event(paths, False, reason="invalid config", changes=exc.errors)
            return EXIT_USAGE
        return _apply(rec, paths, cfg, changed, kept)


def _apply(rec: dict, paths: InstancePaths, cfg, changed: list, kept: list[str]) -> int:
    """Refuse restart-only changes, else have the supervisor (and through it the bot) apply the rest."""
    from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
    from core.masking import Masker

    iid = cfg.instance_id
    masked = Masker(cfg.secrets())              # secret fields are fingerprints; this catches the rest
    lines = [masked(f"{p}: {shown(a)} -> {shown(b)}  ({who})") for p, a, b, who in changed]
    restart = [line for line in lines if line.endswith(f"({RESTART})")]
    if restart:
        print(f"reload {iid}: these fields cannot change live; nothing applied (use `restart`):\n  "
              + "\n  ".join(restart), file=sys.stderr)
        record_event(paths, False, reason="restart needed", changes=restart)
        return EXIT_USAGE
    if not changed:
        print(f"reload {iid}: nothing changed\n{unchanged(kept)}")
        return EXIT_OK
    answer = _ask_supervisor(rec, paths, cfg, lines)
    ok = answer.get("ok") is True
    print(f"reload {iid}: {'applied' if ok else 'NOT applied'}: {answer.get('message', '')}".rstrip(),
          file=sys.stdout if ok else sys.stderr)
    print("changed:\n  " + "\n  ".join(lines))
    print(unchanged(kept))
    record_event(paths, ok, changes=lines, message=answer.get("message"))
    if ok:
        record_applied(paths, cfg)
        return EXIT_OK
    return EXIT_USAGE if answer.get("bot_status") == "rejected" else EXIT_FAIL   # rejected: nothing changed


def _validate(home: Path, cm, config_file: str | None, iid: str, paths: InstancePaths):
    """Load and pre-flight the config (ConfigError naming the fields) and diff it with the applied one."""
    from core.config_manager import ConfigError
    from core.daemon import preflight

    if not config_file:
        raise ConfigError([f"{iid}: no config file is recorded for this instance; name it with -c"])
    runs = (read_json(applied_file(paths)) or {}).get("config_file")
    if runs and os.path.realpath(cm.resolve_path(config_file)) != os.path.realpath(runs):
        raise ConfigError([f"{iid} runs {runs}, and its bot re-reads that file: edit it and reload, "
                           f"or `restart -c {config_file}`"])
    cfg = cm.load(config_file, instance_id=iid)
    problems = preflight(cfg, home)
    if problems:
        raise ConfigError(problems)
    applied = read_json(applied_file(paths))
    if applied is None or not isinstance(applied.get("config"), dict):
        raise ConfigError([f"{applied_file(paths)}: no record of the config this instance started with "
                           "(started by an older version?): `restart` it once, then reload works"])
    new = fingerprint(cfg.as_dict())
    changed = diff(applied["config"], new)
    kept = [p for p in flatten(new) if p not in {c[0] for c in changed}]
    return cfg, changed, kept


def _ask_supervisor(rec: dict, paths: InstancePaths, cfg, changes: list[str]) -> dict:
    """Write the request, SIGHUP the supervisor that holds the pid file, wait for its answer."""
    import signal

    from core import proc
    from core.pidfile import is_locked, read_pid

    rid = f"{os.getpid()}-{time.time_ns()}"
    settings = {k: cfg.daemon.get(k) for k in SUPERVISOR_LIVE if k in cfg.daemon}
    bot_part = any(line.endswith(f"({BOT})") for line in changes)
    write_json(request_file(paths), {"id": rid, "settings": settings, "bot": bot_part, "changes": changes})
    pid, created = rec.get("pid"), rec.get("pid_create_time")
    fd = proc.open_pidfd(pid, created) if read_pid(paths.daemon_pid) == pid and is_locked(paths.daemon_pid) else None
    if fd is None:
        request_file(paths).unlink(missing_ok=True)
        return {"ok": False, "message": "the supervisor is not running (or not yet holding its pid file)"}
    try:
        signal.pidfd_send_signal(fd, signal.SIGHUP)
    finally:
        os.close(fd)
    deadline = time.monotonic() + RESULT_TIMEOUT
    answer = {"ok": False, "message": f"no answer within {RESULT_TIMEOUT:g} s: the change may still be "
                                      "applied; check `status` and the daemon log"}
    while time.monotonic() < deadline:
        found = read_json(result_file(paths))
        if found is not None and found.get("id") == rid:
            return found
        if not proc.is_alive(pid, created):
            answer = {"ok": False, "message": "the supervisor ended before it answered"}
            break
        time.sleep(0.05)
    if (read_json(request_file(paths)) or {}).get("id") == rid:
        request_file(paths).unlink(missing_ok=True)     # never taken: a later SIGHUP must not apply it
    return answer
