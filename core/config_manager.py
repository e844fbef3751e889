"""ConfigManager: load an instance config, expand ${VAR}, validate, fill defaults.

A mistake in a config must be caught before anything starts, so every problem is collected and
reported at once, each naming the field path, the bad value and the rule. The JSON Schema in
config/schema/instance.schema.json is the published contract (editors check configs with it);
the rules a schema cannot express (lower < upper, ...) live here. jsonschema and python-dotenv
are imported only when a config is really loaded, so `list`/`status` stay fast.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from core import safe_json
from core.instance_files import is_instance_id
from core.masking import SECRET_KEY_RE, Masker, mask_config, secret_values
from core.paths import REPO_ROOT, is_repo_bot, resolve_code, resolve_runtime

SCHEMA_PATH = REPO_ROOT / "config" / "schema" / "instance.schema.json"
# The digest (config_digest) of a document `start` validated, handed to the bot in its environment:
# a bot whose config file still expands to that very document skips the schema (and jsonschema's
# 5 MB and 80 ms), a bot whose file was edited since validates it in full.
CHECKED_ENV = "GRIDBOT_CONFIG_CHECKED"
MAX_CONFIG_BYTES = 1 << 20  # a config is a few KiB; `start -c /dev/zero` once grew to 20 GB
SECTIONS = ("metadata", "daemon_config", "exchange_config", "strategy_config")
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
ID_RULE = "must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$ (letters, digits, '_', '.', '-'; it names directories)"

# Legacy flat format: the run.py flags of `bot_args` that describe the instance.
LEGACY_META_FLAGS = {"--exchange": "exchange", "--symbol": "symbol", "--strategy": "strategy"}
LEGACY_STRATEGY_FLAGS = {
    "--grid-lower": ("grid_lower_price", float), "--grid-upper": ("grid_upper_price", float),
    "--grid-num": ("grid_num", int), "--max-position": ("max_position", float),
    "--quantity": ("quantity", float), "--duration": ("duration", float),
    "--interval": ("interval", float), "--grid-mode": ("grid_mode", str),
    "--grid-type": ("grid_type", str), "--stop-loss": ("stop_loss", float),
    "--take-profit": ("take_profit", float), "--boundary-action": ("boundary_action", str),
}
API_KEY_FIELDS = ("api_key", "apiKey", "key")
SECRET_FIELDS = ("secret_key", "secret", "api_secret", "private_key", "privateKey")


class ConfigError(Exception):
    """Every problem found in one config; str() lists them one per line."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


class InstanceConfig:
    """A loaded, expanded, validated config with every default filled.

    A plain class, not a dataclass: `dataclasses` imports inspect and ast (~10 ms of every `start`),
    and a dataclass's repr would print the exchange keys."""

    def __init__(self, instance_id: str, source_path: Path, legacy: bool, metadata: dict, daemon: dict,
                 exchange: dict, strategy: dict, used_vars: dict[str, str] | None = None, digest: str = "",
                 expanded: dict | None = None) -> None:
        self.instance_id = instance_id
        self.source_path = source_path
        self.legacy = legacy
        self.metadata = metadata
        self.daemon = daemon
        self.exchange = exchange
        self.strategy = strategy
        self.used_vars: dict[str, str] = used_vars if used_vars is not None else {}
        self.digest = digest  # config_digest of the expanded document that passed
        self.preflight_key: str | None = None  # inputs of the `run.py --check` it passed (core/preflight_key.py)
        # a draft's expanded document (load(schema=False)), judged by ConfigManager.validated; None once judged
        self.expanded = expanded

    def __repr__(self) -> str:
        return f"InstanceConfig({self.instance_id!r}, {str(self.source_path)!r})"

    def secrets(self) -> list[str]:
        """Secret strings of this config, for core.masking.Masker."""
        return sorted(set(secret_values(self.as_dict()) + _secret_vars(self.used_vars)))

    def as_dict(self) -> dict:
        return {"metadata": self.metadata, "daemon_config": self.daemon,
                "exchange_config": self.exchange, "strategy_config": self.strategy}

    def masked(self) -> dict:
        """The whole config with secrets masked: safe for status, info and error output."""
        masker = Masker(self.secrets())
        return json.loads(masker(json.dumps(mask_config(self.as_dict()))))

    @property
    def api_key(self) -> str | None:
        return _first(self.exchange, API_KEY_FIELDS)

    @property
    def secret_key(self) -> str | None:
        return _first(self.exchange, SECRET_FIELDS)

    @property
    def account(self) -> str | None:
        """Fingerprint of exchange + API key (never the key); None for paper, whose account is its db."""
        if self.metadata["exchange"] == "paper" or not self.api_key:
            return None
        return hashlib.sha256(f"{self.metadata['exchange']}:{self.api_key}".encode()).hexdigest()[:16]

    def bot_argv(self) -> list[str]:
        """The command the supervisor runs: python script --config /abs/config [bot_args]."""
        return [self.daemon["python_path"], self.daemon["script_path"], "--config", str(self.source_path),
                *self.daemon.get("bot_args", [])]


