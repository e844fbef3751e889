"""The supervisor of one instance: runs the bot, watches it, restarts it, stops it.

Run by core/supervisor.py (the daemon's tiny entry script), one per instance, so every byte here
is paid 200 times in a fleet: it imports only what supervision needs (no subprocess, ctypes or
pathlib: core/spawn.py, core/instance_files.py), and reload's machinery only at a SIGHUP. One
event loop (epoll) serves the bot's pipes, a pidfd that becomes readable the moment the bot
dies, a signal wakeup fd and timers: no polling threads, and an idle supervisor wakes only for its
health check, which rewrites the record only when something in it changed.
Settings and the bot's environment (secrets included) arrive through a pipe (a memfd in the
foreground), never via disk.
Its boot imports no `re`, `enum`, `json` package or `collections` (~25 ms of CPU per supervisor,
paid by every start-all): `_signal` is `signal` without its enums (the constants are the same
ints), `_collections.deque` and `_collections_abc.Callable` are what collections re-exports, and
core/cjson.py is json without its pure-Python layer.
"""
import _signal as signal
import math
import os
import select
import sys
import time
from _collections import deque
from _collections_abc import Callable

from core import cjson, heartbeat, proc
from core.atomic import write_text_atomic
from core.bot_status import read_bot_status
from core.events import (EXITED, FATAL, HANG_RESTART, MEMORY_RESTART, RESTART_LOOP, RestartWindow, WaitingWatch,
                         append_event, rotate_if_over)
from core.exit_codes import BOT_EXIT_CONFIG, BOT_EXIT_TERM, EXIT_FAIL, EXIT_OK, EXIT_USAGE, NOT_RETRIED
from core.instance_files import InstanceFiles
from core.instance_record import write_record
from core.keeper import KeeperLink
from core.log_manager import DatedLog, remove_old_dirs, stamp, today
from core.masker import Masker
from core.ready_fd import READY_FD_ENV
from core.pidfile import AlreadyLocked, InstanceLock, PidLock, read_pid
from core.spawn import Child, no_fd_inherited, spawn
from core.states import State
from core.stop_time import stop_seconds

STDERR_TAIL = 15
READY_POLL = 0.05
PORT_POLL = 0.5    # the first look for web.port; then at 2x the bot's age, until PORT_SEARCH seconds
PORT_SEARCH = 30
STOP_REASON_MAX = 500  # characters of a stop_reason file that reach the registry
MAX_LINE = 65536  # a longer unterminated line (progress bar, binary) is logged in pieces
# record fields that change at every health check: alone they are no reason to rewrite the record
# (its mtime is the check-in, see `check_in`)
CLOCK_FIELDS = ("checked_at", "last_updated")


