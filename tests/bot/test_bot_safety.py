"""run.py as a real process: what it does on the way out, `--check`, and flags reaching the strategy.

A crash cancels the grid before exiting 1; a stop the trader must see is written to
logs/{id}/stop_reason; `--check` validates like the bot without touching anything.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.bot.proc import bot_config, open_paper_orders, query, run_bot, running_bot, scalar
from tests.conftest import wait_for
from tests.conftest import REPO, RUN_PY, home_env

IID = "bot_t1"


def stop_reason(home) -> str | None:
    path = home / "logs" / IID / "stop_reason"
    return path.read_text().strip() if path.exists() else None


# ---- stop reasons -----------------------------------------------------------------------------
@pytest.mark.parametrize("flags, reason", [
    (["--stop-loss", "1"], "stop loss: unrealized PnL"),
    (["--take-profit", "1"], "take profit: unrealized PnL"),
    (["--boundary-action", "stop_only", "--grid-lower", "148", "--grid-upper", "152", "--grid-num", "5"],
     "left the range 148.0..152.0: stopped (position kept)"),
    (["--boundary-action", "emergency_close", "--grid-lower", "148", "--grid-upper", "152", "--grid-num", "5"],
     "left the range 148.0..152.0: emergency close"),
], ids=["stop_loss", "take_profit", "stop_only", "emergency_close"])
def test_a_strategy_stop_is_written_to_stop_reason_and_exits_0(home, flags, reason):
    cfg = bot_config(home)
    out = run_bot(home, "--config", str(cfg), "--no-web", "--duration", "60", *flags)
    assert out.returncode == 0, out.stderr
    assert reason in (stop_reason(home) or ""), (stop_reason(home), out.stdout[-2000:])
    assert f"strategy stopped: {stop_reason(home)}" in out.stdout
    assert open_paper_orders(home / "database" / f"{IID}.db") == []


def test_an_ordinary_end_writes_no_stop_reason(home):
    cfg = bot_config(home)
    out = run_bot(home, "--config", str(cfg), "--no-web", "--duration", "0.3")
    assert out.returncode == 0, out.stderr
    assert stop_reason(home) is None


# ---- a crash ----------------------------------------------------------------------------------
CRASHING_BOT = """
import runpy, sys
sys.path.insert(0, {repo!r})
import strategies.perp_grid_strategy as module

real_step, turns = module.PerpGridStrategy.step, []

def step(self):
    turns.append(1)
    if len(turns) == 5:
        raise RuntimeError("an injected bug in the strategy")
    return real_step(self)

module.PerpGridStrategy.step = step
sys.argv = [{run_py!r}, *sys.argv[1:]]
runpy.run_path({run_py!r}, run_name="__main__")
"""


def test_a_crash_cancels_the_grid_then_exits_1_with_the_traceback(home, tmp_path):
    """A bug in the loop (not an exchange error) must not leave the grid resting unmanaged."""
    script = tmp_path / "crashing_bot.py"
    script.write_text(CRASHING_BOT.format(repo=str(REPO), run_py=str(RUN_PY)))
    cfg = bot_config(home)
    db = home / "database" / f"{IID}.db"
    out = subprocess.run([sys.executable, str(script), "--config", str(cfg), "--no-web", "--duration", "60"],
                         cwd=str(REPO), env=home_env(home), capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Traceback" in out.stderr and "RuntimeError: an injected bug in the strategy" in out.stderr
    assert (scalar(db, "SELECT COUNT(*) FROM paper_orders") or 0) >= 10      # it had a grid ...
    assert open_paper_orders(db) == []                                        # ... and cancelled it
    assert any("crashed" in m for m, in query(db, "SELECT message FROM events WHERE kind = 'shutdown'"))


# ---- --check ----------------------------------------------------------------------------------
def test_check_passes_a_good_paper_config_and_writes_nothing(home):
    cfg = bot_config(home)
    out = run_bot(home, "--check", "--config", str(cfg), "--instance-id", IID)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok") and out.stderr == ""
    assert not (home / "logs" / IID).exists() and not (home / "database" / f"{IID}.db").exists()


@pytest.mark.parametrize("flags, message", [
    (["--quantity", "0.001"], "quantity: 0.001 is below the market minimum 0.01"),
    (["--quantity", "0.015"], "quantity: 0.015 is not a multiple of the step size 0.01"),
    (["--max-position", "1000"], "max_position: 1000.0 needs 16000.00 margin at 160.0 with leverage 10"),
    (["--max-position", "0.2"], "max_position"),
    (["--grid-num", "1"], "grid_num"),
    (["--stop-loss", "0"], "stop_loss"),
    (["--take-profit", "-2"], "take_profit"),
])
def test_check_refuses_what_the_bot_would_refuse_with_exit_2(home, flags, message):
    cfg = bot_config(home)
    out = run_bot(home, "--check", "--config", str(cfg), *flags)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and out.stdout == ""
    assert not (home / "logs" / IID).exists() and not (home / "database" / f"{IID}.db").exists()


def test_check_uses_the_configs_paper_market(home):
    """tick, step, min_qty, balance and leverage of exchange_config, as the bot's paper exchange."""
    cfg = bot_config(home, exchange={"min_qty": 1, "step_size": 1, "balance": 100, "leverage": 2})
    out = run_bot(home, "--check", "--config", str(cfg), "--max-position", "1")
    assert out.returncode == 2
    assert "quantity: 0.5 is below the market minimum 1.0" in out.stderr
    assert "max_position: 1.0 needs 80.00 margin" not in out.stderr          # 1 x 160 / 2 = 80 <= 100
    out = run_bot(home, "--check", "--config", str(cfg), "--quantity", "1", "--max-position", "2")
    assert out.returncode == 2 and "max_position: 2.0 needs 160.00 margin at 160.0 with leverage 2" in out.stderr


