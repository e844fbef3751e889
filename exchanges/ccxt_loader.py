"""The one ccxt exchange a bot trades on, without the hundred others.

`import ccxt` runs ccxt/__init__.py, which imports every exchange ccxt supports: on this machine
about 0.64 s and 37 MB that a bot trading on one venue never uses (bench/bench_bot_memory.py
prints the bot's figures). Here the package `ccxt` is registered from its spec without running
that file, so `ccxt.backpack` and `ccxt.base.*` import alone, as ccxt's own modules import each
other by full name.

Nothing that reads the package breaks: the first time anyone asks it for a name it does not hold
yet (`ccxt.exchanges`, `ccxt.binance`, `ccxt.__version__`), ccxt/__init__.py runs in it then, as
`import ccxt` would have run it; only then is the whole cost paid. When `ccxt` was imported
before, it is used as it is.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

NOT_EXCHANGES = {"base", "abstract", "async_support", "pro", "static_dependencies"}


def package() -> ModuleType:
    """The `ccxt` package, registered without importing every exchange (or the one imported already)."""
    found = sys.modules.get("ccxt")
    if found is not None:
        return found
    spec = importlib.util.find_spec("ccxt")
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError("No module named 'ccxt' (run `make setup`)", name="ccxt")
    module = importlib.util.module_from_spec(spec)

    def whole(name: str) -> object:
        """Run ccxt/__init__.py in the package the first time a name it defines is asked for."""
        del module.__dict__["__getattr__"]
        spec.loader.exec_module(module)
        return getattr(module, name)

    module.__getattr__ = whole
    sys.modules["ccxt"] = module
    return module


def exchange_class(exchange_id: str) -> type:
    """ccxt's class for `exchange_id` (a module ccxt/<id>.py defining the class <id>), imported
    alone; ValueError when ccxt has no such exchange."""
    package()
    from ccxt.base.exchange import Exchange

    if not exchange_id.isidentifier() or exchange_id in NOT_EXCHANGES or exchange_id.startswith("_"):
        raise ValueError(exchange_id)
    try:
        module = importlib.import_module(f"ccxt.{exchange_id}")
    except ModuleNotFoundError as exc:
        if exc.name == f"ccxt.{exchange_id}":
            raise ValueError(exchange_id) from None
        raise
    cls = getattr(module, exchange_id, None)
    if not (isinstance(cls, type) and issubclass(cls, Exchange)):
        raise ValueError(exchange_id)
    return cls