class Watcher:
    """epoll over the fds the loop serves, each with a tag: what selectors.DefaultSelector gave,
    without its 0.13 MB per supervisor."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        self.tags: dict[int, str] = {}

    def register(self, fd: int, tag: str) -> None:
        self.epoll.register(fd, select.EPOLLIN)
        self.tags[fd] = tag

    def unregister(self, fd: int) -> None:
        self.epoll.unregister(fd)
        del self.tags[fd]

    def select(self, timeout: float) -> list[tuple[int, str]]:
        """The ready fds with their tags (readable, or hung up: a read then sees the end)."""
        return [(fd, self.tags[fd]) for fd, _ in self.epoll.poll(timeout) if fd in self.tags]


def signal_name(num: int) -> str | None:
    """signal.Signals(num).name without enum: of a number's names (SIGABRT and SIGIOT are one),
    the one Signals makes canonical (its members are sorted by value, then name); None if unknown."""
    names = [k for k, v in vars(signal).items()
             if v == num and k.isupper() and k.startswith("SIG") and not k.startswith("SIG_")]
    return min(names) if names else None


def describe_exit(code: int) -> str:
    if code < 0:
        name = signal_name(-code)
        return f"killed by {name}" if name else f"killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """State machine: starting -> running -> (backoff -> starting)* -> stopping/stopped | exited | fatal."""

    def __init__(self, spec: dict, report: Callable[[str], None], keeper: tuple[int, int]) -> None:
        self.spec = spec
        self.iid: str = spec["instance_id"]
        self.s: dict = spec["settings"]
        self.paths = InstanceFiles(self.iid, spec["log_dir"])
        self.keeper = KeeperLink(*keeper)
        self.rec: dict = dict(spec["record"])  # our own record: we are its one writer while we live
        self.record_pending = False  # a write failed (disk full, read-only): retried at each health check
        self.masker = Masker(spec.get("secrets", []))
        # bytes an unfinished secret may occupy at the end of a cut line (the longest secret but one)
        self.secret_span = max((len(x.encode()) for x in spec.get("secrets", []) if x), default=1) - 1
        self._report_cb: Callable[[str], None] | None = report
        max_bytes = int(float(self.s.get("log_max_mb", 20)) * 2**20)
        self.daemon_log = DatedLog(self.paths, "daemon.log", max_bytes)
        self.out_logs = {"stdout": DatedLog(self.paths, "bot_stdout.log", max_bytes),
                         "stderr": DatedLog(self.paths, "bot_stderr.log", max_bytes)}
        self.sel = Watcher()
        self.timers: dict[str, float] = {}
        self.bot: Child | None = None
        self.cpu_meter: proc.CpuMeter | None = None
        self.pipes: dict[int, tuple[str, bytearray]] = {}
        self.ready_fd: int | None = None  # our end of the bot's readiness pipe (core/ready_fd.py)
        self.spawned_at = 0.0  # wall clock, compared with heartbeat mtimes
        self._spawned_mono = 0.0  # monotonic, for run lengths
        self.ready = False
        self.port_found = False
        self.kill_reason: str | None = None
        self.killed_with_orders: str | None = None   # the stop reason of a bot SIGKILLed while cancelling
        self.fatal_reason: str | None = None  # a stop the supervisor itself decided ends `fatal`
        self.stopping = False
        self.stop_flag = False
        self.failures = 0
        self.restart_count = 0
        self.cpu_high = 0
        self.cpu_warning = False
        self.web_port = spec["record"].get("web_port")
        self.stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL)
        self.exit_code: int | None = None
        self.stop_reason: str | None = None
        self.final: str | None = None
        self.log_day = today()
        self.lost_lines = 0
        self.reload_flag = False  # set by SIGHUP; the loop applies the reload (core/reload_supervisor.py)
        self.modules_flag = False  # set by SIGUSR1: the loop logs sys.modules (what a supervisor costs)
        self.reloader = None  # core/reload_supervisor.py, imported at the first SIGHUP: reload is rare
        self.restart_window = RestartWindow()
        self.waiting_watch = WaitingWatch(float((self.s.get("notify") or {}).get("waiting_after_s", 300)))

    # -- reporting -------------------------------------------------------------------------
    def log(self, msg: str, level: str = "INFO") -> None:
        self._write(self.daemon_log, self.masker(f"{stamp()} {level} {msg}"))

    def _write(self, log: DatedLog, line: str) -> None:
        """A log line, or, when the disk is full or logs/ read-only, a count of lines lost (said
        once the disk takes lines again): a log write never ends supervision."""
        try:
            if self.lost_lines:
                log.write_line(f"{stamp()} WARNING {self.lost_lines} log line(s) lost: the log could not be written")
            log.write_line(line)
            self.lost_lines = 0
        except OSError:
            self.lost_lines += 1
            log.close()

    def report(self, line: str) -> None:
        """Tell the waiting CLI once: 'ready ...' or 'failed: ...'."""
        if self._report_cb is not None:
            cb, self._report_cb = self._report_cb, None
            cb(self.masker(line))

    def record(self, **fields: object) -> None:
        """Rewrite our own record (logs/{id}/instance.json): no lock, no shared file, so a bot's
        respawn never waits on another instance. Only when a field changed (a rewrite costs 0.3 ms
        of CPU on ext4; a check-in with nothing new is `check_in`'s mtime). A failed write (disk
        full, read-only logs/) is logged and retried at the next health check; supervision goes on."""
        changed = self.record_pending or any(self.rec.get(k, self) != v for k, v in fields.items()
                                             if k not in CLOCK_FIELDS)
        now = time.time()
        if not changed:
            self.check_in()
            return
        self.rec.update(fields, last_updated=now)
        self.rec["checked_at"] = now  # a rewrite is a check-in too
        try:
            write_record(self.paths.record, self.rec)
        except OSError as exc:
            if not self.record_pending:
                self.log(f"cannot write {self.paths.record}: {exc.strerror or exc}; retrying at each health check",
                         "ERROR")
            self.record_pending = True
            return
        if self.record_pending:
            self.record_pending = False
            self.log(f"{self.paths.record} written again")

    def check_in(self) -> None:
        """Say we are alive without rewriting the record: its mtime is our check-in (readers take
        the later of it and checked_at, core/instance_record.py). A lost record is written again."""
        try:
            os.utime(self.paths.record)
        except OSError:
            self.record_pending = True
            self.record()

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> int:
        # The socket first: it cannot be deleted from under us, so it alone decides who supervises
        # this instance; the pid file stays for the humans and tools that read it.
        self.lock = InstanceLock(self.spec["home"], self.iid)
        lock = PidLock(self.paths.daemon_pid)
        try:
            self.lock.acquire()
            try:
                lock.acquire()
            except AlreadyLocked:
                self.lock.release()
                raise
        except AlreadyLocked as exc:
            self.report(f"failed: {self.iid} is already running (pid {exc.pid})")
            return 1
        except OSError as exc:  # a symlink planted at the pid file, a read-only logs/
            self.report(f"failed: cannot lock {self.paths.daemon_pid}: {exc.strerror or exc}")
            self.lock.release()
            return 1
        try:
            return self._run_locked()
        except Exception as exc:  # noqa: BLE001 - the daemon must leave a reason behind
            self.log(f"supervisor crashed: {exc!r}", "ERROR")
            self.report(f"failed: supervisor error: {exc}")
            self._stop_bot_blocking()
            self.stop_reason = self._read_stop_reason()
            try:
                self.record(status=State.FATAL, last_error=self._with_stop_reason(f"supervisor error: {exc}"),
                            stop_reason=self.stop_reason, bot_pid=None)
            except Exception as again:  # noqa: BLE001 - the registry may be what broke
                self.log(f"cannot record the crash in the registry: {again!r}", "ERROR")
            append_event(self.paths, FATAL, on_error=self.log, reason=f"supervisor error: {exc}", stderr_tail=[])
            return 1
        finally:
            for f in self.out_logs.values():
                f.close()
            self.daemon_log.close()
            self.keeper.close()  # EOF: the keeper ends what is left (nothing, after a clean stop)
            lock.release()
            self.lock.release()

    def _run_locked(self) -> int:
        removed = remove_old_dirs(self.paths.log_dir, int(self.s["log_retention_days"]))
        me = os.getpid()
        self.record(**{"pid": me, "pid_create_time": proc.create_time(me), "checked_at": time.time(),
                       "health_check_interval": float(self.s["health_check_interval"]),
                       "status": State.STARTING, "started_at": time.time(), "restart_count": 0, "exit_code": None,
                       "last_error": None, "stop_reason": None, "bot_pid": None, "bot_create_time": None, "cpu_warning": False,
                       "cpu_percent": None, "memory_mb": None})
        self.log(f"supervisor {me} started for {self.iid}; removed {len(removed)} old log dirs")
        self._tell_keeper(f"tenths {math.ceil(float(self.s['stop_timeout']) * 10)}")
        self._tell_keeper(f"stopfile {self.paths.stop_seconds}")
        self._install_signals()
        self.sel.register(self.lock.fileno(), "lock")
        self.spawn()
        self.timers["health"] = time.monotonic() + float(self.s["health_check_interval"])
        while self.final is None:
            self._loop_once()
        self.log(f"supervisor exiting: {self.final}")
        if self.final in (State.STOPPED, State.EXITED):
            return EXIT_OK
        return EXIT_USAGE if self.exit_code == BOT_EXIT_CONFIG else EXIT_FAIL  # for systemd / the foreground CLI

    def _install_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        self.sel.register(r, "signal")

        def on_stop(signum: int, frame: object) -> None:
            self.stop_flag = True

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, lambda *a: setattr(self, "reload_flag", True))
        signal.signal(signal.SIGUSR1, lambda *a: setattr(self, "modules_flag", True))
        signal.signal(signal.SIGCHLD, lambda *a: None)  # wakes select when pidfd is unavailable

    def _loop_once(self) -> None:
        # Sleep until the next timer: the bot's death (pidfd, or SIGCHLD), its output and our own
        # signals all arrive as readable fds, so an idle daemon wakes only for its health check.
        now = time.monotonic()
        timeout = max(0.0, min(self.timers.values(), default=now + 60.0) - now)
        child_news = False  # the bot's pidfd (or, without pidfds, any signal) woke us
        for fd, tag in self.sel.select(timeout):
            child_news = child_news or tag in ("pidfd", "signal")
            if tag == "signal":
                try:
                    os.read(fd, 512)
                except BlockingIOError:
                    pass
            elif tag == "pidfd":
                pass  # handled by _check_bot below
            elif tag == "ready":
                self._read_ready()
            elif tag == "lock":
                self.lock.accept_all()  # a command asked who holds the instance: SO_PEERCRED told it
            elif fd in self.pipes:
                self._read_pipe(fd)
        if self.stop_flag and not self.stopping:
            self.begin_stop()
        if self.reload_flag and not self.stopping:
            self.reload_flag = False
            self._reloader().on_sighup()
        if self.modules_flag:
            self.modules_flag = False
            self.log(f"loaded modules ({len(sys.modules)}): {' '.join(sorted(sys.modules))}")
        if child_news or (self.bot is not None and self.bot.pidfd is None):
            self._check_bot()
        now = time.monotonic()
        for name, due in list(self.timers.items()):
            if due <= now and self.timers.get(name) == due:
                del self.timers[name]
                getattr(self, f"on_{name}")()

    # -- the bot ---------------------------------------------------------------------------
    def spawn(self, **news: object) -> None:
        """Start the bot; `news` (what the last run ended with) goes into the record written after
        the fork, so nothing but the bot's own stale files is touched between an exit and its respawn."""
        for stale in (self.paths.heartbeat, self.paths.web_port_file, self.paths.stop_reason, self.paths.stop_seconds):
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass
            except OSError:
                pass  # a read-only logs/: the bot's fresh files decide, by their mtime
        self.ready = False
        self.port_found = False  # this run's page port: web.port or the readiness pipe's PORT=
        self.kill_reason = None
        self.killed_with_orders = None
        self.spawned_at = time.time()
        self._spawned_mono = time.monotonic()
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            for fd in (out_w, err_w, ready_w):  # the bot's ends block, as any program expects
                os.set_blocking(fd, True)
            os.set_inheritable(ready_w, True)  # the one fd besides 0-2 the bot gets
            env = {**self.spec["env"], READY_FD_ENV: str(ready_w)}
            pid = spawn(self.spec["argv"], env, self.spec["cwd"], out_w, err_w, new_session=True)
        except OSError as exc:
            for fd in (out_r, err_r, ready_r):
                os.close(fd)
            self.finish(State.FATAL, f"cannot start the bot {self.spec['argv'][:2]}: {exc}")
            return
        finally:
            for fd in (out_w, err_w, ready_w):
                os.close(fd)
        self.bot = Child(pid)
        bot_ct = proc.create_time(pid)
        self.cpu_meter = proc.CpuMeter(pid)
        self._tell_keeper(f"{pid} {proc.start_ticks(pid)}")
        try:
            write_text_atomic(self.paths.bot_pid, f"{pid}\n")  # replaces a planted symlink, never writes through it
        except OSError as exc:  # the record names the bot too; the pid file is a convenience
            self.log(f"cannot write {self.paths.bot_pid}: {exc.strerror or exc}", "ERROR")
        for name, fd in (("stdout", out_r), ("stderr", err_r)):
            try:
                self.out_logs[name].ensure_open()
            except OSError:
                pass  # a full disk: lines are counted as lost until it takes them again
            self.pipes[fd] = (name, bytearray())
            self.sel.register(fd, name)
        if self.bot.pidfd is not None:
            self.sel.register(self.bot.pidfd, "pidfd")
        self.ready_fd = ready_r
        self.sel.register(ready_r, "ready")
        self.record(**news, status=State.STARTING, bot_pid=pid, bot_create_time=bot_ct,
                    restart_count=self.restart_count)
        self.log(f"bot started: pid {pid}: {' '.join(self.spec['argv'])}")
        self.timers["ready"] = time.monotonic() + READY_POLL
        self.timers["port"] = time.monotonic() + PORT_POLL

    def _read_pipe(self, fd: int) -> bool:
        """Log the complete lines available now; False when nothing more (EOF closes the pipe)."""
        name, buf = self.pipes[fd]
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            self._close_pipe(fd)
            return False
        buf.extend(chunk)
        *lines, rest = buf.split(b"\n")
        if len(rest) >= MAX_LINE:
            piece, rest = self._cut(rest)
            lines.append(piece)
        self.pipes[fd] = (name, bytearray(rest))
        for raw in lines:
            self._emit(name, raw)
        return True

    def _cut(self, long: bytes) -> tuple[bytes, bytes]:
        """Split an over-long unterminated line so that no secret is ever cut in two: mask what is
        complete first, then keep back as many bytes as a secret could still need (a secret that
        began in them is masked once the rest of it arrives)."""
        masked = self.masker(long.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        keep = min(self.secret_span, len(masked))
        return masked[:len(masked) - keep], masked[len(masked) - keep:]

    def _emit(self, name: str, raw: bytes) -> None:
        line = self.masker(raw.decode("utf-8", "replace").rstrip("\r"))
        self._write(self.out_logs[name], line)
        if name == "stderr":
            self.stderr_tail.append(line)

    def _close_pipe(self, fd: int) -> None:
        name, buf = self.pipes.pop(fd)
        if buf:
            self._emit(name, bytes(buf))
        self.sel.unregister(fd)
        os.close(fd)

    def _drain_pipes(self) -> None:
        """Read what the dead bot left, then close: a grandchild may hold the pipes open."""
        for fd in list(self.pipes):
            while self._read_pipe(fd):
                pass
            if fd in self.pipes:
                self._close_pipe(fd)

    def _check_bot(self) -> None:
        if self.bot is None or self.bot.poll() is None:
            return
        code = self.bot.returncode
        self._drain_pipes()
        self._close_ready_fd()
        if self.bot.pidfd is not None:
            self.sel.unregister(self.bot.pidfd)
            self.bot.close_pidfd()
        proc.kill_group(self.bot.pid, None)  # what it left in its group; the keeper hears at the next turn
        self.bot, self.cpu_meter = None, None
        self.timers.pop("kill", None)
        self.on_bot_exit(code, time.monotonic() - self._spawned_mono)

    def _kill_bot_group(self) -> None:
        """SIGKILL whatever the bot left in its process group (grandchildren too)."""
        pid = self.bot.pid if self.bot else None
        if pid:
            proc.kill_group(pid, None)
            if self.bot.returncode is not None:
                self._tell_keeper("0")  # nothing of that group is left for the keeper to end

    def _tell_keeper(self, line: str) -> None:
        try:
            self.keeper.tell(line)
        except OSError as exc:
            self.log(f"cannot reach the keeper of the bot group: {exc}", "ERROR")

    def _read_stop_reason(self) -> str | None:
        """The bot's own last word (logs/{id}/stop_reason), masked, or None."""
        try:
            with open(self.paths.stop_reason, errors="replace") as fh:
                text = fh.read(64 * 1024).strip()
        except OSError:
            return None
        return self.masker(" ".join(text.split())[:STOP_REASON_MAX]) if text else None

    def on_bot_exit(self, code: int, ran: float) -> None:
        self.exit_code = code
        self.stop_reason = self._read_stop_reason() or self.killed_with_orders
        reason = self.kill_reason or describe_exit(code)
        if not self.stopping and not self.kill_reason and code in (BOT_EXIT_TERM, -signal.SIGTERM):
            reason = f"ended by a SIGTERM the supervisor did not send ({reason})"  # restarted per policy
        tail = " | ".join(list(self.stderr_tail)[-5:])
        self.log(f"bot {reason} after {ran:.1f}s" + (f"; stderr: {tail}" if tail and code else ""),
                 "INFO" if code == 0 or self.stopping else "WARNING")
        if self.stop_reason:
            self.log(f"bot stop reason: {self.stop_reason}", "WARNING")
        if self.stopping:
            self.finish(State.FATAL if self.fatal_reason else State.STOPPED, self.fatal_reason)
            return
        if code == 0 and not self.kill_reason:
            self.finish(State.EXITED, "bot exited with code 0 (finished)")
            return
        detail = f"bot {reason}" + (f": {tail}" if tail else "")
        if code in NOT_RETRIED and not self.kill_reason:  # before or after ready
            self.finish(State.FATAL, f"{detail} (code {code}, {NOT_RETRIED[code]}: not retried)")
            return
        if not self.s.get("auto_restart", True):
            self.finish(State.FATAL, f"{detail} (auto_restart is off)")
            return
        self.failures = self.failures + 1 if ran < float(self.s["stable_uptime"]) else 1
        limit = int(self.s["max_restart_attempts"])
        if self.failures > limit:
            self.finish(State.FATAL, f"gave up after {self.failures} quick failures (max_restart_attempts {limit}); last: {detail}")
            return
        delay = min(float(self.s["restart_delay"]) * 2 ** (self.failures - 1), float(self.s["max_backoff"]))
        due = time.monotonic() + delay  # counted from the exit, not from after our own writes
        news = {"exit_code": code, "last_error": self._with_stop_reason(detail), "stop_reason": self.stop_reason}
        self.log(f"restarting in {delay:.2f}s (failure {self.failures}/{limit})")
        self.timers.pop("ready", None)
        quick_left = limit - self.failures if ran < float(self.s["stable_uptime"]) else None
        looping = self.restart_window.add(time.monotonic(), quick_left)
        if delay > 0:
            self._tell_keeper("0")  # (with no backoff, the new group's line replaces the old one)
            self.record(status=State.BACKOFF, **news, bot_pid=None, bot_create_time=None)
            self.timers["restart"] = due
        else:  # no backoff: the new bot first, then the record (and the event's fsync) the trader reads
            self.on_restart(**news)
        if looping:
            append_event(self.paths, RESTART_LOOP, on_error=self.log, restarts=self.restart_count + (delay > 0),
                         window_s=600, last=detail)

    def on_reload(self) -> None:
        self._reloader().poll()

    def _reloader(self):  # -> core.reload_supervisor.SupervisorReload (not imported before a reload)
        if self.reloader is None:
            from core.reload_supervisor import SupervisorReload

            self.reloader = SupervisorReload(self)
        return self.reloader

    def on_restart(self, **news: object) -> None:
        self.restart_count += 1
        self.spawn(**news)

    def on_ready(self) -> None:
        if self.bot is None or self.ready:
            return
        beat = heartbeat.age(self.paths.heartbeat, since=self.spawned_at - 1) is not None
        alive_for = time.time() - self.spawned_at
        if not beat and self.s.get("ready_on", "startsecs") == "heartbeat":
            limit = float(self.s.get("start_timeout", 120))
            if alive_for >= limit:
                self.fatal_reason = f"no heartbeat within {limit:g} s"
                self.log(f"bot {self.bot.pid} sent {self.fatal_reason} (start_timeout): stopping it", "ERROR")
                self.begin_stop()
            else:
                self.timers["ready"] = time.monotonic() + READY_POLL
            return
        if not beat and alive_for < float(self.s["startsecs"]):
            self.timers["ready"] = time.monotonic() + READY_POLL
            return
        self._become_ready("first heartbeat" if beat else "alive for startsecs")

    def _become_ready(self, why: str) -> None:
        self.ready = True
        self.timers.pop("ready", None)
        self.cpu_meter = proc.CpuMeter(self.bot.pid)  # measure from here: start-up imports are not load
        self._learn_port(record=False)
        self.record(status=State.RUNNING, web_port=self.web_port)
        first_sample = time.monotonic() + 1.0  # so `list` shows CPU and memory soon after a start
        self.timers["health"] = min(self.timers.get("health", first_sample), first_sample)
        self.log(f"bot {self.bot.pid} ready ({why})")
        self.report(f"ready pid={os.getpid()} bot={self.bot.pid} port={self.web_port}")

    def _read_ready(self) -> None:
        """The bot's lines on the readiness pipe (core/ready_fd.py): PORT=N, READY=1."""
        try:
            data = os.read(self.ready_fd, 4096)
        except BlockingIOError:
            return
        if not data:
            self._close_ready_fd()
            return
        for line in data.decode(errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key == "PORT" and value.isdigit() and 0 < int(value) < 65536:
                self._take_port(int(value), record=self.ready)
            elif key == "READY" and value == "1" and self.bot is not None and not self.ready and not self.stopping:
                self._become_ready("it said so")

    def _close_ready_fd(self) -> None:
        if self.ready_fd is not None:
            self.sel.unregister(self.ready_fd)
            os.close(self.ready_fd)
            self.ready_fd = None

    def on_port(self) -> None:
        """Look for the port the bot's page bound: soon after the start, then ever more rarely (a
        program without a page must not wake us 60 times; the health check looks too)."""
        alive_for = time.time() - self.spawned_at
        if self.bot is not None and not self._learn_port() and alive_for < PORT_SEARCH:
            self.timers["port"] = time.monotonic() + max(PORT_POLL, alive_for)

    def _learn_port(self, record: bool = True) -> bool:
        """Take the port the bot's page bound; record it now unless the caller records it with more."""
        port = read_pid(self.paths.web_port_file)
        if port:
            self._take_port(port, record)
        return self.port_found

    def _take_port(self, port: int, record: bool) -> None:
        self.port_found = True
        self.timers.pop("port", None)
        if port != self.web_port:
            self.web_port = port
            if record:
                self.record(web_port=port)
            self.log(f"bot page bound port {port}")

    # -- health ----------------------------------------------------------------------------
    def on_health(self) -> None:
        self.timers["health"] = time.monotonic() + float(self.s["health_check_interval"])
        rotate_if_over(self.paths.events, self.log)  # we hold the instance lock: its one rotator
        if today() != self.log_day:
            self.log_day = today()
            remove_old_dirs(self.paths.log_dir, int(self.s["log_retention_days"]))
        if self._database_lost():
            return
        sample = None
        if self.bot is not None and self.cpu_meter is not None and not self.kill_reason:
            sample = self.cpu_meter.sample()
        if sample is None:
            self.record(checked_at=time.time())  # the check-in: readers call a silent supervisor unresponsive
            return
        cpu, rss = sample
        rss_mb = rss / 2**20
        over_memory = rss_mb > float(self.s["memory_limit_mb"])
        if not self.port_found:  # a bot binds its page once: after that, nothing to read
            self._learn_port(record=False)
        if not over_memory:
            self._check_cpu(cpu)
        # one write of our own record per check: it is also our check-in
        self.record(cpu_percent=round(cpu, 1), memory_mb=round(rss_mb, 1), cpu_warning=self.cpu_warning,
                    web_port=self.web_port, checked_at=time.time())
        if (news := self.waiting_watch.check(read_bot_status(self.paths.bot_status), time.time())):
            append_event(self.paths, news[0], on_error=self.log, **news[1])
        if over_memory:
            self.kill_bot(f"memory {rss_mb:.0f} MB over memory_limit_mb {self.s['memory_limit_mb']}")
            append_event(self.paths, MEMORY_RESTART, on_error=self.log, reason=self.kill_reason)
            return
        age = heartbeat.age(self.paths.heartbeat, since=self.spawned_at - 1)
        if age is not None and age > float(self.s["heartbeat_timeout"]):
            self.kill_bot(f"hung: no heartbeat for {age:.1f}s (heartbeat_timeout {self.s['heartbeat_timeout']})")
            append_event(self.paths, HANG_RESTART, on_error=self.log, reason=self.kill_reason)

    def _database_lost(self) -> bool:
        """True (and the instance stopping, fatal) when the database the bot used is gone or was
        replaced: a bot on a fresh file would silently trade a reset account (a paper balance back
        at 10,000, no memory of its orders). Learnt from the first check that sees the file."""
        db_path = self.rec.get("db_path")
        if not db_path or self.stopping:
            return False
        try:
            st = os.stat(db_path)
            now = [st.st_dev, st.st_ino]
        except FileNotFoundError:
            now = None
        except OSError:
            return False
        known = self.rec.get("db_identity")
        if known is None:
            if now is not None:
                self.record(db_identity=now)
            return False
        if now == known:
            return False
        what = "was deleted" if now is None else "was replaced by another file"
        self.fatal_reason = f"database {db_path} {what} while the bot ran: stopped it (start --fresh-db for a new one)"
        self.log(self.fatal_reason, "ERROR")
        self.begin_stop()
        return True

    def _check_cpu(self, cpu: float) -> None:
        """Update the CPU warning (three checks over the limit); on_health records it."""
        over = cpu > float(self.s["cpu_limit_percent"])
        self.cpu_high = self.cpu_high + 1 if over else 0
        warn = self.cpu_high >= 3
        if warn != self.cpu_warning:
            self.cpu_warning = warn
            if warn:
                self.log(f"bot CPU {cpu:.0f}% over cpu_limit_percent {self.s['cpu_limit_percent']} for 3 checks", "WARNING")

    def kill_bot(self, reason: str) -> None:
        """Restart a misbehaving bot: SIGTERM now, SIGKILL its group after stop_timeout."""
        if self.bot is None:
            return
        self.kill_reason = reason
        self.log(f"restarting bot {self.bot.pid}: {reason}", "WARNING")
        self._signal_bot(signal.SIGTERM)
        self.timers["kill"] = time.monotonic() + self._stop_wait()

    def _stop_bot_blocking(self) -> None:
        """The error path's stop: SIGTERM (the bot cancels its orders), wait stop_timeout, SIGKILL the group."""
        if self.bot is not None and self.bot.poll() is None:
            self.log(f"stopping bot {self.bot.pid}: SIGTERM, SIGKILL after stop_timeout", "WARNING")
            self._signal_bot(signal.SIGTERM)
            if self.bot.wait(self._stop_wait()) is None:
                self.log(f"bot {self.bot.pid} still alive after stop_timeout: SIGKILL to its process group", "WARNING")
        self._kill_bot_group()

    def _stop_wait(self) -> float:
        """stop_timeout, or the longer time the bot asked for to cancel its orders (core/stop_time.py)."""
        return stop_seconds(self.paths.stop_seconds, float(self.s.get("stop_timeout", 10)))

    def _signal_bot(self, sig: int) -> None:
        if self.bot is not None and self.bot.returncode is None:
            try:
                os.kill(self.bot.pid, sig)
            except ProcessLookupError:
                pass

    def on_kill(self) -> None:
        if self.bot is not None:
            self.log(f"bot {self.bot.pid} still alive after stop_timeout: SIGKILL to its process group", "WARNING")
            count = (read_bot_status(self.paths.bot_status) or {}).get("open_order_count")
            if count:       # it had no time to say what it left: its last published count is the best word
                self.killed_with_orders = (f"killed while stopping after {self._stop_wait():.0f} s: {count} orders "
                                           "may remain on the exchange (its last count before the stop)")
            self._kill_bot_group()

    # -- stopping --------------------------------------------------------------------------
    def begin_stop(self) -> None:
        self.stopping = True
        self.timers.pop("restart", None)
        self.record(status=State.STOPPING)
        self.log("stop requested")
        if self.bot is None:
            self.finish(State.STOPPED, None)
            return
        self._signal_bot(signal.SIGTERM)
        self.timers["kill"] = time.monotonic() + self._stop_wait()

    def _with_stop_reason(self, error: str | None) -> str | None:
        """last_error: the bot's stop reason first (what the trader must see), then our own words."""
        if not self.stop_reason:
            return error
        return f"{self.stop_reason} ({error})" if error else self.stop_reason

    def finish(self, state: str, error: str | None) -> None:
        self.final = state
        self._tell_keeper("0")  # no bot group left for the keeper to end
        self.timers.clear()
        if state == State.STOPPED or (state == State.EXITED and self.stop_reason):
            error = None  # a requested stop or a normal end: only the bot's stop reason is news
        last_error = self._with_stop_reason(error)
        self.record(status=state, exit_code=self.exit_code, last_error=last_error, stop_reason=self.stop_reason,
                    bot_pid=None, bot_create_time=None, cpu_percent=None, memory_mb=None,
                    restart_count=self.restart_count)
        self.log(f"state {state}" + (f": {last_error}" if last_error else ""),
                 "ERROR" if state == State.FATAL else "INFO")
        if state == State.FATAL:
            append_event(self.paths, FATAL, on_error=self.log, reason=last_error, stderr_tail=list(self.stderr_tail)[-5:])
        elif state == State.EXITED or self.stop_reason:
            append_event(self.paths, EXITED, on_error=self.log, state=state, stop_reason=self.stop_reason or "finished")
        if state == State.FATAL:
            self.report(f"failed: {last_error}")
        else:
            self.report(f"failed: bot {state} before it was ready" + (f" ({last_error})" if last_error else ""))


def read_spec(fd: int) -> dict:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return cjson.loads(b"".join(chunks))


def pipe_reporter(fd: int) -> Callable[[str], None]:
    """Write the one readiness line to the CLI and close the pipe (the CLI then exits)."""

    def send(line: str) -> None:
        try:
            os.write(fd, (line + "\n").encode())
        except OSError:
            pass  # the CLI is gone; nothing to tell
        finally:
            os.close(fd)

    return send


def run_foreground(spec: dict, keeper: tuple[int, int]) -> int:
    """`start` without -d exec'd us in its own place: its output and exit code are ours. The
    readiness line, then the final state (from our own record), as the CLI printed them."""
    sup = Supervisor(spec, lambda line: print(line, flush=True), keeper)
    code = sup.run()
    error = sup.rec.get("last_error")
    print(f"{sup.iid}: {sup.rec.get('status')}" + (f" ({error})" if error else ""),
          file=sys.stdout if code == EXIT_OK else sys.stderr, flush=True)
    return code


def main(keeper: tuple[int, int], spec_fd: int, ready: int | str) -> int:
    """Supervise the instance whose spec comes through spec_fd (core/supervisor.py): report on
    the readiness pipe `ready`, or in the terminal when it is "foreground" (a foreground `start`
    exec'd us)."""
    spec = read_spec(spec_fd)
    no_fd_inherited()  # the readiness pipe and the account lock stay ours, never the bot's
    if isinstance(ready, str):
        return run_foreground(spec, keeper)
    return Supervisor(spec, pipe_reporter(ready), keeper).run()
