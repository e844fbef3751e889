"""Where `start-all` of N fake bots spends its CPU, this tree beside another revision (issue 12, goal 3).

    .venv/bin/python bench/bench_start_all.py [--n 50] [--runs 3] [--base REF] [--one 5]

Each run starts N copies of tests/fake_bot.py (set up as bench/bench_peers.py does) in a fresh
home with `start-all`, waits until every one has beaten, and prints the wall time and the CPU
seconds of the three parties: the CLI (with the children it reaped: run.py --check, the old
double fork's middle child), the supervisors with their keepers, and the bots. On a shared
machine the wall time follows the neighbours' load; the CPU seconds do not, and their sum over two
cores is the floor of the wall time. --base REF (a git revision) is run too, turn about with
this tree, from a `git archive` of it in a temporary directory.

--one RUNS: instead, one paper bot's `start -c CFG -d` until its page answers (as bench_peers.py
`bot_once`), RUNS times, stopped between: wall and the CLI's CPU (with its children: the pre-flight
when it runs, the supervisor's first half). The first start of a fresh home pays the pre-flight;
the repeats, with an unchanged config, show what a kept verdict saves.
"""
from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_peers import Ours, health_ok, heartbeats_since, kill_recorded, wait_until  # noqa: E402

PARTS = ("wall", "cli", "supervisors", "bots")


def one_run(tree: Path, n: int) -> tuple[float, float, float, float]:
    """(wall s, CLI CPU s, supervisors' and keepers' CPU s, bots' CPU s) of one start-all."""
    tracker: dict[int, psutil.Process] = {}
    root = Path(tempfile.mkdtemp(prefix="bench_start_all_"))
    m = Ours(root / "home", n, tracker)
    dm = [sys.executable, str(tree / "core" / "daemon_manager.py"), "--home", str(m.root)]
    try:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t_wall, t0 = time.time(), time.perf_counter()
        out = subprocess.run([*dm, "start-all"], env=m.env, capture_output=True, text=True, timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if out.returncode:
            raise SystemExit(f"start-all failed:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
        wait_until(lambda: heartbeats_since(m.log_dirs(), t_wall), 300, f"all {n} children up", interval=0.002)
        wall = time.perf_counter() - t0
        m.track()
        cli = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        sup = bots = 0.0
        for pid in m.supervisors(m.root):
            with_kids = [psutil.Process(pid)]
            with_kids += with_kids[0].children()
            for p in with_kids:
                t = p.cpu_times()
                if "fake_bot" in " ".join(p.cmdline()):
                    bots += t.user + t.system
                else:
                    sup += t.user + t.system
        return wall, cli, sup, bots
    finally:
        subprocess.run([*dm, "stop-all"], env=m.env, capture_output=True, timeout=600)
        kill_recorded(tracker)
        shutil.rmtree(root, ignore_errors=True)


def extract(ref: str, dest: Path) -> str | None:
    """The tree of git revision `ref` into dest (a `git archive`); the error text if there is none."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], capture_output=True)
    if archive.returncode:
        return archive.stderr.decode().strip()
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return None


def compile_core(tree: Path) -> None:
    """core/'s bytecode, as an install has it (with PYTHONDONTWRITEBYTECODE nothing else writes it)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "core")], check=True,
                   stdout=subprocess.DEVNULL)


def one_bot(tree: Path, runs: int) -> list[tuple[float, float]]:
    """(wall s, CLI CPU s) of each of `runs` starts of one paper bot in a fresh home."""
    tracker: dict[int, psutil.Process] = {}
    root = Path(tempfile.mkdtemp(prefix="bench_start_one_"))
    m = Ours(root / "home", 0, tracker)
    home = m.bot_home
    dm = [sys.executable, str(tree / "core" / "daemon_manager.py"), "--home", str(home)]
    env = {**m.env, "GRIDBOT_HOME": str(home)}
    out = []
    try:
        for _ in range(runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            done = subprocess.run([*dm, "start", "-c", str(m.bot_cfg), "-d"], env=env, capture_output=True,
                                  text=True, timeout=120)
            if done.returncode:
                raise SystemExit(f"start failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
            wait_until(lambda: health_ok(m.bot_port), 60, "the paper bot's page", interval=0.005)
            wall = time.perf_counter() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            out.append((wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime))
            subprocess.run([*dm, "stop", "-c", str(m.bot_cfg)], env=env, capture_output=True, timeout=120)
            wait_until(lambda: not health_ok(m.bot_port), 30, "the paper bot to stop")
    finally:
        subprocess.run([*dm, "stop-all"], env=env, capture_output=True, timeout=120)
        kill_recorded(tracker)
        shutil.rmtree(root, ignore_errors=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="fake bots per start-all")
    ap.add_argument("--runs", type=int, default=3, help="runs of each tree, taken in turns")
    ap.add_argument("--base", help="a git revision to run beside this tree")
    ap.add_argument("--one", type=int, metavar="RUNS", help="one paper bot's start instead, RUNS times")
    args = ap.parse_args()
    if args.n < 1 or args.runs < 1:
        ap.error("--n and --runs must be at least 1")
    trees = {"now": REPO}
    tmp = Path(tempfile.mkdtemp(prefix="bench_start_all_base_"))
    try:
        if args.base:
            if (error := extract(args.base, tmp)):
                ap.error(f"--base {args.base}: {error}")
            trees = {args.base: tmp, **trees}
        for tree in trees.values():
            compile_core(tree)
        if args.one:
            for name, tree in trees.items():
                runs = one_bot(tree, args.one)
                print(f"  {name:>12}: one paper bot start, first wall {runs[0][0]:.3f} cli {runs[0][1]:.3f}; "
                      f"median of the {len(runs)} runs: wall {statistics.median(r[0] for r in runs):.3f} "
                      f"cli {statistics.median(r[1] for r in runs):.3f}", flush=True)
            return 0
        figures: dict[str, list[tuple[float, ...]]] = {name: [] for name in trees}
        for r in range(args.runs):
            for name, tree in trees.items():
                figures[name].append(one_run(tree, args.n))
                time.sleep(0.5)
            print(f"run {r}: " + " | ".join(f"{name} " + " ".join(f"{k} {v:.2f}" for k, v in zip(PARTS, f[-1]))
                                            for name, f in figures.items()), flush=True)
        print(f"start-all of {args.n} fake bots, medians of {args.runs} (s; CPU s for cli, supervisors, bots):")
        for name, f in figures.items():
            print(f"  {name:>12}: " + " ".join(f"{k} {statistics.median(x[i] for x in f):.2f}"
                                               for i, k in enumerate(PARTS)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
