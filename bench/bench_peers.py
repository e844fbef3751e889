"""Our fleet beside supervisord and PM2 on the same child program, interleaved in one run (issue 12).

    .venv/bin/python bench/bench_peers.py [--n 50] [--quick] [--timeout 600] [--no-pm2] [--dir D]

Each manager supervises N copies of tests/fake_bot.py (stdlib only, one heartbeat a second) in its
own temporary home / config; they run side by side so that memory and idle CPU are sampled over the
same window, and the timed steps alternate between the managers (ours, supervisord, PM2, ours, ...)
so that a neighbour's load falls on each alike. Printed per figure: ours, each peer's and the
ratio ours / peer (below 1: we are better). Figures:

- management memory: PSS summed over the managers' own processes (our supervisors; supervisord;
  PM2's God daemon), children excluded;
- idle CPU of those processes over a fixed window, in % of one core;
- respawn: SIGKILL a child -> a new child of the same manager exists (polled every 0.5 ms);
- start N programs until every child has beaten its heartbeat (`start-all`, then again with
  `start -c CFG -d` ten at a time; `supervisorctl start fake:*`; `pm2 start ecosystem.json`);
- `list` / `supervisorctl status` / `pm2 ls` with N instances (median wall time);
- one paper bot (run.py, same config and environment contract) from the start command until its
  page answers /health with 200.

supervisord is pip-installed into its own venv under /tmp, PM2 npm-installed under /tmp; neither
touches the project's venv. PM2 is skipped (saying why) where npm is missing or its registry is
unreachable. Only loopback traffic; everything is bounded by --timeout; every process started is
recorded by pid (and create time) and killed at the end, also on Ctrl-C or SIGTERM. The machine may
be shared: figures are medians, and a busy neighbour shows as noise in all columns alike.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_list_vs_supervisorctl import supervisor_bin, supervisord_header  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.web.paper_bot import write_paper_config  # noqa: E402

DM = REPO / "core" / "daemon_manager.py"
FAKE_BOT = REPO / "tests" / "fake_bot.py"
RUN_PY = REPO / "run.py"
CHILD_ARGS = ["--interval", "1"]
PM2_DIR = Path(tempfile.gettempdir()) / "gridbot-bench-pm2"
POLL = 0.0005


class Deadline(Exception):
    """The run went past --timeout (raised from SIGALRM, so it unwinds into the clean-up)."""


def wait_until(pred: Callable[[], object], timeout: float, what: str, interval: float = 0.01) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > end:
            raise SystemExit(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 120, ok=(0,)) -> str:
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if out.returncode not in ok:
        raise SystemExit(f"{' '.join(argv[:4])} ... exited {out.returncode}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return out.stdout


def children(pid: int) -> set[int]:
    """Direct children of pid, from /proc (every thread's list: node forks from any of them)."""
    kids: set[int] = set()
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            kids.update(int(x) for x in Path(path).read_text().split())
        except OSError:
            pass
    return kids


def is_child_program(pid: int) -> bool:
    """The supervised program (fake bot or run.py), as opposed to a manager's own helper."""
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return str(FAKE_BOT) in cmd or str(RUN_PY) in cmd


def plane(pids: list[int]) -> list[int]:
    """The management plane: the managers plus their helpers (our keeper), never the programs."""
    return [*pids, *(k for p in pids for k in children(p) if not is_child_program(k))]


def heartbeats_since(dirs: list[Path], t0: float) -> bool:
    """Every child has beaten since t0 (wall clock): the same 'up' for every manager."""
    for d in dirs:
        try:
            if (d / "heartbeat").stat().st_mtime < t0:
                return False
        except OSError:
            return False
    return True


def health_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


class Manager:
    """One process manager driving N fake bots and one paper bot; subclasses say how."""

    name = ""

    def __init__(self, root: Path, n: int, tracker: dict[int, psutil.Process]) -> None:
        self.root, self.n, self.tracker = root, n, tracker
        root.mkdir(parents=True)

    def track(self) -> None:
        """Record the managers and their descendants (pid + create time) for the final kill."""
        for pid in self.mgmt_pids():
            try:
                p = psutil.Process(pid)
                for q in [p, *p.children(recursive=True)]:
                    self.tracker.setdefault(q.pid, q)
            except psutil.Error:
                pass

    # what each manager implements
    def mgmt_pids(self) -> list[int]: raise NotImplementedError
    def log_dirs(self) -> list[Path]: raise NotImplementedError
    def start_fleet(self) -> None: raise NotImplementedError
    def list_argv(self) -> tuple[list[str], dict[str, str] | None]: raise NotImplementedError
    def respawn_parent(self) -> int: raise NotImplementedError
    def stop_fleet(self) -> None: raise NotImplementedError
    def start_bot(self) -> None: raise NotImplementedError
    def stop_bot(self) -> None: raise NotImplementedError
    def shutdown(self) -> None: raise NotImplementedError


class Ours(Manager):
    name = "ours"

    def __init__(self, root: Path, n: int, tracker: dict[int, psutil.Process]) -> None:
        super().__init__(root, n, tracker)
        for d in ("config/active", "logs", "database"):
            (root / d).mkdir(parents=True)
        self.env = {**os.environ, "GRIDBOT_HOME": str(root)}
        self.ids = [f"peer_{i:03d}" for i in range(n)]
        for i, iid in enumerate(self.ids):
            doc = {"metadata": {"instance_id": iid, "exchange": "paper", "symbol": f"{iid.upper()}_PERP"},
                   "daemon_config": {"script_path": str(FAKE_BOT), "bot_args": CHILD_ARGS, "web_port": free_port(),
                                     "restart_delay": 0, "max_backoff": 0, "max_restart_attempts": 10**6,
                                     "stable_uptime": 0, "startsecs": 0.2, "stop_timeout": 5,
                                     "health_check_interval": 30},
                   "strategy_config": {"grid_lower_price": 1, "grid_upper_price": 2, "grid_num": 2}}
            (root / "config" / "active" / f"{iid}.json").write_text(json.dumps(doc))
        self.bot_home = root / "bot_home"
        for d in ("config/active", "logs", "database"):
            (self.bot_home / d).mkdir(parents=True)
        self.bot_port = free_port()
        self.bot_cfg = write_paper_config(self.bot_home, "peer_bot", self.bot_port)

    def cli(self, home: Path, *args: str) -> str:
        return run([sys.executable, str(DM), "--home", str(home), *args], env={**os.environ, "GRIDBOT_HOME": str(home)})

    def _supervisors(self, home: Path) -> list[int]:
        pids = []
        for rec_path in home.glob("logs/*/instance.json"):
            try:
                pid = json.loads(rec_path.read_text()).get("pid")
            except (OSError, ValueError):
                continue
            if pid and psutil.pid_exists(pid):
                pids.append(pid)
        return pids

    def mgmt_pids(self) -> list[int]:
        return self._supervisors(self.root) + self._supervisors(self.bot_home)

    def log_dirs(self) -> list[Path]:
        return [self.root / "logs" / iid for iid in self.ids]

    def start_fleet(self) -> None:
        self.cli(self.root, "start-all")

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [sys.executable, str(DM), "--home", str(self.root), "list"], self.env

    def respawn_parent(self) -> int:
        rec = json.loads((self.root / "logs" / self.ids[0] / "instance.json").read_text())
        return rec["pid"]

    def stop_fleet(self) -> None:
        self.cli(self.root, "stop-all")

    def start_fleet_parallel(self, batch: int = 10) -> None:
        """`start -c CFG -d` for every config, `batch` at a time: what a script without start-all does."""
        configs = sorted((self.root / "config" / "active").glob("*.json"))
        for i in range(0, len(configs), batch):
            procs = [subprocess.Popen([sys.executable, str(DM), "--home", str(self.root), "start", "-c", str(c), "-d"],
                                      env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE) for c in configs[i:i + batch]]
            for p in procs:
                _, err = p.communicate(timeout=120)
                if p.returncode:
                    raise SystemExit(f"start -d failed: {err.decode()[-2000:]}")

    def start_bot(self) -> None:
        self.cli(self.bot_home, "start", "-c", str(self.bot_cfg), "-d")

    def stop_bot(self) -> None:
        self.cli(self.bot_home, "stop", "-c", str(self.bot_cfg))

    def shutdown(self) -> None:
        for home in (self.root, self.bot_home):
            subprocess.run([sys.executable, str(DM), "--home", str(home), "stop-all"], capture_output=True,
                           env={**os.environ, "GRIDBOT_HOME": str(home)}, timeout=60, stdin=subprocess.DEVNULL)


def bot_env(home: Path, iid: str, port: int) -> dict[str, str]:
    """The supervisor-bot environment contract of docs/internals.md, as a peer must spell it out."""
    log_dir = home / "logs" / iid
    log_dir.mkdir(parents=True, exist_ok=True)
    return {"GRIDBOT_HOME": str(home), "INSTANCE_ID": iid, "DB_PATH": str(home / "database" / f"{iid}.db"),
            "WEB_PORT": str(port), "LOG_DIR": str(log_dir), "PYTHONUNBUFFERED": "1"}


class Supervisord(Manager):
    name = "supervisord"

    def __init__(self, root: Path, n: int, tracker: dict[int, psutil.Process]) -> None:
        super().__init__(root, n, tracker)
        for i in range(n):
            (root / "sv" / f"{i:03d}").mkdir(parents=True)
        home = root / "bot_home"
        for d in ("config/active", "logs", "database"):
            (home / d).mkdir(parents=True)
        self.bot_port = free_port()
        cfg = write_paper_config(home, "peer_bot", self.bot_port)
        env = ",".join(f'{k}="{v}"' for k, v in bot_env(home, "peer_bot", self.bot_port).items())
        self.conf = root / "supervisord.conf"
        self.conf.write_text(supervisord_header(root) + f"""[program:fake]
command={sys.executable} {FAKE_BOT} {' '.join(CHILD_ARGS)}
process_name=%(program_name)s_%(process_num)03d
numprocs={n}
autostart=false
autorestart=true
startsecs=0
startretries=1000000
environment=LOG_DIR="{root}/sv/%(process_num)03d"
[program:paper]
command={sys.executable} {RUN_PY} --config {cfg}
directory={REPO}
autostart=false
autorestart=true
startsecs=0
stopwaitsecs=15
environment={env}
""")
        self.ctl = [str(supervisor_bin() / "supervisorctl"), "-c", str(self.conf)]
        run([str(supervisor_bin() / "supervisord"), "-c", str(self.conf)])
        wait_until(lambda: self._pid() is not None, 30, "supervisord's pid file")
        self.track()

    def _pid(self) -> int | None:
        try:
            return int((self.root / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None

    def mgmt_pids(self) -> list[int]:
        pid = self._pid()
        return [pid] if pid else []

    def log_dirs(self) -> list[Path]:
        return [self.root / "sv" / f"{i:03d}" for i in range(self.n)]

    def start_fleet(self) -> None:
        run([*self.ctl, "start", "fake:*"])

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [*self.ctl, "status"], None

    def respawn_parent(self) -> int:
        return self.mgmt_pids()[0]

    def stop_fleet(self) -> None:
        run([*self.ctl, "stop", "fake:*"])

    def start_bot(self) -> None:
        run([*self.ctl, "start", "paper"])

    def stop_bot(self) -> None:
        run([*self.ctl, "stop", "paper"])

    def shutdown(self) -> None:
        subprocess.run([*self.ctl, "shutdown"], capture_output=True, timeout=60)


class PM2(Manager):
    name = "PM2"

    def __init__(self, root: Path, n: int, tracker: dict[int, psutil.Process]) -> None:
        super().__init__(root, n, tracker)
        self.env = {**os.environ, "PM2_HOME": str(root / "pm2home")}
        apps = []
        for i in range(n):
            log_dir = root / "pm" / f"{i:03d}"
            log_dir.mkdir(parents=True)
            apps.append({"name": f"fake_{i:03d}", "script": str(FAKE_BOT), "interpreter": sys.executable,
                         "args": CHILD_ARGS, "autorestart": True, "restart_delay": 0, "max_restarts": 10**6,
                         "env": {"LOG_DIR": str(log_dir)}, "out_file": str(log_dir / "out.log"),
                         "error_file": str(log_dir / "err.log")})
        self.eco = root / "fleet.config.json"
        self.eco.write_text(json.dumps({"apps": apps}))
        home = root / "bot_home"
        for d in ("config/active", "logs", "database"):
            (home / d).mkdir(parents=True)
        self.bot_port = free_port()
        cfg = write_paper_config(home, "peer_bot", self.bot_port)
        self.bot_eco = root / "bot.config.json"
        self.bot_eco.write_text(json.dumps({"apps": [{
            "name": "paper", "script": str(RUN_PY), "interpreter": sys.executable, "args": ["--config", str(cfg)],
            "cwd": str(REPO), "autorestart": True, "kill_timeout": 15000,
            "env": bot_env(home, "peer_bot", self.bot_port)}]}))
        run([self.bin(), "ping"], env=self.env)  # starts the God daemon
        wait_until(lambda: self.mgmt_pids(), 30, "PM2's pid file")
        self.track()

    @staticmethod
    def bin() -> str:
        return str(PM2_DIR / "node_modules" / ".bin" / "pm2")

    @staticmethod
    def install() -> str | None:
        """Install PM2 under /tmp on first use; the reason it cannot be had, or None."""
        if Path(PM2.bin()).exists():
            return None
        if not shutil.which("npm"):
            return "npm is not installed"
        PM2_DIR.mkdir(exist_ok=True)
        try:
            out = subprocess.run(["npm", "install", "--prefix", str(PM2_DIR), "--no-audit", "--no-fund", "pm2"],
                                 capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return "npm install pm2 timed out (registry unreachable?)"
        if out.returncode or not Path(PM2.bin()).exists():
            return f"npm install pm2 failed: {(out.stderr.strip().splitlines() or ['?'])[-1]}"
        return None

    def mgmt_pids(self) -> list[int]:
        try:
            pid = int((self.root / "pm2home" / "pm2.pid").read_text())
        except (OSError, ValueError):
            return []
        return [pid] if psutil.pid_exists(pid) else []

    def log_dirs(self) -> list[Path]:
        return [self.root / "pm" / f"{i:03d}" for i in range(self.n)]

    def start_fleet(self) -> None:
        run([self.bin(), "start", str(self.eco)], env=self.env)

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [self.bin(), "ls"], self.env

    def respawn_parent(self) -> int:
        return self.mgmt_pids()[0]

    def stop_fleet(self) -> None:
        run([self.bin(), "delete", str(self.eco)], env=self.env)

    def start_bot(self) -> None:
        run([self.bin(), "start", str(self.bot_eco)], env=self.env)

    def stop_bot(self) -> None:
        run([self.bin(), "delete", "paper"], env=self.env)

    def shutdown(self) -> None:
        subprocess.run([self.bin(), "kill"], env=self.env, capture_output=True, timeout=60)


# ---- the measurements: each takes the managers and returns {name: value}


def pss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_full_info().pss
        except psutil.Error:
            pass
    return total / 2**20


def idle_cpu(mgrs: list[Manager], window: float) -> dict[str, float]:
    """% of one core used by each management plane over the same window."""
    procs = {m.name: [psutil.Process(p) for p in plane(m.mgmt_pids())] for m in mgrs}

    def cpu(ps: list[psutil.Process]) -> float:
        total = 0.0
        for p in ps:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                pass
        return total

    before = {k: cpu(v) for k, v in procs.items()}
    t0 = time.monotonic()
    time.sleep(window)
    wall = time.monotonic() - t0
    return {k: (cpu(v) - before[k]) / wall * 100 for k, v in procs.items()}


def start_fleet_timed(m: Manager, start: Callable[[], None] | None = None) -> float:
    t_wall, t0 = time.time(), time.perf_counter()
    (start or m.start_fleet)()
    wait_until(lambda: heartbeats_since(m.log_dirs(), t_wall), 180, f"{m.name}: all {m.n} children up")
    return time.perf_counter() - t0


def respawn_once(m: Manager) -> float:
    parent = m.respawn_parent()
    wait_until(lambda: any(is_child_program(k) for k in children(parent)), 10, f"{m.name}: a child to kill")
    before = children(parent)
    victim = min(k for k in before if is_child_program(k))
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    end = t0 + 30
    while not (children(parent) - before):
        if time.perf_counter() > end:
            raise SystemExit(f"{m.name}: no new child 30 s after the kill")
        time.sleep(POLL)
    dt = time.perf_counter() - t0
    m.track()
    return dt


def list_once(m: Manager) -> float:
    argv, env = m.list_argv()
    t0 = time.perf_counter()
    run(argv, env=env, ok=(0, 3))  # supervisorctl status exits 3 when some program is not running
    return time.perf_counter() - t0


def bot_once(m: Manager) -> float:
    t0 = time.perf_counter()
    m.start_bot()
    m.track()
    wait_until(lambda: health_ok(m.bot_port), 60, f"{m.name}: the paper bot's page", interval=0.005)
    dt = time.perf_counter() - t0
    m.track()
    m.stop_bot()
    wait_until(lambda: not health_ok(m.bot_port), 30, f"{m.name}: the paper bot to stop")
    return dt


def interleaved(mgrs: list[Manager], runs: int, fn: Callable[[Manager], float],
                pause: float = 0.0) -> dict[str, float]:
    """Median of fn per manager, the managers taking turns run after run."""
    samples: dict[str, list[float]] = {m.name: [] for m in mgrs}
    for _ in range(runs):
        for m in mgrs:
            samples[m.name].append(fn(m))
            time.sleep(pause)
    return {k: statistics.median(v) for k, v in samples.items()}


def show(label: str, unit: str, values: dict[str, float], peers: list[str], fmt: str = "{:.1f}") -> None:
    ours = values["ours"]
    parts = [f"ours {fmt.format(ours)} {unit}"]
    for p in peers:
        if p in values:
            ratio = f"{ours / values[p]:.2f}" if values[p] else "n/a"
            parts.append(f"{p} {fmt.format(values[p])} {unit} (ratio {ratio})")
    print(f"{label:<54} " + " | ".join(parts), flush=True)


def kill_recorded(tracker: dict[int, psutil.Process]) -> None:
    """Last resort: SIGKILL whatever we recorded that still runs (psutil checks the create time)."""
    for p in tracker.values():
        try:
            if p.is_running():
                p.kill()
        except psutil.Error:
            pass


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="instances per manager (the issue's figure is 200)")
    ap.add_argument("--quick", action="store_true", help="one run of each, short windows (a smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="runs of each timed step (default 10, quick 1)")
    ap.add_argument("--window", type=float, default=None, help="idle CPU window in s (default 20, quick 2)")
    ap.add_argument("--timeout", type=float, default=600, help="give up (and clean up) after this many seconds")
    ap.add_argument("--no-pm2", action="store_true", help="leave PM2 out")
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary homes go (default: the system's)")
    args = ap.parse_args()
    if args.n < 1:
        ap.error("--n must be at least 1")
    if args.dir is not None and not args.dir.is_dir():
        ap.error(f"--dir {args.dir}: not a directory")
    runs = args.runs or (1 if args.quick else 10)
    window = args.window or (2.0 if args.quick else 20.0)

    def on_alarm(*_: object) -> None:
        raise Deadline(f"stopped after --timeout {args.timeout:.0f}s")

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu_model}; N = {args.n}; runs {runs}; idle window {window:.0f}s",
          flush=True)
    pm2_skip = "--no-pm2" if args.no_pm2 else PM2.install()
    if pm2_skip:
        print(f"PM2: skipped ({pm2_skip})", flush=True)
    tracker: dict[int, psutil.Process] = {}
    mgrs: list[Manager] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers_", dir=args.dir))
    try:
        mgrs.append(Ours(tmp / "ours", args.n, tracker))
        mgrs.append(Supervisord(tmp / "supervisord", args.n, tracker))
        if not pm2_skip:
            mgrs.append(PM2(tmp / "pm2", args.n, tracker))
        peers = [m.name for m in mgrs[1:]]
        starts = {}
        for m in mgrs:  # one after the other: each start has the machine to itself but for the fleets up before
            starts[m.name] = start_fleet_timed(m)
            m.track()
        time.sleep(2 if args.quick else 5)  # past the children's import burst
        for m in mgrs:
            m.track()
        show(f"management memory, PSS, {args.n} instances", "MB",
             {m.name: pss_mb(plane(m.mgmt_pids())) for m in mgrs}, peers)
        show(f"idle CPU of management, {args.n} instances", "% core", idle_cpu(mgrs, window), peers, "{:.3f}")
        show(f"respawn (kill -> new child), {args.n} inst.", "ms",
             {k: v * 1000 for k, v in interleaved(mgrs, runs, respawn_once, pause=0.3).items()}, peers)
        show(f"start {args.n} programs until all are up, start-all", "s", starts, peers, "{:.2f}")
        for m in mgrs:
            list_once(m)  # warm the page cache
        show(f"list / status / pm2 ls, {args.n} instances", "ms",
             {k: v * 1000 for k, v in interleaved(mgrs, max(runs, 3), list_once).items()}, peers)
        ours = mgrs[0]
        assert isinstance(ours, Ours)
        ours.stop_fleet()
        time.sleep(1)  # every child's last heartbeat is older than the new start's clock
        starts["ours"] = start_fleet_timed(ours, ours.start_fleet_parallel)
        ours.track()
        show(f"start {args.n} programs, ours `start -d` x10 in parallel", "s", starts, peers, "{:.2f}")
        for m in mgrs:
            m.stop_fleet()
        show("one paper bot, start until its page answers", "s",
             interleaved(mgrs, min(runs, 3), bot_once), peers, "{:.2f}")
        return 0
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    except Deadline as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the clean-up
        for m in mgrs:
            m.track()
            try:
                m.shutdown()
            except (OSError, subprocess.SubprocessError):
                pass
        kill_recorded(tracker)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
