"""Secret masking: no API key or secret is ever printed in full, anywhere.

mask() and Masker live in core/masker.py (re-exported here): the supervisor needs only them, and
this module's regexes would cost its boot `re` (~10 ms of CPU per supervisor, issue 12 goal 3).
"""
from __future__ import annotations

import re

from core.masker import Masker, mask  # noqa: F401 (re-exported: callers import them from here)

SECRET_KEY_RE = re.compile(r"(key|secret|password|passphrase|token|private)", re.IGNORECASE)
PLACEHOLDER_RE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)(:-(.*))?\}$", re.DOTALL)
URLS_KEY = "urls"  # notification URLs (Apprise, `notify.urls`): each carries a token, so each is a secret


def mask_url(url: str) -> str:
    """'tgram://123:AAbbcc/456789' -> 'tgram://****6789': the channel stays readable, the token does not."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}://{mask(rest)}" if sep and scheme.isalnum() else mask(url)


def mask_field(value: str | int) -> str:
    """A secret field's value: a ${VAR} reference names no secret and stays readable; its default does not."""
    ref = PLACEHOLDER_RE.match(value) if isinstance(value, str) else None
    if ref is None:
        return mask(value)
    return "${" + ref.group(1) + (":-" + mask(ref.group(3)) if ref.group(2) else "") + "}"


def _is_secret_field(key: object, value: object) -> bool:
    return bool(SECRET_KEY_RE.search(str(key))) and isinstance(value, (str, int)) and not isinstance(value, bool) \
        and value != ""


def _url_list(key: object, value: object) -> bool:
    return key == URLS_KEY and isinstance(value, list)


def secret_values(obj: object) -> list[str]:
    """Every value mask_config would mask, as text: what a Masker must hide in free text."""
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in ([str(v)] if _is_secret_field(k, v) else
                                                    [str(u) for u in v] if _url_list(k, v) else secret_values(v))]
    if isinstance(obj, list):
        return [s for v in obj for s in secret_values(v)]
    return []


def mask_config(obj: object) -> object:
    """A deep copy of a config with every secret-looking field masked."""
    if isinstance(obj, dict):
        return {
            k: (mask_field(v) if _is_secret_field(k, v) else
                [mask_url(u) if isinstance(u, str) and not PLACEHOLDER_RE.match(u) else mask_field(u) for u in v]
                if _url_list(k, v) else mask_config(v))
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [mask_config(v) for v in obj]
    return obj
