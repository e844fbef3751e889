"""Commands over the whole fleet or an instance's config: start-all, restart-all, cleanup ID, new, archive.

Kept apart from core/commands.py (the per-instance commands) so each file has one job. Starting
many instances is one process (core/daemon.py `checked_configs` and `launch_checked`): every config
validated with one jsonschema import, the pre-flights side by side, the claims a batch per lock
pass, the supervisors spawned without waiting for each other; each instance prints what a single
`start` would, and one that fails never stops the others.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from core.exit_codes import EXIT_FAIL, EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE
from core.instance_manager import InstanceRegistry
from core.paths import REPO_ROOT
from core.targets import instance_id



LAUNCH_BATCH = 8  # configs validated, claimed and launched at a time by start-all (see start_each)


def start_each(home: Path, targets: list[tuple[str, str]]) -> list[tuple[str, int, str]]:
    """Start (instance id, config file) pairs together, detached; (id, exit code, what start said) each.

    A batch at a time is validated, claimed (one lock pass) and launched, then the next: the
    first supervisors and bots boot on the other core while this process judges the rest, where
    validating all fifty first left that core idle for about a second. Every readiness line is
    awaited at the end, all at once."""
    from core.commands import prepare_start
    from core.config_manager import ConfigManager
    from core.daemon import Outcome, await_launches, checked_configs, launch_checked  # here: `list` imports this

    prepare_start(home)
    outcomes: list[Outcome] = []
    launches = []
    cm, registry, memo = ConfigManager(home), InstanceRegistry(home), {}  # shared by the batches
    for at in range(0, len(targets), LAUNCH_BATCH):
        batch = targets[at:at + LAUNCH_BATCH]
        checked = checked_configs(home, [(config, iid) for iid, config in batch], cm)
        launch = launch_checked(home, [c for c in checked if not isinstance(c, Outcome)], registry=registry, memo=memo)
        launches.append((checked, launch))
    await_launches([launch for _, launch in launches])
    for checked, launch in launches:
        started = iter(launch.outcomes())
        outcomes += [c if isinstance(c, Outcome) else next(started) for c in checked]
    if any(o.code == EXIT_OK for o in outcomes):  # alerts configured: the fleet's notifier runs too
        from core.notify_start import ensure_notifier

        for (_, config), o in zip(targets, outcomes):
            if o.code == EXIT_OK and (said := ensure_notifier(home, config)):
                print(said)
                break
    return [(iid, o.code, o.message) for (iid, _), o in zip(targets, outcomes)]


def _print_starts(results: list[tuple[str, int, str]], verb: str, skipped: int = 0) -> int:
    for _, _, said in results:
        print(said)
    ok = sum(1 for _, code, _ in results if code == EXIT_OK)
    print(f"{verb} {ok} of {len(results)} instances" + (f" ({skipped} already running)" if skipped else ""))
    return EXIT_OK if ok == len(results) else EXIT_FAIL


def cmd_start_all(home: Path, args: argparse.Namespace) -> int:
    """Every config in config/active whose instance is not running."""
    from core.config_manager import ConfigError, ConfigManager

    cm = ConfigManager(home)
    live = {r["instance_id"]: r for r in InstanceRegistry(home).list_instances()}
    targets, skipped, bad = [], 0, []
    for path in cm.list_active():
        try:
            iid = cm.instance_id_of(path)
        except ConfigError as exc:
            bad.append((path.stem, EXIT_USAGE, "; ".join(exc.errors)))
            continue
        if iid in live:
            print(f"{iid} is already running (pid {live[iid].get('pid')})")
            skipped += 1
        else:
            targets.append((iid, str(path)))
    return _print_starts(bad + start_each(home, targets), "started", skipped)


def cmd_restart_all(home: Path, args: argparse.Namespace) -> int:
    """Stop every live instance at once, then start each again from the config it ran."""
    from core.daemon import stop_many

    registry = InstanceRegistry(home)
    live = registry.list_instances()
    for outcome in stop_many(registry, live):
        print(outcome.message)
    targets = [(r["instance_id"], r.get("config_file") or "") for r in live]
    missing = [(iid, EXIT_FAIL, f"{iid}: no recorded config to restart from") for iid, cfg in targets if not cfg]
    return _print_starts(missing + start_each(home, [t for t in targets if t[1]]), "restarted")


def _when_stopped(home: Path, args: argparse.Namespace, doing: str, action: Callable[[str], int]) -> int:
    """action(id) for the instance the command names, unless it runs (exit 1: stop it first)."""
    iid = instance_id(home, args)
    rec = InstanceRegistry(home).get(iid)
    if rec is not None and rec["alive"]:
        print(f"{iid} is running (pid {rec.get('pid')}): stop it before {doing}", file=sys.stderr)
        return EXIT_FAIL
    return action(iid)


def cmd_cleanup_one(home: Path, args: argparse.Namespace) -> int:
    """Forget the record of one instance that is not running."""
    def forget(iid: str) -> int:
        if not InstanceRegistry(home).unregister(iid):
            print(f"{iid}: unknown instance", file=sys.stderr)
            return EXIT_UNKNOWN
        print(f"removed {iid}'s record (its logs, database and config are kept)")
        return EXIT_OK
    return _when_stopped(home, args, "forgetting it", forget)


def cmd_archive(home: Path, args: argparse.Namespace) -> int:
    """Move a stopped instance's config from config/active to config/archived (kept, never deleted)."""
    from core.config_manager import ConfigError, ConfigManager

    def archive(iid: str) -> int:
        try:
            dest = ConfigManager(home).archive(iid)
        except ConfigError as exc:
            print("\n".join(exc.errors), file=sys.stderr)
            return EXIT_UNKNOWN
        print(f"archived {iid}: {dest}")
        return EXIT_OK
    return _when_stopped(home, args, "archiving it", archive)


