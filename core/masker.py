"""Masking of secrets in free text: what the lean supervisor needs of core/masking.py, without `re`.

Imported by core/masking.py (which adds the config masking and its regexes) and directly by
core/supervision.py: Masker is str.replace, so a supervisor's boot need not load `re`.
"""
from __future__ import annotations

from _collections_abc import Iterable  # collections.abc's very class, without loading collections


def mask(value: object) -> str:
    """'abcdef123456' -> '****3456'; short or empty values reveal nothing."""
    text = "" if value is None else str(value)
    if not text:
        return ""
    return "****" + (text[-4:] if len(text) >= 12 else "")


class Masker:
    """Replaces known secret values inside free text (log lines, error messages)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for s in self._secrets:
            if s in text:
                text = text.replace(s, mask(s))
        return text
