"""json.dumps / json.loads for the lean supervisor, straight over CPython's C accelerator `_json`.

Why: `import json` costs each supervisor ~12 ms of CPU at boot (json.decoder and json.encoder
import `re`, which loads `enum`, `functools` and `collections`), and 200 supervisors pay it each
time a fleet starts. `json` itself does its work in `_json` (make_scanner, make_encoder); this
module calls the same functions with the same arguments json's defaults pass, so the text is
byte-identical and the same input is refused (a property test holds it to json:
tests/core/test_cjson.py). Where `_json` lacks them (another interpreter), `json` is used.

Why JSON and not `marshal` for the start spec the CLI pipes to the supervisor: the CLI's end
(core/daemon.py) is another engineer's, the spec is also what a foreground `start` hands over, and
with this module JSON costs the supervisor nothing more than marshal would.

Only what the supervisor path needs: dumps(obj, sort_keys, separators, default) with json's
defaults otherwise (ensure_ascii, allow_nan, check_circular), and loads(str | bytes).
"""
from __future__ import annotations

from _collections_abc import Callable  # collections.abc is the same class, at the cost of `collections`

try:
    from _json import encode_basestring_ascii as _c_ascii
    from _json import make_encoder as _c_make_encoder
    from _json import make_scanner as _c_make_scanner
except ImportError:  # pragma: no cover - CPython always has them
    _c_ascii = _c_make_encoder = _c_make_scanner = None

_WS = " \t\n\r"  # json.decoder.WHITESPACE: [ \t\n\r]*
_CONSTANTS = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}


def _not_serializable(o: object) -> object:
    """json.JSONEncoder.default: the same TypeError for a value JSON has no form for."""
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


def dumps(obj: object, *, sort_keys: bool = False, separators: tuple[str, str] = (", ", ": "),
          default: Callable[[object], object] | None = None) -> str:
    """json.dumps(obj, sort_keys=..., separators=..., default=...), same text, same errors."""
    if _c_make_encoder is None:  # pragma: no cover
        import json

        return json.dumps(obj, sort_keys=sort_keys, separators=separators, default=default)
    item_sep, key_sep = separators
    encode = _c_make_encoder({}, default or _not_serializable, _c_ascii, None, key_sep, item_sep,
                             sort_keys, False, True)
    return "".join(encode(obj, 0))


class _Context:
    """The attributes make_scanner reads from a JSONDecoder, at json.loads' defaults."""
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__


_scan = _c_make_scanner(_Context()) if _c_make_scanner is not None else None


def _error(msg: str, doc: str, pos: int) -> ValueError:
    """json.JSONDecodeError, a ValueError; json is imported only for bad input (never on a good path)."""
    from json import JSONDecodeError

    return JSONDecodeError(msg, doc, pos)


def _skip_ws(s: str, i: int) -> int:
    n = len(s)
    while i < n and s[i] in _WS:
        i += 1
    return i


def _plain_utf8(b: bytes | bytearray) -> bool:
    """json.detect_encoding would say utf-8: no BOM, and no NUL in the first two bytes of 2 or 4+."""
    if b[:2] in (b"\xff\xfe", b"\xfe\xff") or b[:3] == b"\xef\xbb\xbf":
        return False
    return bool(b[0] and b[1]) if len(b) == 2 or len(b) >= 4 else True


def loads(s: str | bytes | bytearray) -> object:
    """json.loads(s): the same value, or the same ValueError (json.JSONDecodeError, or
    UnicodeDecodeError for bytes json cannot decode)."""
    if isinstance(s, (bytes, bytearray)) and _plain_utf8(s):
        s = s.decode("utf-8", "surrogatepass")  # what json.loads does with them
    if _scan is None or not isinstance(s, str) or s.startswith("\ufeff"):
        import json  # a BOM, UTF-16/32, not text at all: json's own answer (an error, mostly)

        return json.loads(s)
    i = _skip_ws(s, 0)
    try:
        obj, end = _scan(s, i)
    except StopIteration as err:
        raise _error("Expecting value", s, err.value) from None
    except SystemError:
        # _json raises a syntax error inside a document as json.decoder.JSONDecodeError, which it
        # takes from sys.modules only: with json never imported (the supervisor, `list`) it fails
        # with SystemError instead. Bad input only: json itself gives the same words as a ValueError.
        import json

        return json.loads(s)
    end = _skip_ws(s, end)
    if end != len(s):
        raise _error("Extra data", s, end)
    return obj
