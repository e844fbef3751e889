"""JSON from people and strangers: configs on disk and request bodies on the page.

`json.loads` trusts its input: it silently keeps the last of two duplicate keys (a typo then
changes a setting without a word), accepts NaN and Infinity (no JSON has them; `stop_timeout:
Infinity` passed every `minimum`), turns a 400-digit number into a big int, and recurses once per
nesting level (2,000 levels end in RecursionError, a traceback or a 500). Each of those is refused
here with a message that says where, so every caller reports it as bad input.
"""
from __future__ import annotations

import errno
import json
import os
import stat
from typing import Any

MAX_DEPTH = 32          # a config is 3 levels deep; a grid adjustment 1
MAX_NUMBER_CHARS = 40   # digits of any number: 1e308 fits, a 400-digit integer does not


class JSONRefused(ValueError):
    """The text is not JSON we accept; str() says why and where."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONRefused(f"duplicate key {key!r} (JSON would silently keep only the last)")
        out[key] = value
    return out


def _constant(name: str) -> float:
    raise JSONRefused(f"{name} is not a JSON number")


def _number(kind: type) -> Any:
    def parse(text: str) -> Any:
        if len(text) > MAX_NUMBER_CHARS:
            raise JSONRefused(f"number {text[:12]}... has {len(text)} characters (at most {MAX_NUMBER_CHARS})")
        return kind(text)
    return parse


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings, found without recursion."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def loads(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON; raise JSONRefused (a ValueError) for anything refused, with line and column."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONRefused(f"not UTF-8 text (byte 0x{text[exc.start]:02x} at offset {exc.start})") from None
    deepest = _depth(text)
    if deepest > max_depth:
        raise JSONRefused(f"nested {deepest} levels deep (at most {max_depth})")
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant,
                          parse_int=_number(int), parse_float=_number(float))
    except json.JSONDecodeError as exc:
        raise JSONRefused(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """A regular file of at most `limit` bytes, else OSError: a 50 MB file, /dev/zero, or a FIFO
    (opened without blocking) that would hang the CLI; a config is read again by the bot anyway."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise OSError(f"larger than {limit // 1024} KiB: not a config")
    return data
