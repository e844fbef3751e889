"""Our fleet beside supervisord and PM2 on the same child program, interleaved in one run (issue 12).

    .venv/bin/python bench/bench_peers.py [--n 200] [--start-n 50] [--quick] [--runs R] [--window S]
                                          [--settle S] [--timeout 1800] [--no-pm2] [--no-real-bot] [--dir D]

Each manager supervises copies of tests/fake_bot.py (stdlib only, one heartbeat a second) in its
own temporary home / config; they run side by side so that memory and idle CPU are sampled over the
same window, and the timed steps alternate between the managers (ours, supervisord, PM2, ours, ...)
so that a neighbour's load falls on each alike. Printed per figure: ours, each peer's, the ratio
ours / peer (below 1: we are better) and the issue's goal with `met` or `NOT MET`. Two fleet sizes:

With N (default 200) programs each, all fleets up and idle:
- management memory: PSS (/proc/PID/smaps_rollup) summed over the managers' own processes (our
  supervisors and their keepers; supervisord; PM2's God daemon), children excluded; per instance;
  and one of our supervisors alone (goal <= 5 MB);
- idle CPU of those processes over the same window, in % of one core (goal <= 0.5%);
- respawn: SIGKILL a child -> a new child of the same manager exists, polled every 0.5 ms (goal <= 5 ms);
- `list` / `supervisorctl status` / `pm2 ls`, median wall time (goal <= 0.4x supervisorctl).
Then those fleets go, and with --start-n (default 50) programs each:
- start them all until every child has beaten its heartbeat (`start-all`; `supervisorctl start
  fake:*`; `pm2 start ecosystem.json`; the median of three starts each, the managers taking turns;
  goal <= 1.5x supervisord), and ours again with
  `start -c CFG -d` ten at a time;
- `list` & co. again (goal <= 0.4x);
- one paper bot (run.py, same config and environment contract) from the start command until its
  page answers /health with 200 (goal <= 1.2x supervisord);
- the paper bot alone under our supervisor: from its process's start until its page answers
  (goal <= 0.3 s) and its RSS after --settle seconds of the page being read (goal <= 45 MB);
- the same for a bot on a real exchange through ccxt, against tests/exchanges/backpack_server.py
  (signed REST on 127.0.0.1): reported, no goal.

The project's bytecode is compiled first (an install has it; PYTHONDONTWRITEBYTECODE would make
every `list` compile again). supervisord is pip-installed into its own venv under /tmp, PM2
npm-installed under /tmp; neither touches the project's venv. PM2 is skipped (saying why) where npm
is missing or its registry is unreachable. Only loopback traffic; everything is bounded by
--timeout; every process started is recorded by pid (and create time) and killed at the end, also
on Ctrl-C or SIGTERM. The machine may be shared: figures are medians, and a busy neighbour shows as
noise in all columns alike. A smoke test: --n 10 --start-n 5 --quick.
"""
from __future__ import annotations

import argparse
import contextlib
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

from bench.bench_list_vs_supervisorctl import compile_bytecode, supervisor_bin, supervisord_header  # noqa: E402
from tests.conftest import free_port  # noqa: E402
from tests.web.paper_bot import write_paper_config  # noqa: E402