# `new` options -> (config section, field)
NEW_OVERRIDES = {
    "symbol": ("metadata", "symbol"), "exchange": ("metadata", "exchange"),
    "lower": ("strategy_config", "grid_lower_price"), "upper": ("strategy_config", "grid_upper_price"),
    "grid_num": ("strategy_config", "grid_num"), "quantity": ("strategy_config", "quantity"),
    "max_position": ("strategy_config", "max_position"), "port": ("daemon_config", "web_port"),
}


def cmd_new(home: Path, args: argparse.Namespace) -> int:
    """config/active/ID.json from a template, written only once it passes what `validate` checks."""
    from core.config_manager import ConfigError, ConfigManager
    from core.daemon import preflight

    overrides: dict[str, dict] = {}
    for option, (section, key) in NEW_OVERRIDES.items():
        if getattr(args, option) is not None:
            overrides.setdefault(section, {})[key] = getattr(args, option)
    cm = ConfigManager(home)
    try:
        template = _template(cm, args.template)
        dest = cm.create_from_template(str(template), args.id, overrides, check=lambda cfg: preflight(cfg, home))
    except ConfigError as exc:
        print(f"{args.id}: not created:\n  " + "\n  ".join(exc.errors), file=sys.stderr)
        return EXIT_USAGE
    print(f"created {dest} (start it with: daemon-manager start {args.id} -d)")
    return EXIT_OK


def _template(cm: ConfigManager, name: str) -> Path:  # noqa: F821 (imported lazily by the caller)
    """The home's config/templates/NAME.json, else the repository's (a fresh home has none)."""
    from core.config_manager import ConfigError

    file = name if name.endswith(".json") else f"{name}.json"
    for folder in (cm.templates_dir, REPO_ROOT / "config" / "templates"):
        if (folder / file).is_file():
            return folder / file
    known = sorted({p.stem for d in (cm.templates_dir, REPO_ROOT / "config" / "templates") for p in d.glob("*.json")})
    raise ConfigError([f"--template: no template {name!r} in {cm.templates_dir} or {REPO_ROOT / 'config' / 'templates'}"
                       f" (known: {', '.join(known) or 'none'})"])