def real_exchange_config(home, exchange: dict, **strategy) -> object:
    cfg = bot_config(home, strategy=strategy)
    doc = json.loads(cfg.read_text())
    doc["metadata"]["exchange"] = "backpack"
    doc["exchange_config"] = {"base_url": "http://127.0.0.1:9", **exchange}     # never contacted
    cfg.write_text(json.dumps(doc))
    return cfg


CHECK_WITHOUT_CCXT = """
import runpy, sys
sys.argv = [{run_py!r}, *sys.argv[1:]]
try:
    runpy.run_path({run_py!r}, run_name="__main__")
finally:
    print("ccxt imported" if "ccxt" in sys.modules else "ccxt not imported", file=sys.stderr)
"""


def test_check_on_a_real_exchange_wants_the_keys_and_never_imports_ccxt(home, tmp_path):
    script = tmp_path / "check.py"
    script.write_text(CHECK_WITHOUT_CCXT.format(run_py=str(RUN_PY)))

    def check(cfg, *flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), "--check", "--config", str(cfg), *flags], cwd=str(REPO),
                              env=home_env(home), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    seed = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A="
    no_key = check(real_exchange_config(home, {"secret_key": seed}))
    assert no_key.returncode == 3, no_key.stderr
    assert "exchange_config.api_key (or EXCHANGE_API_KEY)" in no_key.stderr and seed not in no_key.stderr
    keys = {"api_key": "some-key", "secret_key": seed}
    bad = check(real_exchange_config(home, keys, stop_loss=-1, max_position=0.1))
    assert bad.returncode == 2, bad.stderr
    assert "stop_loss: -1" in bad.stderr or "stop_loss: -1.0" in bad.stderr
    good = check(real_exchange_config(home, keys))
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith("ok")
    for out in (no_key, bad, good):
        assert "ccxt not imported" in out.stderr
    assert not (home / "logs" / IID).exists() and not (home / "database" / f"{IID}.db").exists()


# ---- flags reach the running strategy -----------------------------------------------------------
def test_flag_overrides_reach_the_running_strategy_and_summaries_are_printed(home):
    cfg = bot_config(home)                  # SOL_USDC_PERP, neutral, no stop-loss, adjust_range, 0.02 s
    db = home / "database" / f"{IID}.db"
    out = run_bot(home, "--config", str(cfg), "--no-web", "--duration", "1", "--summary-interval", "0.2",
                  "--symbol", "BTC_USDC_PERP", "--grid-type", "long", "--stop-loss", "50", "--take-profit", "60",
                  "--boundary-action", "stop_only", "--boundary-tolerance", "0.5", "--interval", "0.05")
    assert out.returncode == 0, out.stderr
    starting = next(line for line in out.stdout.splitlines() if line.startswith(f"starting {IID}:"))
    for part in ("symbol BTC_USDC_PERP", "arithmetic long", "stop loss 50.0", "take profit 60.0",
                 "boundary stop_only (tolerance 0.5)", "interval 0.05 s"):
        assert part in starting, (part, starting)
    assert f"START {IID} BTC_USDC_PERP" in out.stdout
    assert f"SUMMARY {IID} BTC_USDC_PERP" in out.stdout       # the periodic summary
    opening_sides = {side for side, in query(db, "SELECT side FROM orders WHERE role = 0")}
    assert opening_sides == {"buy"}                          # a long grid only bids to open
    symbols = {json.loads(d)["symbol"] for d, in query(db, "SELECT data FROM paper_orders")}
    assert symbols == {"BTC_USDC_PERP"}


def test_sigterm_while_running_prints_after_cancelling(home):
    """The order on the way out: the shutdown event (orders cancelled) is booked before 'stopping'."""
    cfg = bot_config(home)
    db = home / "database" / f"{IID}.db"
    with running_bot(home, cfg, "--no-web") as proc:
        wait_for(lambda: len(open_paper_orders(db)) >= 10, what="the grid's orders")
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err  # 128 + SIGTERM: ended gracefully on SIGTERM
    lines = out.splitlines()
    cancelled = next(i for i, line in enumerate(lines) if "SIGTERM received: cancelled" in line)
    assert cancelled < next(i for i, line in enumerate(lines) if line.startswith("stopping: SIGTERM"))