DM = REPO / "core" / "daemon_manager.py"
FAKE_BOT = REPO / "tests" / "fake_bot.py"
RUN_PY = REPO / "run.py"
CHILD_ARGS = ["--interval", "1"]
PM2_DIR = Path(tempfile.gettempdir()) / "gridbot-bench-pm2"
POLL = 0.0005
START_RUNS = 3  # start-all of the start-n fleet, per manager: one sample moves 10-30% with the neighbours
FLEET_TIMEOUT = 600  # one command starting or stopping a whole fleet (200 programs on a busy machine)


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
        self.bp_home = root / "bp_home"  # the real-exchange bot's, made when it is measured

    def cli(self, home: Path, *args: str, timeout: float = 120) -> str:
        return run([sys.executable, str(DM), "--home", str(home), *args], env={**os.environ, "GRIDBOT_HOME": str(home)},
                   timeout=timeout)

    def supervisors(self, home: Path) -> list[int]:
        """The live supervisors of a home, from each instance's record."""
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
        return self.supervisors(self.root) + self.supervisors(self.bot_home)

    def log_dirs(self) -> list[Path]:
        return [self.root / "logs" / iid for iid in self.ids]

    def start_fleet(self) -> None:
        self.cli(self.root, "start-all", timeout=FLEET_TIMEOUT)

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [sys.executable, str(DM), "--home", str(self.root), "list"], self.env

    def respawn_parent(self) -> int:
        rec = json.loads((self.root / "logs" / self.ids[0] / "instance.json").read_text())
        return rec["pid"]

    def stop_fleet(self) -> None:
        self.cli(self.root, "stop-all", timeout=FLEET_TIMEOUT)

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
        for home in (self.root, self.bot_home, self.bp_home):
            if not home.is_dir():
                continue
            subprocess.run([sys.executable, str(DM), "--home", str(home), "stop-all"], capture_output=True,
                           env={**os.environ, "GRIDBOT_HOME": str(home)}, timeout=FLEET_TIMEOUT, stdin=subprocess.DEVNULL)


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
        run([*self.ctl, "start", "fake:*"], timeout=FLEET_TIMEOUT)

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [*self.ctl, "status"], None

    def respawn_parent(self) -> int:
        return self.mgmt_pids()[0]

    def stop_fleet(self) -> None:
        run([*self.ctl, "stop", "fake:*"], timeout=FLEET_TIMEOUT)

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
        run([self.bin(), "start", str(self.eco)], env=self.env, timeout=FLEET_TIMEOUT)

    def list_argv(self) -> tuple[list[str], dict[str, str] | None]:
        return [self.bin(), "ls"], self.env

    def respawn_parent(self) -> int:
        return self.mgmt_pids()[0]

    def stop_fleet(self) -> None:
        run([self.bin(), "delete", str(self.eco)], env=self.env, timeout=FLEET_TIMEOUT)

    def start_bot(self) -> None:
        run([self.bin(), "start", str(self.bot_eco)], env=self.env)

    def stop_bot(self) -> None:
        run([self.bin(), "delete", "paper"], env=self.env)

    def shutdown(self) -> None:
        subprocess.run([self.bin(), "kill"], env=self.env, capture_output=True, timeout=60)


# ---- the measurements: each takes the managers and returns {name: value}


def pss_mb(pids: list[int]) -> float:
    """Proportional set size summed over pids, from /proc/PID/smaps_rollup (shared pages split)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as fh:
                total += next(int(ln.split()[1]) for ln in fh if ln.startswith("Pss:"))
        except (OSError, StopIteration, ValueError):
            pass
    return total / 1024


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
    wait_until(lambda: heartbeats_since(m.log_dirs(), t_wall), 300, f"{m.name}: all {m.n} children up")
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


def bot_alone(ours: Ours, home: Path, cfg: Path, iid: str, port: int, settle: float,
              env: dict[str, str] | None = None) -> tuple[float, float]:
    """(ready s, RSS MB) of one bot under our supervisor. Ready: from the bot process's start to its
    page's first /health 200 (polled every 5 ms while `start -d` runs, so the CLI's own wait is not
    counted). RSS: after `settle` seconds of the page being read once a second, as a browser does."""
    cli = subprocess.Popen([sys.executable, str(DM), "--home", str(home), "start", "-c", str(cfg), "-d"],
                           env={**os.environ, "GRIDBOT_HOME": str(home), **(env or {})}, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: health_ok(port) or cli.poll() not in (None, 0), 120, f"{iid}'s page", interval=0.005)
        answered = time.clock_gettime(time.CLOCK_BOOTTIME)
        _, err = cli.communicate(timeout=120)
        if cli.returncode:
            raise SystemExit(f"start {iid} failed: {err.decode()[-2000:]}")
        bot = psutil.Process(int((home / "logs" / iid / "bot.pid").read_text().split()[0]))
        for p in (bot, bot.parent()):  # the bot and its supervisor, for the final clean-up
            if p is not None:
                ours.tracker.setdefault(p.pid, p)
        ready = answered - started_since_boot(bot.pid)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            for path in ("/", "/api/status", "/health"):
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
            time.sleep(1.0)
        return ready, bot.memory_info().rss / 2**20
    finally:
        ours.cli(home, "stop", "-c", str(cfg))


def started_since_boot(pid: int) -> float:
    """When the process started, in seconds since boot (/proc/PID/stat starttime, 10 ms ticks).

    Not psutil's create_time(): it adds the boot time, which /proc/stat gives in whole seconds,
    so a figure of a few hundred ms computed against time.time() is off by up to a second."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK")


