"""The supervisor at fleet scale (issue 12, goals 1 and 2): memory, idle CPU, respawn, imports.

    .venv/bin/python bench/bench_supervisor.py [--n 200] [--settle 35] [--window 60] [--respawns 15]
                                               [--boot-runs 30] [--base main] [--boot-only]

Starts N instances of tests/fake_bot.py (stdlib only, one heartbeat a second) with our manager
(`start-all`, default health_check_interval 30 s, restart_delay 0) in a temporary home, then prints:

- PSS of one supervisor (median) and of the management plane (supervisors + keepers), from
  /proc/PID/smaps_rollup;                                          [goal: <= 5 MB per supervisor]
- idle CPU of the management plane over --window seconds once every start has settled, from
  /proc/PID/schedstat (ns on CPU), in % of one core and in us per second per supervisor;
                                                          [goal: <= 0.5% of a core, < 25 us/s each]
- respawn: SIGKILL a bot -> its supervisor's new child exists (polled every 0.5 ms), median;
                                                                                [goal: <= 5 ms]
- how many modules a supervisor has loaded (it logs sys.modules on SIGUSR1), and whether any of
  subprocess, pathlib, ctypes, flask, ccxt, numpy is among them;
- first (issue 12, goal 3), a supervisor's boot: CPU ms (median of --boot-runs, user + system, from
  the children's rusage) of `python -S` importing what core/supervisor.py imports before its spec
  arrives (core.keeper, core.supervision), beside a bare `python -S` and, with --base REF, the same
  for that git revision, taken in turns; and which of re, enum, json, collections each one loads.
                                                          [goal: boot total <= 30 ms, was ~40]

Figures only, no assertion. Every process the bench starts is stopped with `stop-all` at the end
and, failing that, killed by its recorded pid and identity.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_core import kill_leftovers  # noqa: E402
from bench.bench_peers import children  # noqa: E402
from bench.bench_start_all import compile_core, extract  # noqa: E402
from core import proc  # noqa: E402
from tests.conftest import free_port  # noqa: E402

DM = REPO / "core" / "daemon_manager.py"
FAKE_BOT = REPO / "tests" / "fake_bot.py"
FORBIDDEN = ("subprocess", "pathlib", "ctypes", "flask", "ccxt", "numpy")
POLL = 0.0005
BOOT_HEAVY = ("re", "enum", "json", "collections", "signal")
BOOT = "import sys; sys.path[0] = sys.argv[1]; import core.keeper, core.supervision; " \
       "print(' '.join(m for m in sys.modules if m in {}))".format(set(BOOT_HEAVY))


def cli(home: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(DM), "--home", str(home), *args], capture_output=True, text=True,
                          env={**os.environ, "GRIDBOT_HOME": str(home)}, stdin=subprocess.DEVNULL, timeout=timeout)


def write_configs(home: Path, n: int) -> list[str]:
    ids = [f"sup_{i:03d}" for i in range(n)]
    for iid in ids:
        doc = {"metadata": {"instance_id": iid, "exchange": "paper", "symbol": f"{iid.upper()}_PERP"},
               "daemon_config": {"script_path": str(FAKE_BOT), "bot_args": ["--interval", "1"], "web_port": free_port(),
                                 "restart_delay": 0, "max_backoff": 0, "max_restart_attempts": 10**6,
                                 "stable_uptime": 0, "startsecs": 0.2, "stop_timeout": 5, "health_check_interval": 30},
               "strategy_config": {"grid_lower_price": 1, "grid_upper_price": 2, "grid_num": 2}}
        (home / "config" / "active" / f"{iid}.json").write_text(json.dumps(doc))
    return ids


def records(home: Path) -> dict[str, dict]:
    out = {}
    for path in home.glob("logs/*/instance.json"):
        try:
            out[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return out


def keeper_of(supervisor: int) -> int | None:
    for kid in children(supervisor):
        try:
            if Path(f"/proc/{kid}/cmdline").read_bytes().startswith(b"gridbot-keeper"):
                return kid
        except OSError:
            pass
    return None


def rollup(pid: int, field: str) -> int:
    """A field of /proc/PID/smaps_rollup, in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def on_cpu_ns(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def respawn_once(supervisor: int) -> float | None:
    """SIGKILL the bot; seconds until the supervisor has a new child (the keeper is not a bot)."""
    keeper = keeper_of(supervisor)
    before = children(supervisor) - {keeper}
    if not before:
        return None
    victim = next(iter(before))
    t0 = time.perf_counter()
    os.kill(victim, signal.SIGKILL)
    end = t0 + 10
    while not (children(supervisor) - before - {keeper}):
        if time.perf_counter() > end:
            return None
        time.sleep(POLL)
    return time.perf_counter() - t0


def modules_of(supervisor: int, log_dir: Path) -> list[str] | None:
    """Ask the supervisor (SIGUSR1): it logs its sys.modules in its daemon.log."""
    def last() -> str | None:
        lines = [ln for p in sorted(log_dir.glob("*/daemon.log")) for ln in p.read_text().splitlines()
                 if "loaded modules (" in ln]
        return lines[-1] if lines else None

    seen = last()
    os.kill(supervisor, signal.SIGUSR1)
    end = time.monotonic() + 5
    while time.monotonic() < end:
        line = last()
        if line and line != seen:
            return line.split("): ", 1)[1].split()
        time.sleep(0.05)
    return None


def boot_cpu_ms(code: str, tree: Path) -> tuple[float, str]:
    """CPU ms of one `python -S -c code tree` (user + system, from this process's children rusage)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-S", "-c", code, str(tree)], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000, out.stdout.strip()


def print_boot(runs: int, base: str | None) -> None:
    """The supervisor's boot CPU, this tree beside `base` (a git revision) and a bare interpreter."""
    with tempfile.TemporaryDirectory(prefix="bench_sup_base_") as tmp:
        parties = {"bare python -S": ("pass", REPO)}
        if base:
            if (error := extract(base, Path(tmp))):
                raise SystemExit(f"--base {base}: {error}")
            compile_core(Path(tmp))
            parties[f"supervisor imports, {base}"] = (BOOT, Path(tmp))
        compile_core(REPO)
        parties["supervisor imports, this tree"] = (BOOT, REPO)
        samples: dict[str, list[float]] = {name: [] for name in parties}
        loaded: dict[str, str] = {}
        for _ in range(runs):
            for name, (code, tree) in parties.items():
                ms, loaded[name] = boot_cpu_ms(code, tree)
                samples[name].append(ms)
        print(f"supervisor boot CPU, median of {runs} runs each, taken in turns:")
        for name, ms in samples.items():
            also = f"   loads: {loaded[name] or 'none of ' + ', '.join(BOOT_HEAVY)}" if name != "bare python -S" else ""
            print(f"  {name:>36}: {statistics.median(ms):5.1f} ms (min {min(ms):.1f}){also}")
        print("   [goal: boot total <= 30 ms, was ~40]")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--settle", type=float, default=35.0, help="seconds after the last start before the idle window")
    ap.add_argument("--window", type=float, default=60.0, help="idle CPU window, seconds")
    ap.add_argument("--respawns", type=int, default=15)
    ap.add_argument("--boot-runs", type=int, default=30, help="runs of each boot measurement")
    ap.add_argument("--base", help="a git revision whose supervisor boot is measured beside this tree's")
    ap.add_argument("--boot-only", action="store_true", help="only the boot figures, no fleet")
    args = ap.parse_args()
    if args.boot_runs > 0:
        print_boot(args.boot_runs, args.base)
    if args.boot_only:
        return
    with tempfile.TemporaryDirectory(prefix="bench_sup_") as tmp:
        home = Path(tmp)
        for d in ("config/active", "logs", "database"):
            (home / d).mkdir(parents=True)
        ids = write_configs(home, args.n)
        try:
            t0 = time.perf_counter()
            out = cli(home, "start-all")
            print(f"start-all of {args.n}: {time.perf_counter() - t0:.1f} s (exit {out.returncode})")
            recs = records(home)
            sups = [recs[i]["pid"] for i in ids if i in recs and proc.is_alive(recs[i].get("pid"),
                                                                              recs[i].get("pid_create_time"))]
            keepers = [k for s in sups if (k := keeper_of(s))]
            print(f"supervisors alive: {len(sups)}, keepers: {len(keepers)}")
            if not sups:
                print(out.stdout[-2000:], out.stderr[-2000:])
                return
            time.sleep(args.settle)

            pss = [rollup(p, "Pss") / 1024 for p in sups]
            uss = [(rollup(p, "Private_Clean") + rollup(p, "Private_Dirty")) / 1024 for p in sups]
            kpss = [rollup(p, "Pss") / 1024 for p in keepers]
            print(f"supervisor PSS: median {statistics.median(pss):.2f} MB (USS {statistics.median(uss):.2f} MB)"
                  f"   [goal <= 5 MB]")
            print(f"keeper PSS: median {statistics.median(kpss) if kpss else 0:.2f} MB")
            print(f"management plane PSS (supervisors + keepers): {sum(pss) + sum(kpss):.1f} MB for {len(sups)} "
                  f"instances, {(sum(pss) + sum(kpss)) / len(sups):.2f} MB per instance")

            plane = sups + keepers
            written = {iid: rec.get("last_updated") for iid, rec in records(home).items()}
            before = {p: on_cpu_ns(p) for p in plane}
            t0 = time.monotonic()
            time.sleep(args.window)
            wall = time.monotonic() - t0
            used = {p: on_cpu_ns(p) - before[p] for p in plane}
            rewritten = sum(rec.get("last_updated") != written.get(iid) for iid, rec in records(home).items())
            total_ns = sum(used.values())
            sup_ns = sum(used[p] for p in sups)
            print(f"idle CPU of the management plane over {wall:.0f} s: {total_ns / wall / 1e9 * 100:.3f}% of one core"
                  f"   [goal <= 0.5%]")
            print(f"records rewritten during the window: {rewritten} of {len(written)} (a check-in with nothing "
                  "new only touches the record's mtime)")
            print(f"idle CPU per supervisor: {sup_ns / len(sups) / wall / 1e3:.1f} us/s (keepers: "
                  f"{(total_ns - sup_ns) / max(len(keepers), 1) / wall / 1e3:.1f} us/s)   [goal < 25 us/s]")

            victim_sup = sups[0]
            samples = []
            for _ in range(args.respawns):
                time.sleep(0.3)
                dt = respawn_once(victim_sup)
                if dt is not None:
                    samples.append(dt)
            if samples:
                print(f"respawn (SIGKILL -> new child), {len(sups)} instances: "
                      f"median {statistics.median(samples) * 1000:.2f} ms"
                      f" (min {min(samples) * 1000:.2f}, max {max(samples) * 1000:.2f}, {len(samples)} runs)"
                      "   [goal <= 5 ms]")
            else:
                print("respawn: no sample (no bot to kill)")

            mods = modules_of(victim_sup, home / "logs" / ids[0])
            if mods is None:
                print("supervisor sys.modules: no answer to SIGUSR1")
            else:
                bad = [m for m in mods if m.split(".")[0] in FORBIDDEN]
                print(f"supervisor sys.modules: {len(mods)} modules; forbidden among them: {bad or 'none'}")
        finally:
            t0 = time.perf_counter()
            out = cli(home, "stop-all")
            print(f"stop-all: {time.perf_counter() - t0:.1f} s (exit {out.returncode})")
            kill_leftovers(home)


if __name__ == "__main__":
    main()
