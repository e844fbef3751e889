"""The key of one pre-flight (`run.py --check`): a digest of every input its verdict depends on.

A check that passed on exactly the same inputs passes again: it places nothing and writes nothing,
so its verdict is a function of what it reads. `start` keeps the key of the last PASSED check
beside the instance's config.checked (PASSED_FILE, 0600, replaced atomically, written only after a
pass) and skips the check, a whole interpreter importing the bot's config code (~0.12 s before
anything is spawned), when the key of this start equals it. A failing check is never kept, so it
runs (and is reported) every time.

The inputs: the command line (interpreter, script, config file, instance id), the environment the
check gets (bot_environment: the allow-listed variables, every ${VAR} the config used, its
`environment`, the keys, and the digest of the expanded document and schema, config_digest), its
cwd, the interpreter (resolved, with its size and mtime) and the site-packages beside it (their
mtime changes when a package is installed, upgraded or removed), the bot's code ((path, size,
mtime_ns) of every .py under CODE_DIRS, run.py and the schema), and the price CSV the check
replays. An edit that keeps a file's size and its nanosecond mtime is not seen: an editor, git
or pip always moves the mtime.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os

from core.paths import REPO_ROOT

PASSED_FILE = "config.preflight"  # in the instance's log dir: the key of the last pre-flight that passed
CODE_DIRS = ("bot", "strategies", "exchanges", "core", "database", "web")
CODE_FILES = ("run.py", "config/schema/instance.schema.json")

_code_stamp: str | None = None  # one walk of the code per CLI process (start-all checks many configs)


def _stat(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError as exc:
        return [path, "missing", exc.errno]
    return [path, st.st_size, st.st_mtime_ns]


def _code() -> str:
    """(path, size, mtime_ns) of the bot's code, as one digest."""
    global _code_stamp
    if _code_stamp is None:
        root = str(REPO_ROOT)
        stats = [_stat(os.path.join(root, name)) for name in CODE_FILES]
        for top in CODE_DIRS:
            for folder, dirs, files in os.walk(os.path.join(root, top)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__")
                stats += [_stat(os.path.join(folder, f)) for f in sorted(files) if f.endswith(".py")]
        _code_stamp = hashlib.sha256(json.dumps(stats).encode()).hexdigest()
    return _code_stamp


def _interpreter(python: str) -> list:
    """The interpreter, resolved, and the site-packages of its environment (a venv's lib/)."""
    real = os.path.realpath(python)
    base = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    sites = sorted(glob.glob(os.path.join(glob.escape(base), "lib", "python*", "site-packages")))
    return [_stat(real), *(_stat(s) for s in sites)]


def preflight_key(argv: list[str], env: dict[str, str], cwd: str, price_csv: object) -> str:
    """The digest naming one pre-flight's inputs (see the module docstring)."""
    csv = os.path.join(cwd, os.path.expanduser(price_csv)) if isinstance(price_csv, str) and price_csv else None
    inputs = [argv, sorted(env.items()), cwd, _interpreter(argv[0]), _code(), _stat(csv) if csv else None]
    return hashlib.sha256(json.dumps(inputs).encode()).hexdigest()


def passed_key(log_dir: str) -> str | None:
    """The key of the last pre-flight this instance passed (PASSED_FILE), if any."""
    try:
        with open(os.path.join(log_dir, PASSED_FILE), "rb") as fh:
            return fh.read(128).decode("ascii", "replace").strip() or None
    except OSError:
        return None