def paper_bot_alone(ours: Ours, settle: float) -> tuple[float, float]:
    return bot_alone(ours, ours.bot_home, ours.bot_cfg, "peer_bot", ours.bot_port, settle)


def backpack_bot_alone(ours: Ours, settle: float) -> tuple[float, float]:
    """The same through ccxt against tests/exchanges/backpack_server.py (signed REST on 127.0.0.1)."""
    from tests.exchanges.backpack_server import TEST_PUBLIC_B64, TEST_SEED_B64, BackpackServer

    home = ours.bp_home
    for d in ("config/active", "logs", "database"):
        (home / d).mkdir(parents=True)
    port = free_port()
    with BackpackServer(center=150.0, amplitude=3.0, period=6.0) as server:
        cfg = home / "config" / "active" / "peer_bp.json"
        cfg.write_text(json.dumps({
            "metadata": {"instance_id": "peer_bp", "exchange": "backpack", "symbol": "SOL_USDC_PERP",
                         "strategy": "perp_grid"},
            "daemon_config": {"web_port": port, "startsecs": 20, "stop_timeout": 10},
            "exchange_config": {"api_key": "${BP_KEY}", "secret_key": "${BP_SECRET}", "base_url": server.url},
            "strategy_config": {"grid_lower_price": 146, "grid_upper_price": 154, "grid_num": 8, "quantity": 0.1,
                                "max_position": 5, "interval": 0.3}}))
        return bot_alone(ours, home, cfg, "peer_bp", port, settle,
                         env={"BP_KEY": TEST_PUBLIC_B64, "BP_SECRET": TEST_SEED_B64})


def show(label: str, unit: str, values: dict[str, float], peers: list[str], fmt: str = "{:.1f}",
         goal: str | None = None, met: bool | None = None) -> None:
    """One figure: ours, each peer's and the ratio ours / peer, then the issue's goal and whether it is met."""
    ours = values["ours"]
    parts = [f"ours {fmt.format(ours)} {unit}"]
    for p in peers:
        if p in values:
            ratio = f"{ours / values[p]:.2f}" if values[p] else "n/a"
            parts.append(f"{p} {fmt.format(values[p])} {unit} (ratio {ratio})")
    if goal:
        parts.append(f"goal {goal}" + ("" if met is None else ": met" if met else ": NOT MET"))
    print(f"{label:<56} " + " | ".join(parts), flush=True)


def ratio_goal(values: dict[str, float], bound: float, peer: str = "supervisord") -> dict:
    """show()'s goal arguments for `ours <= bound x peer`."""
    return {"goal": f"<= {bound:g}x {peer}", "met": peer in values and values["ours"] <= bound * values[peer]}


def limit_goal(value: float, bound: float, unit: str) -> dict:
    """show()'s goal arguments for `ours <= bound unit`."""
    return {"goal": f"<= {bound:g} {unit}", "met": value <= bound}


def kill_recorded(tracker: dict[int, psutil.Process]) -> None:
    """Last resort: SIGKILL whatever we recorded that still runs (psutil checks the create time)."""
    for p in tracker.values():
        try:
            if p.is_running():
                p.kill()
        except psutil.Error:
            pass


