"""Where alerts go: fleet URLs (config/fleet.json `notify`, GRIDBOT_NOTIFY, .env) and each instance's own.

An instance's `daemon_config.notify` adds URLs to the fleet's (mode "add", the default) or
replaces them ("replace"), and may name the events it wants; otherwise the fleet's list of
events, otherwise every event that is on by default (core/events.py DEFAULT_KINDS).
Configs are re-read when their file changes, so a new URL needs no notifier restart. They are read
as JSON with ${VAR} expanded from the environment and .env, not validated: that is `start`'s job,
and a notifier started without an instance's exchange keys must still alert for it.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from core.config_manager import VAR_RE, ConfigError, ConfigManager
from core.events import DAILY_SUMMARY, DEFAULT_KINDS, KINDS
from core.instance_manager import InstanceRegistry
from core.masking import Masker, secret_values
from core.notify_start import NOTIFY_ENV


class SettingsError(Exception):
    """config/fleet.json cannot be used: the message names the file and the field."""


class Channel:
    """The URLs an event goes to and the kinds wanted there."""

    __slots__ = ("urls", "kinds")

    def __init__(self, urls: list[str], kinds: frozenset[str]) -> None:
        self.urls = list(dict.fromkeys(u for u in urls if u))  # order kept, duplicates dropped
        self.kinds = kinds

    def wants(self, kind: str) -> list[str]:
        return self.urls if kind in self.kinds else []


class InstanceInfo:
    """What a message names: symbol and the config to restart with; the config's secrets to mask."""

    __slots__ = ("symbol", "config", "secrets", "channel")

    def __init__(self, symbol: str, config: str, secrets: list[str], channel: Channel) -> None:
        self.symbol, self.config, self.secrets, self.channel = symbol, config, secrets, channel


def _kinds(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(k, str) and k in KINDS for k in value):
        raise SettingsError(f"{where}: {value!r} must be a list of event kinds ({', '.join(KINDS)})")
    return frozenset(value)


class Settings:
    """Reads the home's notification settings; cheap to ask again (files cached by mtime)."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.configs = ConfigManager(self.home)
        self._fleet: tuple[object, Channel] | None = None
        self._instances: dict[str, tuple[object, InstanceInfo]] = {}
        self.summary_hour: int | None = None  # fleet.json notify.daily_summary_hour (server local time)

    @property
    def fleet_file(self) -> Path:
        return self.home / "config" / "fleet.json"

    def _expand(self, obj: object) -> object:
        """${VAR} and ${VAR:-default} in every string; a missing variable becomes empty (an invalid URL, logged)."""
        if isinstance(obj, dict):
            return {k: self._expand(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self._expand(v) for v in obj]
        if not isinstance(obj, str):
            return obj
        env = self.configs.env_values()
        return VAR_RE.sub(lambda m: env.get(m.group(1), m.group(2) or ""), obj)

    def fleet(self) -> Channel:
        """config/fleet.json `notify` {urls, events} plus GRIDBOT_NOTIFY (environment or .env)."""
        env_urls = self.configs.env_values().get(NOTIFY_ENV, "")
        key = (_mtime(self.fleet_file), _mtime(self.home / ".env"), env_urls)
        if self._fleet is not None and self._fleet[0] == key:
            return self._fleet[1]
        self.configs = ConfigManager(self.home)  # forget the .env it read
        notify: dict = {}
        if self.fleet_file.exists():
            try:
                doc = json.loads(self.fleet_file.read_text())
            except (OSError, ValueError) as exc:
                raise SettingsError(f"{self.fleet_file}: not readable JSON ({exc})") from None
            notify = doc.get("notify") or {} if isinstance(doc, dict) else None
            if not isinstance(notify, dict) or not isinstance(notify.get("urls", []), list):
                raise SettingsError(f"{self.fleet_file}: notify must be an object with a list `urls`")
        urls = [str(self._expand(str(u))).strip() for u in notify.get("urls", [])]
        urls += [u.strip() for u in env_urls.split(",")]
        channel = Channel(urls, _kinds(notify.get("events"), f"{self.fleet_file}: notify.events") or DEFAULT_KINDS)
        hour = notify.get("daily_summary_hour")
        if hour is not None and (not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour <= 23):
            raise SettingsError(f"{self.fleet_file}: notify.daily_summary_hour: {hour!r} must be an hour 0-23")
        self.summary_hour = hour
        if hour is not None:  # setting the hour is what turns the daily summary on
            channel.kinds = channel.kinds | {DAILY_SUMMARY}
        self._fleet = (key, channel)
        return channel

    def instance(self, iid: str) -> InstanceInfo:
        """The instance's channel and names; the fleet's alone when its config cannot be read."""
        fleet = self.fleet()
        path = self._config_path(iid)
        key = (_mtime(path) if path else None, self._fleet[0] if self._fleet else None)
        cached = self._instances.get(iid)
        if cached is not None and cached[0] == key:
            return cached[1]
        info = InstanceInfo("", "", [], fleet)
        try:
            doc = self._expand(self.configs.read_json(path)) if path is not None else None
        except ConfigError:
            doc = None
        if isinstance(doc, dict):
            daemon, meta = doc.get("daemon_config"), doc.get("metadata")
            notify = daemon.get("notify") if isinstance(daemon, dict) else None
            notify = notify if isinstance(notify, dict) else {}
            own = [str(u) for u in notify["urls"]] if isinstance(notify.get("urls"), list) else []
            urls = own if notify.get("mode") == "replace" else fleet.urls + own
            try:
                kinds = _kinds(notify.get("events"), "daemon_config.notify.events") or fleet.kinds
            except SettingsError:
                kinds = fleet.kinds  # `validate` names the bad kind; alerts keep flowing meanwhile
            symbol = meta.get("symbol") if isinstance(meta, dict) else None
            info = InstanceInfo(str(symbol or ""), _relative(self.home, path), secret_values(doc), Channel(urls, kinds))
        self._instances[iid] = (key, info)
        return info

    def _config_path(self, iid: str) -> Path | None:
        rec = InstanceRegistry(self.home).get(iid) or {}
        if rec.get("config_file") and Path(rec["config_file"]).is_file():
            return Path(rec["config_file"])
        return self.configs.find_active(iid)

    def every_url(self) -> list[str]:
        """Each configured URL once: the fleet's and every active instance's (for notify-test)."""
        urls = list(self.fleet().urls)
        for path in self.configs.list_active():
            try:
                iid = self.configs.instance_id_of(path)
            except ConfigError:
                continue
            urls += self.instance(iid).channel.urls
        return list(dict.fromkeys(urls))

    def masker(self, *extra: list[str]) -> Masker:
        """Hides every URL and config secret this home knows of, whole or by its token parts."""
        secrets = [s for info in (v[1] for v in self._instances.values()) for s in info.secrets]
        urls = self.fleet().urls + [u for v in self._instances.values() for u in v[1].channel.urls]
        for more in extra:
            urls += more
        return Masker(secrets + urls + [p for u in urls for p in url_secret_parts(u)])


def url_secret_parts(url: str) -> list[str]:
    """The pieces of a URL that can be a token when printed alone (user, password, path, query values)."""
    _, _, rest = url.partition("://")
    rest = rest.replace("?", "/").replace("&", "/").replace("=", "/")
    parts = []
    for piece in rest.split("/"):
        userinfo, at, _host = piece.rpartition("@")
        parts += userinfo.split(":") if at else [piece]
    return [p for p in parts if len(p) >= 8]


def _mtime(path: Path | None) -> float | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


def _relative(home: Path, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(home.resolve()))
    except ValueError:
        return str(path)
