"""Which instance a command names: `-c FILE`, `-i ID` or a bare `ID`, and the config it runs from.

One place, so every instance command resolves its target the same way (the issue's "one grammar").
Imports only the registry: `status` and `info` stay on the lean path; a config is read only when
the command was given one.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from core.instance_manager import InstanceRegistry


class UsageError(Exception):
    """Bad command-line usage: the entry point prints it under the subcommand's usage (exit 2)."""


def merge_bare_id(args: argparse.Namespace) -> None:
    """Fold a bare ID into args.instance_id; naming two different instances is a usage error."""
    bare = getattr(args, "id", None)
    if bare is None:
        return
    if getattr(args, "instance_id", None) not in (None, bare):
        raise UsageError(f"two instances named: {bare!r} and -i {args.instance_id!r}; name one")
    args.instance_id = bare


def instance_id(home: Path, args: argparse.Namespace) -> str:
    """The id a command names: -i/bare ID wins (it overrides a config's own), else the config's."""
    if getattr(args, "instance_id", None):
        return args.instance_id
    if getattr(args, "config", None):
        from core.config_manager import ConfigManager

        return ConfigManager(home).instance_id_of(args.config)
    raise UsageError("name an instance: ID, -i ID or -c CONFIG")


def recorded_config(home: Path, iid: str) -> str | None:
    """The config an instance runs from: the one its record names (if still there), else its
    config in config/active; None for an instance this home does not know."""
    rec = InstanceRegistry(home).load().get(iid) or {}
    if rec.get("config_file") and Path(rec["config_file"]).is_file():
        return rec["config_file"]
    from core.config_manager import ConfigManager

    found = ConfigManager(home).find_active(iid)
    return str(found) if found else None