def managers(root: Path, n: int, tracker: dict[int, psutil.Process], pm2: bool) -> list[Manager]:
    """Ours, supervisord and (when it can be had) PM2, each with n fake bots, none started yet."""
    out: list[Manager] = []
    try:
        out.append(Ours(root / "ours", n, tracker))
        out.append(Supervisord(root / "supervisord", n, tracker))
        if pm2:
            out.append(PM2(root / "pm2", n, tracker))
    except BaseException:
        shutdown(out, tracker)
        raise
    return out


def shutdown(mgrs: list[Manager], tracker: dict[int, psutil.Process]) -> None:
    for m in mgrs:
        m.track()
        try:
            m.shutdown()
        except (OSError, subprocess.SubprocessError):
            pass
    kill_recorded(tracker)


def plane_figures(mgrs: list[Manager], n: int, peers: list[str], runs: int, window: float) -> None:
    """Memory, idle CPU and respawn of the management planes, each fleet up and idle."""
    pss = {m.name: pss_mb(plane(m.mgmt_pids())) for m in mgrs}
    show(f"management PSS, {n} instances", "MB", pss, peers)
    show("management PSS per instance", "MB", {k: v / n for k, v in pss.items()}, peers, "{:.2f}")
    ours = mgrs[0]
    assert isinstance(ours, Ours)
    one = statistics.median(pss_mb([p]) for p in ours.supervisors(ours.root))
    show("one supervisor's PSS (median, keeper excluded)", "MB", {"ours": one}, [], "{:.2f}",
         **limit_goal(one, 5, "MB"))
    cpu = idle_cpu(mgrs, window)
    show(f"idle CPU of management, {n} instances", "% core", cpu, peers, "{:.3f}", **limit_goal(cpu["ours"], 0.5, "%"))
    respawn = {k: v * 1000 for k, v in interleaved(mgrs, runs, respawn_once, pause=0.3).items()}
    show(f"respawn median (kill -> new child), {n} inst.", "ms", respawn, peers, "{:.1f}",
         **limit_goal(respawn["ours"], 5, "ms"))


