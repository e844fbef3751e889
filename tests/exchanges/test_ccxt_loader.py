"""A bot trading on Backpack imports ccxt's Backpack alone, not the hundred other exchanges that
`import ccxt` loads (exchanges/ccxt_loader.py): measured by bench/bench_bot_memory.py. Anyone who
reads the package still finds all of ccxt there. Each check runs in a fresh interpreter, since the
test process itself has imported ccxt whole."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import json, sys
from exchanges.ccxt_exchange import build_client
client = build_client("backpack", {"base_url": "http://127.0.0.1:1"})
loaded = sorted(m for m in sys.modules if m.startswith("ccxt.") and m.count(".") == 1
                and m not in ("ccxt.base", "ccxt.abstract", "ccxt.static_dependencies"))
unknown = None
try:
    build_client("no_such_venue", {})
except ValueError as exc:
    unknown = str(exc)
import ccxt                                     # a reader of the package: it is all there
print(json.dumps({"loaded": loaded, "class": type(client).__name__, "unknown": unknown,
                  "listed": "backpack" in ccxt.exchanges and len(ccxt.exchanges) > 50,
                  "same": ccxt.backpack is type(client), "version": ccxt.__version__}))
"""


def probe() -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_backpack_client_loads_ccxts_backpack_alone_and_the_package_stays_whole():
    seen = probe()
    assert seen["loaded"] == ["ccxt.backpack"] and seen["class"] == "backpack"
    assert seen["unknown"].startswith("metadata.exchange: 'no_such_venue' is not an exchange ccxt knows")
    assert seen["listed"] and seen["same"] and seen["version"]


@pytest.mark.parametrize("name", ["base", "pro", "async_support", "__init__", "ccxt", "backpack.x"])
def test_a_name_that_is_no_exchange_is_refused_by_name(name):
    from exchanges.ccxt_exchange import build_client

    with pytest.raises(ValueError, match=f"'{name}' is not an exchange ccxt knows"):
        build_client(name, {})
