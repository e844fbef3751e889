"""Surviving a reboot: `resume` starts what should run, `startup` writes the systemd units.

Desired state lives in each instance's record: `start` sets running, only the trader's `stop`
(or `stop-all` without --keep-desired) sets stopped; a crash, `fatal` or a power loss leaves it.
So after a boot, exactly the instances the trader left running are those whose record says
running while no supervisor holds their lock.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from core.instance_manager import InstanceRegistry
from core.paths import REPO_ROOT
from core.pidfile import holder_pid
from core.resume_digest import digest, saved_books
from core.states import DESIRED_RUNNING, State

DAEMON_MANAGER = REPO_ROOT / "core" / "daemon_manager.py"
UNIT_DIR = Path("/etc/systemd/system")
RESUME_TIMEOUT = 300.0


def to_resume(registry: InstanceRegistry) -> list[dict]:
    """Records that want to run and have no live supervisor (never one the trader stopped)."""
    return [r for r in registry.list_instances(include_dead=True)
            if r.get("desired_state") == DESIRED_RUNNING and r["state"] != State.CORRUPT and not r["alive"]
            and holder_pid(registry.home, r["instance_id"]) is None]


def resume(home: Path) -> int:
    """The instances that should run, then the fleet's own services (the notifier that reports
    what came back, and a dashboard the trader left running)."""
    code = resume_instances(home)
    resume_services(home)
    return code


def resume_services(home: Path) -> None:
    """Bring back the notifier (when alerts are configured) and a detached dashboard the trader
    did not stop; each as its own process, never imported here (no Flask, no Apprise)."""
    from core.notify_start import ensure_notifier
    from dashboard.serve import resume_args   # imports no Flask: it reads the dashboard's record

    said = ensure_notifier(home)
    if said:
        print(said)
    args = resume_args(home)
    if args is None:
        return
    done = subprocess.run([sys.executable, str(DAEMON_MANAGER), "--home", str(home), *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace",
                          timeout=RESUME_TIMEOUT)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    state = "resumed" if done.returncode == 0 else f"failed (exit {done.returncode})"
    print(f"dashboard: {state} ({lines[-1] if lines else 'no message'})")


def resume_instances(home: Path) -> int:
    """Start them all in parallel (one `start -d` each, from the recorded config); one line each."""
    registry = InstanceRegistry(home)
    wanted = to_resume(registry)
    if not wanted:
        print("nothing to resume: every instance that should run is running")
        return EXIT_OK
    before = saved_books(home, wanted)
    since = time.time()   # a status newer than this was published by the restarted bot
    starts = {}
    started: list[str] = []
    failures: dict[str, str] = {}
    for rec in wanted:
        if not rec.get("config_file"):
            failures[rec["instance_id"]] = "its record names no config file"
            print(f"{rec['instance_id']}: failed: its record names no config file")
            continue
        argv = [sys.executable, str(DAEMON_MANAGER), "--home", str(home), "start", "-d",
                "-c", rec["config_file"], "-i", rec["instance_id"]]
        starts[rec["instance_id"]] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                                      stderr=subprocess.PIPE, text=True, errors="replace")
    failed = len(wanted) - len(starts)
    for iid, child in sorted(starts.items()):
        try:
            out, err = child.communicate(timeout=RESUME_TIMEOUT)
        except subprocess.TimeoutExpired:
            child.kill()
            out, err = child.communicate()
        lines = [line for line in (out + err).splitlines() if line.strip()]
        if child.returncode == 0:
            started.append(iid)
            print(f"{iid}: resumed ({lines[-1] if lines else 'started'})")
        else:
            failed += 1
            failures[iid] = f"exit {child.returncode}: {' / '.join(lines[-3:]) or 'no message'}"
            print(f"{iid}: failed ({failures[iid]})")
    print(f"resumed {len(wanted) - failed} of {len(wanted)} instances")
    down = digest(home, [r for r in wanted if r["instance_id"] in started], before, since) if started else []
    if down:
        print("while the fleet was down:\n  " + "\n  ".join(down))
    from core.events import RESUMED, append_fleet_event

    skipped = sorted(r["instance_id"] for r in registry.list_instances(include_dead=True)
                     if r.get("desired_state") != DESIRED_RUNNING)
    append_fleet_event(home, RESUMED, on_error=lambda msg: print(msg, file=sys.stderr),
                       started=sorted(started), failed=failures, skipped=skipped, digest=down)
    return EXIT_FAIL if failed else EXIT_OK


def unit_name(home: Path) -> str:
    from core.pidfile import _home_tag

    return f"gridbot-fleet-{_home_tag(home).decode()[:8]}"


def _arg(value: object) -> str:
    """One word of an Exec line or an assignment: quoted, with systemd's % specifiers escaped."""
    text = str(value).replace("%", "%%")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' if any(c in text for c in " \t\"'\\") else text