def list_figure(mgrs: list[Manager], n: int, peers: list[str], runs: int) -> None:
    for m in mgrs:
        list_once(m)  # warm the page cache
    ms = {k: v * 1000 for k, v in interleaved(mgrs, max(runs, 3), list_once).items()}
    show(f"list / supervisorctl status / pm2 ls, {n} inst.", "ms", ms, peers, **ratio_goal(ms, 0.4))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="instances per manager for memory, CPU, respawn, list")
    ap.add_argument("--start-n", type=int, default=None,
                    help="instances for the start figures and the second list figure (default min(50, N))")
    ap.add_argument("--quick", action="store_true", help="one run of each, short windows (a smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="runs of each timed step (default 10, quick 1)")
    ap.add_argument("--window", type=float, default=None, help="idle CPU window in s (default 20, quick 2)")
    ap.add_argument("--settle", type=float, default=None,
                    help="seconds a lone bot serves its page before its RSS is read (default 20, quick 3)")
    ap.add_argument("--timeout", type=float, default=1800, help="give up (and clean up) after this many seconds")
    ap.add_argument("--no-pm2", action="store_true", help="leave PM2 out")
    ap.add_argument("--no-real-bot", action="store_true", help="leave out the bot on the local Backpack server")
    ap.add_argument("--dir", type=Path, default=None, help="where the temporary homes go (default: the system's)")
    args = ap.parse_args()
    small = args.start_n if args.start_n is not None else min(50, args.n)
    if args.n < 1 or small < 1:
        ap.error("--n and --start-n must be at least 1")
    if args.dir is not None and not args.dir.is_dir():
        ap.error(f"--dir {args.dir}: not a directory")
    runs = args.runs or (1 if args.quick else 10)
    window = args.window or (2.0 if args.quick else 20.0)
    settle = args.settle if args.settle is not None else (3.0 if args.quick else 20.0)

    def on_alarm(*_: object) -> None:
        raise Deadline(f"stopped after --timeout {args.timeout:.0f}s")

    def on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    cpu_model = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    mem_gb = psutil.virtual_memory().total / 2**30
    print(f"machine: {os.cpu_count()} cores, {cpu_model}, {mem_gb:.0f} GB; Python {sys.version.split()[0]}; "
          f"N = {args.n}, start figures at {small}; runs {runs}; idle window {window:.0f}s", flush=True)
    pm2_skip = "--no-pm2" if args.no_pm2 else PM2.install()
    if pm2_skip:
        print(f"PM2: skipped ({pm2_skip})", flush=True)
    compile_bytecode()
    tracker: dict[int, psutil.Process] = {}
    mgrs: list[Manager] = []
    tmp = Path(tempfile.mkdtemp(prefix="bench_peers_", dir=args.dir))
    try:
        if args.n != small:  # the big fleets: memory, idle CPU, respawn and list at N; then they go
            mgrs = managers(tmp / f"n{args.n}", args.n, tracker, not pm2_skip)
            peers = [m.name for m in mgrs[1:]]
            starts = {}
            for m in mgrs:
                starts[m.name] = start_fleet_timed(m)
                m.track()
            show(f"start {args.n} programs until all are up (info)", "s", starts, peers, "{:.2f}")
            time.sleep(2 if args.quick else 5)  # past the children's import burst
            plane_figures(mgrs, args.n, peers, runs, window)
            list_figure(mgrs, args.n, peers, runs)
            shutdown(mgrs, tracker)
        mgrs = managers(tmp / f"n{small}", small, tracker, not pm2_skip)
        peers = [m.name for m in mgrs[1:]]
        # The median of START_RUNS starts each, the managers taking turns; every start has the
        # machine to itself (a fleet is stopped once timed) but for the fleets up in the last round.
        samples: dict[str, list[float]] = {m.name: [] for m in mgrs}
        start_runs = 1 if args.quick else START_RUNS
        for r in range(start_runs):
            for m in mgrs:
                samples[m.name].append(start_fleet_timed(m))
                m.track()
                if r < start_runs - 1:
                    m.stop_fleet()
                    time.sleep(1)  # every child's last heartbeat is older than the next start's clock
        starts = {name: statistics.median(v) for name, v in samples.items()}
        show(f"start {small} programs until all are up, start-all", "s", starts, peers, "{:.2f}",
             **ratio_goal(starts, 1.5))
        print("    each start (s): " + "; ".join(f"{name} " + ", ".join(f"{x:.2f}" for x in v)
                                               for name, v in samples.items()), flush=True)
        time.sleep(2 if args.quick else 5)
        if args.n == small:
            plane_figures(mgrs, small, peers, runs, window)
        list_figure(mgrs, small, peers, runs)
        ours = mgrs[0]
        assert isinstance(ours, Ours)
        ours.stop_fleet()
        time.sleep(1)  # every child's last heartbeat is older than the new start's clock
        starts["ours"] = start_fleet_timed(ours, ours.start_fleet_parallel)
        ours.track()
        show(f"start {small} programs, ours `start -d` x10 in parallel", "s", starts, peers, "{:.2f}")
        for m in mgrs:
            m.stop_fleet()
        bot = interleaved(mgrs, min(runs, 3), bot_once)
        show("one paper bot, start command until its page answers", "s", bot, peers, "{:.2f}", **ratio_goal(bot, 1.2))
        ready, rss = paper_bot_alone(ours, settle)
        show(f"paper bot with its page, RSS after {settle:.0f}s", "MB", {"ours": rss}, [], **limit_goal(rss, 45, "MB"))
        show("paper bot, process start until its page answers", "s", {"ours": ready}, [], "{:.2f}",
             **limit_goal(ready, 0.3, "s"))
        if not args.no_real_bot:
            ready, rss = backpack_bot_alone(ours, settle)
            show(f"real-exchange bot (ccxt, local Backpack), RSS after {settle:.0f}s", "MB", {"ours": rss}, [],
                 goal="reported")
            show("real-exchange bot, process start until its page answers", "s", {"ours": ready}, [], "{:.2f}",
                 goal="reported")
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
        shutdown(mgrs, tracker)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
