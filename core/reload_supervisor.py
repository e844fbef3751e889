"""The supervisor's half of `reload` (core/reload.py), driven from its event loop.

SIGHUP only sets a flag; the loop calls `on_sighup`. With a request from `reload` waiting beside
the instance, the bot's part goes first (SIGHUP to run.py, which re-reads, re-checks and applies
its config on its loop thread and answers in a file); the supervisor's own settings are applied
only once the bot's part is, so a refused or rolled-back change leaves everything as it was.
Without a request (SIGHUP from systemd's `ExecReload=` or by hand) the supervisor runs
`daemon_manager.py reload` itself, which validates, refuses or asks exactly as the trader's
command does, and logs what it printed. Nothing here blocks the loop: answers are polled by a timer.
Imported by the supervisor at its first SIGHUP only: most supervisors never reload, and this
module's imports (pathlib through core/reload.py) would cost each of them 0.7 MB.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from core.atomic import private_opener
from core.log_manager import remove_old_dirs
from core.paths import REPO_ROOT, InstancePaths, is_repo_bot
from core.reload import bot_result_file, read_json, request_file, result_file, write_json
from core.spawn import Child, spawn

POLL = 0.1
BOT_TIMEOUT = 45.0      # the bot's own limit for a grid change is 30 s (run.py ADJUST_TIMEOUT_S)


class SupervisorReload:
    """One reload at a time: the request being applied, the bot's answer awaited, the CLI child run."""

    def __init__(self, sup) -> None:
        self.sup = sup
        self.request: dict | None = None
        self.bot_deadline = 0.0
        self.bot_pid: int | None = None     # the bot asked; another process answers nothing
        self.child: Child | None = None
        self.paths = InstancePaths(sup.iid, Path(sup.paths.log_dir))  # core/reload.py's helpers take Paths
        self.child_out = self.paths.log_dir / "reload_sighup.out"

    def on_sighup(self) -> None:
        sup = self.sup
        request = read_json(request_file(self.paths))
        if request is None:
            self._run_cli()
            return
        if self.request is not None:
            sup.log("reload: a reload is still being applied; the new request waits for it")
            sup.timers["reload"] = time.monotonic() + POLL
            return
        request_file(self.paths).unlink(missing_ok=True)
        self.request = request
        sup.log("reload requested: " + "; ".join(request.get("changes", [])))
        if not request.get("bot"):
            self._finish(True, "no bot setting changed")
            return
        if sup.bot is None:
            # the next bot process reads the config file at its start: the change reaches it then
            self._finish(True, "the bot is not running right now: it starts with the new settings")
            return
        if not sup.ready:                   # it may have read the old file already, and has no handler yet
            self._finish(False, "the bot is still starting: reload again once it runs", "rejected")
            return
        if not is_repo_bot(sup.s.get("script_path", "")):
            self._finish(False, "the supervised program is not run.py: its settings need `restart`")
            return
        bot_result_file(self.paths).unlink(missing_ok=True)
        sup.log(f"reload: SIGHUP to bot {sup.bot.pid} (it re-reads and checks its config)")
        self.bot_pid = sup.bot.pid
        sup._signal_bot(signal.SIGHUP)
        self.bot_deadline = time.monotonic() + BOT_TIMEOUT
        sup.timers["reload"] = time.monotonic() + POLL

    def poll(self) -> None:
        """Timer: the bot's answer, the CLI child's end, or a request that waited for another."""
        sup = self.sup
        if self.child is not None and self.child.poll() is not None:
            self._log_child()
        if self.request is not None:
            answer = read_json(bot_result_file(self.paths))
            if answer is not None:
                applied = answer.get("status") == "applied"
                self._finish(applied, f"bot {answer.get('status')}: {answer.get('message', '')}", answer.get("status"))
            elif sup.bot is None or sup.bot.pid != self.bot_pid:
                self._finish(False, "the bot exited before it answered: its next start reads the config file")
            elif time.monotonic() > self.bot_deadline:
                self._finish(False, f"the bot did not answer within {BOT_TIMEOUT:g} s: in doubt, see its log")
        elif request_file(self.paths).exists():
            self.on_sighup()
        if self.request is not None or self.child is not None:
            sup.timers["reload"] = time.monotonic() + POLL

    def _finish(self, ok: bool, message: str, bot_status: str | None = None) -> None:
        sup = self.sup
        request, self.request = self.request or {}, None
        if ok:
            self._apply(request.get("settings") or {})
        sup.log(f"reload {'applied' if ok else 'NOT applied'}: {message}", "INFO" if ok else "WARNING")
        write_json(result_file(self.paths), {"id": request.get("id"), "ok": ok, "bot_status": bot_status,
                                            "message": sup.masker(message)})

    def _apply(self, settings: dict) -> None:
        """The supervisor-live settings; each takes effect where it is read (health check, restart,
        stop, log rotation), the ones with a timer or a cache are refreshed here."""
        sup = self.sup
        changed = {k: v for k, v in settings.items() if sup.s.get(k) != v}
        if not changed:
            return
        sup.s.update(changed)
        if "health_check_interval" in changed:
            sup.timers["health"] = time.monotonic() + float(sup.s["health_check_interval"])
        if "log_max_mb" in changed:
            max_bytes = int(float(sup.s["log_max_mb"]) * 2**20)
            for log in (sup.daemon_log, *sup.out_logs.values()):
                log.max_bytes = max_bytes
        if "log_retention_days" in changed:
            remove_old_dirs(sup.paths.log_dir, int(sup.s["log_retention_days"]))
        if "notify" in changed:
            sup.waiting_watch.after_s = float((sup.s.get("notify") or {}).get("waiting_after_s", 300))
        if "stop_timeout" in changed:
            sup.record(stop_timeout=sup.s["stop_timeout"])   # `stop` waits as long as the bot may need
        sup.log("reload: supervisor settings now " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items())))

    def _run_cli(self) -> None:
        """SIGHUP from outside: run `reload` for this instance, as the trader would."""
        sup = self.sup
        if self.child is not None:
            sup.log("reload: SIGHUP ignored, a reload started by SIGHUP is still running")
            return
        argv = [sys.executable, str(REPO_ROOT / "core" / "daemon_manager.py"), "--home", str(sup.spec["home"]),
                "reload", "-i", sup.iid]
        sup.log("reload: SIGHUP received: running " + " ".join(argv[1:]))
        with open(self.child_out, "wb", opener=private_opener) as out:
            self.child = Child(spawn(argv, {**os.environ, "PYTHONUNBUFFERED": "1"}, str(sup.spec["home"]),
                                     out.fileno(), out.fileno(), new_session=False))
            self.child.close_pidfd()  # polled by the reload timer, not watched
        sup.timers["reload"] = time.monotonic() + POLL

    def _log_child(self) -> None:
        sup = self.sup
        code = self.child.returncode
        self.child = None
        try:
            text = self.child_out.read_text(errors="replace")
        except OSError:
            text = ""
        self.child_out.unlink(missing_ok=True)
        for line in text.splitlines():
            sup.log(f"reload (SIGHUP): {line}")
        sup.log(f"reload (SIGHUP) finished with exit code {code}", "INFO" if code == 0 else "WARNING")