def _first(d: Mapping, keys: tuple[str, ...]) -> str | None:
    for k in keys:
        if d.get(k):
            return str(d[k])
    return None


class ConfigManager:
    """Configs of one project home: load/validate, and the templates/active/archived dirs."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.templates_dir = self.home / "config" / "templates"
        self.active_dir = self.home / "config" / "active"
        self.archived_dir = self.home / "config" / "archived"
        self._dotenv: dict[str, str] | None = None

    # -- loading ---------------------------------------------------------------------------
    def resolve_path(self, path: str | os.PathLike) -> Path:
        """A config named relative resolves against the home, always: the same file whatever the cwd
        (a fallback to the cwd made one command line name different files from different places)."""
        return resolve_runtime(self.home, Path(path).expanduser()).resolve()

    def read_json(self, path: str | os.PathLike, source: Path | None = None) -> dict:
        """The config as a dict; bounded in size and depth, strict JSON (safe_json), else ConfigError.
        source: resolve_path(path), when the caller has it already."""
        source = source or self.resolve_path(path)
        try:
            doc = safe_json.loads(safe_json.read_bounded(source, MAX_CONFIG_BYTES))
        except OSError as exc:
            hint = ""
            if not Path(path).expanduser().is_absolute() and Path(path).exists():
                hint = (f"; a relative config is read relative to the home {self.home}, not the current directory:"
                        f" for {Path(path).resolve()} give that absolute path")
            raise ConfigError([f"{path}: cannot read config file {source} ({exc.strerror or exc}){hint}"]) from None
        except safe_json.JSONRefused as exc:
            raise ConfigError([f"{path}: {exc}"]) from None
        if not isinstance(doc, dict):
            raise ConfigError([f"{path}: the config must be a JSON object, got {type(doc).__name__}"])
        return doc

    def instance_id_of(self, path: str | os.PathLike, instance_id: str | None = None) -> str:
        """The instance id a config names, without expanding or validating it (for stop/status)."""
        if instance_id:
            return instance_id
        doc = self.read_json(path)
        meta = doc.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("instance_id"), str) and meta["instance_id"]:
            return meta["instance_id"]
        return self.resolve_path(path).stem

    def load(self, path: str | os.PathLike, instance_id: str | None = None, checked: str | None = None,
             schema: bool = True) -> InstanceConfig:
        """Read, expand, validate and complete one config; raise ConfigError listing every problem.

        checked: the digest of a document already validated against this schema (CHECKED_ENV);
        when the file expands to exactly that document, the schema is not run again. Every other
        rule is. schema=False: a draft, never run, whose pre-flight may start while the schema
        is being judged (core/daemon.py); an invalid document may fail in any way then."""
        source = self.resolve_path(path)
        raw = self.read_json(path, source)
        legacy = is_legacy(raw)
        doc = legacy_to_sections(raw) if legacy else raw
        errors: list[str] = []
        used: dict[str, str] = {}
        errors += argv_placeholders(doc)
        doc = self._expand(doc, "", errors, used)
        digest = config_digest(doc)
        if schema and (errors or not checked or checked != digest):
            errors += schema_errors(doc)
        meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
        given = meta.get("instance_id")
        if isinstance(given, str) and not is_instance_id(given) \
                and not any(e.startswith("metadata.instance_id:") for e in errors):  # the schema's $ allows "id\n"
            errors.append(f"metadata.instance_id: {json.dumps(given)} {ID_RULE}")
        iid, id_errors = _choose_instance_id(instance_id, meta, source)
        errors += id_errors
        strategy = doc.get("strategy_config") if isinstance(doc.get("strategy_config"), dict) else {}
        errors += strategy_rules(strategy)
        if errors:
            raise _refusal(errors, doc, used)
        draft = not schema
        schema = load_schema()
        cfg = InstanceConfig(
            instance_id=iid, source_path=source, legacy=legacy,
            metadata={**_defaults(schema, "metadata"), **meta, "instance_id": iid, "name": meta.get("name", iid)},
            daemon=self._daemon_defaults(doc.get("daemon_config", {}), iid, schema),
            exchange=dict(doc.get("exchange_config") or {}),
            strategy={**_defaults(schema, "strategy_config"), **strategy},
            used_vars=used, digest=digest, expanded=doc if draft else None,
        )
        return cfg

    def validated(self, draft: InstanceConfig, checked: str | None = None) -> InstanceConfig:
        """The draft (load(schema=False), which raised on every other rule) judged by the schema,
        as load() would judge the document it was built from (checked: as load's), without reading,
        expanding and completing it a second time; ConfigError lists the schema's complaints."""
        doc, draft.expanded = draft.expanded, None
        if doc is None:
            raise ValueError("validated() takes a draft of load(schema=False), once")
        if checked != draft.digest:
            errors = schema_errors(doc)
            if errors:
                raise _refusal(errors, doc, draft.used_vars)
        return draft

    def validate_overrides(self, metadata: dict, strategy: dict) -> list[str]:
        """The same rules as load(), for run.py after its CLI flags overrode metadata and strategy."""
        doc = {"metadata": metadata, "strategy_config": strategy}
        return _unique(schema_errors(doc, sections=("metadata", "strategy_config")) + strategy_rules(strategy))

    def _daemon_defaults(self, daemon: dict, iid: str, schema: dict) -> dict:
        out = {**_defaults(schema, "daemon_config"), **_copy(daemon)}
        out["python_path"] = str(resolve_code(daemon["python_path"])) if daemon.get("python_path") else sys.executable
        out["script_path"] = str(resolve_code(daemon.get("script_path") or "run.py"))
        out["working_dir"] = str(resolve_runtime(self.home, daemon.get("working_dir") or "."))
        # resolved, so database/../database/a.db and a symlinked dir are recognised as the same file
        out["log_dir"] = str(resolve_runtime(self.home, daemon.get("log_dir") or f"logs/{iid}").resolve())
        out["db_path"] = str(resolve_runtime(self.home, daemon.get("db_path") or f"database/{iid}.db").resolve())
        out.setdefault("web_port", None)
        # run.py is ready at its first heartbeat (grid placed, page up); another program after startsecs
        out.setdefault("ready_on", "heartbeat" if is_repo_bot(out["script_path"]) else "startsecs")
        return out

    # -- ${VAR} expansion ----------------------------------------------------------------------
    def env_values(self) -> dict[str, str]:
        """os.environ over the home's .env, read without loading .env into os.environ."""
        if self._dotenv is None:
            env_file = self.home / ".env"
            if env_file.is_file():
                from io import StringIO

                from dotenv import dotenv_values
                try:
                    text = safe_json.read_bounded(env_file, MAX_CONFIG_BYTES).decode("utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError([f"{env_file}: cannot read ({exc})"]) from None
                self._dotenv = {k: v for k, v in dotenv_values(stream=StringIO(text)).items() if v is not None}
            else:
                self._dotenv = {}
        return {**self._dotenv, **os.environ}

    def _expand(self, obj: Any, where: str, errors: list[str], used: dict[str, str]) -> Any:
        if isinstance(obj, dict):
            return {k: self._expand(v, f"{where}.{k}" if where else str(k), errors, used) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._expand(v, f"{where}[{i}]", errors, used) for i, v in enumerate(obj)]
        if not isinstance(obj, str) or "${" not in obj:
            return obj
        env = self.env_values()

        def sub(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                used[name] = env[name]
                return env[name]
            if default is not None:
                return default
            errors.append(f"{where}: environment variable ${{{name}}} is not set (in the environment or {self.home / '.env'})")
            return ""

        return VAR_RE.sub(sub, obj)

    # -- templates / active / archived ---------------------------------------------------------
    def list_active(self) -> list[Path]:
        return sorted(self.active_dir.glob("*.json"))

    def find_active(self, instance_id: str) -> Path | None:
        """The active config of an instance: by file name first, then by metadata.instance_id."""
        direct = self.active_dir / f"{instance_id}.json"
        if direct.is_file():
            return direct
        for p in self.list_active():
            try:
                if self.instance_id_of(p) == instance_id:
                    return p
            except ConfigError:
                continue
        return None

    def archive(self, instance_id: str) -> Path:
        """Move config/active/<id>.json to config/archived/<id>-<timestamp>.json (kept, not deleted)."""
        src = self.find_active(instance_id)
        if src is None:
            raise ConfigError([f"instance_id: {instance_id!r} has no config in {self.active_dir}"])
        import shutil  # archive only: shutil (with lzma, bz2) and datetime are not for every start
        from datetime import datetime

        self.archived_dir.mkdir(parents=True, exist_ok=True)
        dest = self.archived_dir / f"{src.stem}-{datetime.now():%Y%m%dT%H%M%S}.json"
        shutil.move(str(src), dest)
        return dest

    def create_from_template(self, template: str, instance_id: str, overrides: dict | None = None,
                             check: Callable[[InstanceConfig], list[str] | None] | None = None) -> Path:
        """Copy a template to config/active/<id>.json with the id set; validated (and passed to
        `check`, e.g. the bot's own preflight) before it is written."""
        if not is_instance_id(instance_id):
            raise ConfigError([f"instance_id: {instance_id!r} {ID_RULE}"])
        src = self.templates_dir / (template if template.endswith(".json") else f"{template}.json")
        doc = self.read_json(src)
        doc.setdefault("metadata", {})["instance_id"] = instance_id
        for section, values in (overrides or {}).items():
            doc.setdefault(section, {}).update(values)
        dest = self.active_dir / f"{instance_id}.json"
        if dest.exists():
            raise ConfigError([f"instance_id: {instance_id!r} already has a config at {dest}"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        try:
            problems = check(self.load(tmp, instance_id=instance_id)) if check else None
            if problems:
                raise ConfigError(problems)
        except ConfigError:
            tmp.unlink()
            raise
        os.replace(tmp, dest)
        return dest


# -- validation helpers (module level so run.py and tests can use them alone) -------------------
_SCHEMA: dict | None = None
_SCHEMA_TEXT: str | None = None


def load_schema() -> dict:
    global _SCHEMA, _SCHEMA_TEXT
    if _SCHEMA is None:
        _SCHEMA_TEXT = SCHEMA_PATH.read_text()
        _SCHEMA = json.loads(_SCHEMA_TEXT)
    return _SCHEMA


def config_digest(doc: dict) -> str:
    """sha256 of the schema and of an expanded config document: it names exactly what one schema
    validation judged, so another process (the bot) can trust that verdict for the same document
    and the same schema, and for nothing else."""
    load_schema()
    h = hashlib.sha256((_SCHEMA_TEXT or "").encode())
    h.update(b"\0" + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def _refusal(errors: list[str], doc: dict, used: dict[str, str]) -> ConfigError:
    """The ConfigError listing each problem once, with every secret of the document (and of the
    ${VAR}s it used) masked: an error message quotes values."""
    masker = Masker(secret_values(doc) + _secret_vars(used))
    return ConfigError([masker(e) for e in _unique(errors)])


_DEFAULTS: dict[str, str] = {}  # section -> its schema defaults as JSON, copied for each config


def _defaults(schema: dict, section: str) -> dict:
    """The section's defaults, a fresh copy each (a config may change its own lists and dicts)."""
    if section not in _DEFAULTS:
        props = schema["properties"][section]["properties"]
        _DEFAULTS[section] = json.dumps({k: v["default"] for k, v in props.items() if "default" in v})
    return json.loads(_DEFAULTS[section])


def _copy(doc: dict) -> dict:
    """A deep copy of JSON data (a parsed config): the C json codec, without importing copy."""
    return json.loads(json.dumps(doc))


_VALIDATORS: dict[tuple[str, ...], object] = {}  # sections -> validator: made once per process, not per config


def _validator() -> type:
    """Draft 2020-12, except that an integer is written as one: JSON Schema counts 7520.0 as an
    integer, and `web_port: 7520.0` passed validation only for the page never to start.
    (Creating the class builds attrs classes, ~11 ms: schema_errors keeps the validator.)"""
    from jsonschema import Draft202012Validator, validators

    def integer(_checker: object, value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    checker = Draft202012Validator.TYPE_CHECKER.redefine("integer", integer)
    return validators.extend(Draft202012Validator, type_checker=checker)


def schema_errors(doc: dict, sections: tuple[str, ...] = ()) -> list[str]:
    """JSON Schema errors as 'path: value rule' lines (jsonschema imported here, lazily)."""
    validator = _VALIDATORS.get(sections)
    if validator is None:
        schema = load_schema()
        if sections:
            schema = {"type": "object", "properties": {name: schema["properties"][name] for name in sections}}
        validator = _VALIDATORS[sections] = _validator()(schema)
    out = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path))):
        where = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {_describe(err)}")
    return out


def _describe(err: ValidationError) -> str:  # noqa: F821 (jsonschema is imported lazily)
    """A readable rule for one jsonschema error, including the bad value."""
    v, rule = err.instance, err.validator_value
    shown = json.dumps(v) if not isinstance(v, (dict, list)) else type(v).__name__
    if err.validator == "required":
        return err.message.replace("is a required property", "is required (missing)")
    if err.validator == "enum":
        return f"{shown} is not one of {', '.join(map(str, rule))}"
    if err.validator == "additionalProperties":
        return err.message
    if err.validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        word = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[err.validator]
        return f"{shown} must be {word} {rule}"
    if err.validator == "type":
        return f"{shown} must be of type {rule if isinstance(rule, str) else ' or '.join(rule)}"
    if err.validator == "pattern":
        return f"{shown} must match {rule}"
    return f"{shown}: {err.message}"


def strategy_rules(s: dict) -> list[str]:
    """What the schema cannot say about a grid."""
    out = []
    lo, hi = s.get("grid_lower_price"), s.get("grid_upper_price")
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lo, hi))
    if not s.get("auto_price"):
        for name, value in (("grid_lower_price", lo), ("grid_upper_price", hi)):
            if value is None:
                out.append(f"strategy_config.{name}: is required (missing) unless auto_price is true")
    if numeric and lo >= hi:
        out.append(f"strategy_config.grid_lower_price: {lo} must be below grid_upper_price ({hi})")
    q, mp = s.get("quantity"), s.get("max_position")
    if isinstance(q, (int, float)) and isinstance(mp, (int, float)) and q > mp:
        out.append(f"strategy_config.quantity: {q} must not exceed max_position ({mp})")
    return out


def argv_placeholders(doc: dict) -> list[str]:
    """${VAR} in bot_args is refused: expanded, it would sit on the bot's command line, which every
    local user reads in `ps`. Secrets go in exchange_config (passed by environment), others in
    daemon_config.environment."""
    daemon = doc.get("daemon_config")
    args = daemon.get("bot_args") if isinstance(daemon, dict) else None
    if not isinstance(args, list):
        return []
    return [f"daemon_config.bot_args[{i}]: {json.dumps(a)} uses ${{{m.group(1)}}}: a command line is readable by "
            "every local user (ps); put secrets in exchange_config and other values in daemon_config.environment"
            for i, a in enumerate(args) if isinstance(a, str) for m in [VAR_RE.search(a)] if m]


def is_legacy(doc: dict) -> bool:
    """The old single-bot format: flat daemon keys and `bot_args`, no sections."""
    return not any(k in doc for k in SECTIONS)


def legacy_to_sections(doc: dict) -> dict:
    """Rebuild the sections of a legacy flat config from its keys and its run.py flags."""
    args = doc.get("bot_args") or []
    meta: dict[str, Any] = {}
    strategy: dict[str, Any] = {}
    pairs = list(zip(args, args[1:])) if isinstance(args, list) else []
    for flag, value in pairs:
        if flag in LEGACY_META_FLAGS:
            meta[LEGACY_META_FLAGS[flag]] = value
        elif flag in LEGACY_STRATEGY_FLAGS:
            name, kind = LEGACY_STRATEGY_FLAGS[flag]
            try:
                strategy[name] = kind(value)
            except ValueError:
                strategy[name] = value  # reported by the schema with the flag's value
    meta.setdefault("exchange", "paper")
    for key in ("instance_id", "name", "symbol"):
        if key in doc:
            meta[key] = doc[key]
    daemon = {k: v for k, v in doc.items() if k not in ("instance_id", "name", "symbol", "$schema")}
    return {"metadata": meta, "daemon_config": daemon, "exchange_config": {}, "strategy_config": strategy}


def _choose_instance_id(flag: str | None, meta: dict, source: Path) -> tuple[str, list[str]]:
    """flag > metadata.instance_id > file stem; the schema already checked metadata's own."""
    if flag:
        return flag, ([] if is_instance_id(flag) else [f"--instance-id: {flag!r} {ID_RULE}"])
    if isinstance(meta.get("instance_id"), str) and meta["instance_id"]:
        return meta["instance_id"], []
    stem = source.stem
    return stem, ([] if is_instance_id(stem) else [f"instance_id (from file name): {stem!r} {ID_RULE}"])


def _secret_vars(used: dict[str, str]) -> list[str]:
    """Values of the ${VAR}s a config used whose names say they are secret."""
    return [v for k, v in used.items() if SECRET_KEY_RE.search(k) and v]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