def fleet_unit(home: Path, user: str) -> str:
    """Resume at boot once the network is up; stop everything at shutdown, desired states kept."""
    raw = str(home).replace("%", "%%")
    python, dm, home, env = _arg(sys.executable), _arg(DAEMON_MANAGER), _arg(home), _arg(f"GRIDBOT_HOME={home}")
    return f"""[Unit]
Description=Grid bot fleet: resume at boot, stop at shutdown
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
RemainAfterExit=yes
User={user}
Environment={env}
WorkingDirectory={raw}
ExecStart={python} {dm} --home {home} resume
ExecStop={python} {dm} --home {home} stop-all --keep-desired
TimeoutStartSec=600
TimeoutStopSec=600

[Install]
WantedBy=multi-user.target
"""


def template_unit(home: Path, user: str) -> str:
    """One instance per unit, its supervisor in the foreground (systemd owns it): gridbot-TAG@ID."""
    raw = str(home).replace("%", "%%")
    python, dm, home, env = _arg(sys.executable), _arg(DAEMON_MANAGER), _arg(home), _arg(f"GRIDBOT_HOME={home}")
    return f"""[Unit]
Description=Grid bot %i (supervisor in the foreground)
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
User={user}
Environment={env}
WorkingDirectory={raw}
ExecStart={python} {dm} --home {home} start -c config/active/%i.json
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5
KillMode=mixed
TimeoutStopSec=120

[Install]
WantedBy=multi-user.target
"""


def verify(units: dict[str, str], directory: Path) -> list[str]:
    """`systemd-analyze verify` of the units written to directory ([] when it passes or is absent)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return []
    paths = []
    for name, text in units.items():
        path = directory / name
        path.write_text(text)
        paths.append(str(path))
    done = subprocess.run([tool, "verify", *paths], capture_output=True, text=True)
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    return lines if done.returncode else []


def startup(home: Path, install: bool, unit_dir: Path = UNIT_DIR) -> int:
    """Print the units and the commands to install them; with --install (root only) do it."""
    import getpass
    import tempfile

    user = getpass.getuser()
    name = unit_name(home)
    units = {f"{name}.service": fleet_unit(home, user),
             f"{name.replace('-fleet', '')}@.service": template_unit(home, user)}
    with tempfile.TemporaryDirectory() as tmp:
        problems = verify(units, Path(tmp))
    if problems:
        print("systemd-analyze verify rejects the units:\n  " + "\n  ".join(problems), file=sys.stderr)
        return EXIT_FAIL
    if not install:
        for unit, text in units.items():
            print(f"# {unit_dir / unit}\n{text}")
        print(f"# install (as root): daemon-manager --home {home} startup --install\n"
              f"#   or copy the units above, then: systemctl daemon-reload && systemctl enable {name}.service\n"
              f"# one supervisor per unit instead: systemctl enable {name.replace('-fleet', '')}@ID.service "
              "(then leave that instance out of `start -d`)")
        return EXIT_OK
    if os.geteuid() != 0:
        print("startup --install needs root (it writes to /etc/systemd/system); run it with sudo, "
              "or run `startup` to print the units", file=sys.stderr)
        return EXIT_USAGE
    for unit, text in units.items():
        (unit_dir / unit).write_text(text)
        print(f"wrote {unit_dir / unit}")
    for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", f"{name}.service"]):
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode:
            print(f"{' '.join(argv)} failed: {done.stderr.strip()}", file=sys.stderr)
            return EXIT_FAIL
    print(f"enabled {name}.service: the fleet resumes at boot and stops at shutdown")
    return EXIT_OK
