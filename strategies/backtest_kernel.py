"""The backtest kernel's Python side: hands the grid and its paper market to the compiled loop
(strategies/grid_kernel.c) and back.

Why: the general path costs 150-300 us of Python per fill, spread over the strategy's turn, the
books and the matching engine, so a grid that trades backtested at 50-700k ticks/s (issue 12 asks
for 1-3M). The kernel runs the same rules on plain structs. It runs only what it mirrors, on the
paper exchange without a database: the grid's turns (fills booked, orders placed, margin and
minimum-size refusals) and adjust_range's re-centring. A stop, any other boundary action, a range
change that fails, a refused level's backoff, a cancel a turn needs, or a state it does not model
(a store, stop levels, partial fills, orders gone unlisted, ...) is the general path's: the kernel
returns at a point where the Python code goes on, with every object as if the Python code had run
the kernel's stretch itself (`_write_back`), log lines included. tests/bot/test_backtest_kernel.py
holds runs with and without it equal, fill by fill, field by field and line by line.

The shared library is built from the C file by `make` (its install step) or, where it is missing
or older than its source, on first use with the machine's C compiler; without one, backtests run
on the general path (the report says which engine ran).
"""
from __future__ import annotations

import ctypes
import gc
import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

from exchanges import client_ids
from exchanges.base import Fill, Order
from exchanges.paper_exchange import DONE_KEPT, PaperExchange
from strategies.book_records import Cell, OrderRef
from strategies.perp_grid_strategy import PerpGridStrategy

SOURCE = Path(__file__).with_name("grid_kernel.c")
LIBRARY = Path(__file__).with_name("_grid_kernel.so")
CFLAGS = ["-O2", "-fPIC", "-shared", "-ffp-contract=off", "-fno-fast-math"]
MAX_CELLS, MAX_ORDERS = 1023, 2100          # as in the C file
CAP_FILLS, CAP_DONE, CAP_EVENTS = 1 << 14, 1 << 14, 1 << 13     # flushed to Python objects when nearly full

RC_END, RC_NEED_BLOCK, RC_STEP, RC_ENSURE, RC_FLUSH, RC_LOOP, RC_BROKEN = 0, 1, 2, 3, 4, 5, -1
EV_MARGIN, EV_INVALID, EV_CLOSE_REFUSED, EV_RECENTRE, EV_RECONFIGURED, EV_ADJUSTED = 1, 2, 3, 4, 5, 6
MODES = ("arithmetic", "geometric")
BLOCKS = {None: 0, "margin": 1, "exposure": 2, "invalid": 3, "band": 4}
BLOCK_NAMES = {v: k for k, v in BLOCKS.items()}
SIDES = ("buy", "sell")

c_i32, c_i64, c_dbl, c_u8 = ctypes.c_int32, ctypes.c_int64, ctypes.c_double, ctypes.c_uint8


class Ref(ctypes.Structure):
    _fields_ = [("present", c_i32), ("pad", c_i32), ("num", c_i64), ("cid", c_i64),
                ("price", c_dbl), ("qty", c_dbl), ("filled", c_dbl), ("executed", c_dbl)]


class CCell(ctypes.Structure):
    _fields_ = [("side", c_i32), ("blocked", c_i32), ("seq", c_i32), ("rejections", c_i32), ("has_cost", c_i32),
                ("pad", c_i32), ("retry_at", c_i64), ("held", c_dbl), ("open_fees", c_dbl), ("cost", c_dbl),
                ("reject_price", c_dbl), ("open", Ref), ("close", Ref)]


class COrder(ctypes.Structure):
    _fields_ = [("num", c_i64), ("cid", c_i64), ("ts", c_i64), ("side", c_i32), ("pad", c_i32),
                ("price", c_dbl), ("qty", c_dbl), ("filled", c_dbl)]


class CFill(ctypes.Structure):
    _fields_ = [("trade", c_i64), ("order_num", c_i64), ("cid", c_i64), ("ts", c_i64), ("side", c_i32),
                ("pad", c_i32), ("price", c_dbl), ("qty", c_dbl), ("fee", c_dbl)]


class CDone(ctypes.Structure):
    _fields_ = [("num", c_i64), ("cid", c_i64), ("ts", c_i64), ("side", c_i32), ("status", c_i32),
                ("price", c_dbl), ("qty", c_dbl), ("filled", c_dbl)]


class CEvent(ctypes.Structure):
    _fields_ = [("kind", c_i32), ("cell", c_i32), ("role", c_i32), ("side", c_i32), ("rejections", c_i32),
                ("pad", c_i32), ("a", c_dbl), ("b", c_dbl), ("c", c_dbl), ("d", c_dbl)]


class State(ctypes.Structure):
    _fields_ = [
        ("ts", c_i64), ("trade_seq", c_i64), ("order_seq", c_i64), ("next_funding_ts", c_i64), ("funding_ms", c_i64),
        ("sums_changes", c_i64), ("tick_m", c_i64), ("tick_k", c_i64), ("step_m", c_i64), ("step_k", c_i64),
        ("price", c_dbl), ("balance", c_dbl), ("pos_qty", c_dbl), ("entry", c_dbl), ("realized", c_dbl),
        ("fees", c_dbl), ("funding", c_dbl), ("funding_rate", c_dbl), ("maker_fee", c_dbl), ("leverage", c_dbl),
        ("reach", c_dbl), ("tick_size", c_dbl), ("step_size", c_dbl), ("min_qty", c_dbl),
        ("sums", (c_dbl * 2) * 2), ("sums_peak", c_dbl),
        ("n_orders", c_i32), ("pad0", c_i32), ("orders", COrder * MAX_ORDERS),
        ("n_cells", c_i32), ("grid_type", c_i32), ("has_max_pos", c_i32), ("tag", c_i32), ("stopped", c_i32),
        ("touched_all", c_i32), ("resting_valid", c_i32), ("pad3", c_i32),
        ("levels", c_dbl * (MAX_CELLS + 1)), ("cells", CCell * MAX_CELLS),
        ("unsettled", c_u8 * (MAX_CELLS + 1)), ("touched", c_u8 * (MAX_CELLS + 1)),
        ("s_price", c_dbl), ("position", c_dbl), ("s_entry", c_dbl), ("unrealized", c_dbl), ("s_realized", c_dbl),
        ("carried", c_dbl), ("grid_entry", c_dbl), ("now_ms", c_i64), ("last_fill_ts", c_i64),
        ("grid_profit", c_dbl), ("t_fees", c_dbl), ("volume", c_dbl), ("fill_count", c_i64), ("cycles", c_i64),
        ("lower", c_dbl), ("upper", c_dbl), ("tol", c_dbl), ("quantity", c_dbl), ("max_pos", c_dbl),
        ("resting", c_dbl * 2), ("planned_qty", c_dbl * 2),
        ("peak", c_dbl), ("max_dd", c_dbl), ("ticks", c_i64), ("max_ticks", c_i64), ("booked_upto", c_i64), ("turns", c_i64),
        ("num", c_i32), ("mode", c_i32), ("allow_unprofitable", c_i32), ("adjust_range", c_i32),
        ("layout_changed", c_i32), ("pad2", c_i32), ("range_changes", c_i64),
        ("adv_active", c_i32), ("adv_pending", c_i32), ("no_more", c_i32), ("pad1", c_i32),
        ("adv_consumed", c_i64), ("adv_cash", c_dbl), ("adv_qty", c_dbl), ("adv_entry", c_dbl), ("adv_last", c_dbl),
        ("adv_low", c_dbl), ("adv_high", c_dbl), ("adv_wake_at", c_i64),
        ("blk_ts", ctypes.POINTER(c_i64)), ("blk_px", ctypes.POINTER(c_dbl)), ("blk_rounded", ctypes.POINTER(c_dbl)),
        ("blk_len", c_i64), ("blk_pos", c_i64),
        ("fills", ctypes.POINTER(CFill)), ("n_fills", c_i64), ("cap_fills", c_i64),
        ("done", ctypes.POINTER(CDone)), ("n_done", c_i64), ("cap_done", c_i64),
        ("events", ctypes.POINTER(CEvent)), ("n_events", c_i64), ("cap_events", c_i64),
    ]


_lib: Any = None
build_error = ""            # why the kernel could not be built or loaded (empty when it was)


def library() -> Any:
    """The compiled kernel, built first where it is missing or stale; None when it cannot be."""
    global _lib, build_error
    if _lib is not None:
        return _lib or None
    try:
        if not LIBRARY.exists() or LIBRARY.stat().st_mtime < SOURCE.stat().st_mtime:
            partial = LIBRARY.with_name(f"{LIBRARY.name}.{os.getpid()}.tmp")     # two builders never mix
            built = subprocess.run(["cc", *CFLAGS, "-o", str(partial), str(SOURCE), "-lm"],
                                   capture_output=True, text=True, timeout=120)
            if built.returncode != 0:
                partial.unlink(missing_ok=True)
                raise OSError(f"cc failed: {built.stderr.strip()[-2000:]}")
            os.replace(partial, LIBRARY)
        lib = ctypes.CDLL(str(LIBRARY))
        lib.gk_run.argtypes, lib.gk_run.restype = [ctypes.POINTER(State)], ctypes.c_int
        lib.gk_state_size.restype = ctypes.c_size_t
        if lib.gk_state_size() != ctypes.sizeof(State):
            raise OSError("the kernel's State layout differs from this module's")
    except (OSError, subprocess.SubprocessError) as exc:
        _lib, build_error = False, str(exc)
        return None
    _lib = lib
    return lib


def why_no_kernel(exchange: Any, strategy: Any) -> str:
    """The reason `Kernel.for_run` gave none, in one line: the build's first error, or the run's kind."""
    if library() is None:
        lines = [line for line in build_error.splitlines() if line.strip()]
        return (next((line for line in lines if "error" in line), lines[0] if lines else "unknown"))[:200]
    return "not the paper exchange and the grid strategy"


def _decimal_step(size: float) -> tuple[int, int] | None:
    """(m, k) with size == m x 10^-k exactly as a decimal (exchanges/ticks.py reads it so)."""
    d = Decimal(repr(float(size)))
    sign, digits, exponent = d.as_tuple()
    if sign or d <= 0 or not isinstance(exponent, int):
        return None
    m = int("".join(map(str, digits)))
    k = -exponent
    while k < 0:
        m, k = m * 10, k + 1
    return (m, k) if k <= 15 and m < (1 << 20) else None


def not_plain(exchange: PaperExchange, strategy: PerpGridStrategy) -> str | None:
    """Why the kernel cannot run the next stretch of this backtest, or None when it can."""
    if type(exchange) is not PaperExchange or type(strategy) is not PerpGridStrategy:
        return "not the paper exchange and the grid strategy"
    if exchange.db is not None or strategy.store is not None or strategy.on_fill is not None:
        return "a database, or fills reported as they happen"
    if exchange.max_fill_qty is not None or exchange._reduce_only_resting:
        return "partial fills, or reduceOnly orders"
    p = strategy.params
    if p.stop_loss is not None or p.take_profit is not None:
        return "stop loss or take profit"
    if p.mode not in MODES or p.grid_type not in ("neutral", "long", "short"):
        return "a grid mode or type the kernel does not know"
    if strategy.state != "running" or strategy._closing is not None or not strategy.incremental:
        return "the grid is not trading its plain turns"
    book = strategy.book
    if (book.in_doubt or book.unsure or book.vanished or book.settled or book.foreign or book.foreign_left
            or book.gone_orders or strategy._out_of_ids):
        return "orders in doubt or gone from the book unlisted"
    if len(book.cells) > MAX_CELLS or len(exchange.orders) > MAX_ORDERS - 2 * len(book.cells) - 8:
        return "too many levels or orders"
    if _decimal_step(exchange.tick_size) is None or _decimal_step(exchange.step_size) is None:
        return "a tick or step size the kernel cannot count in"
    if book.fills_from_ms > exchange.ts or book.last_fill_ts > exchange.ts:
        return "fills ahead of the exchange's clock"
    refs = {}
    for cell in book.cells:
        if cell.unbooked or cell.side not in ("long", "short") or cell.blocked in ("invalid", "band"):
            return "a cell the kernel does not model"
        for ref in (cell.open_order, cell.close_order):
            if ref is not None:
                refs[ref.id] = ref
    if len(refs) != len(exchange.orders):
        return "orders resting that no cell holds"
    for order in exchange.orders.values():
        ref = refs.get(order.id)
        if (ref is None or order.reduce_only or order.type != "limit" or order.client_id != ref.client_id
                or order.filled_qty != 0.0 or ref.filled != 0.0 or ref.executed != 0.0 or ref.qty != order.qty
                or not order.id.startswith("O")):
            return "an order the kernel does not model"
    return None


class Kernel:
    """One backtest's kernel: its state, buffers and the price block it reads."""

    def __init__(self, lib: Any, exchange: PaperExchange, strategy: PerpGridStrategy) -> None:
        self.lib, self.exchange, self.strategy = lib, exchange, strategy
        self.s = State()
        self.fills = (CFill * CAP_FILLS)()
        self.done = (CDone * CAP_DONE)()
        self.events = (CEvent * CAP_EVENTS)()
        self.block: tuple | None = None         # the arrays the C side reads (kept alive here)
        self.turns = 0                          # turns the kernel took whole, over the run
        self.range_changes = 0                  # range changes it made
        s = self.s
        s.fills, s.cap_fills = ctypes.cast(self.fills, ctypes.POINTER(CFill)), CAP_FILLS
        s.done, s.cap_done = ctypes.cast(self.done, ctypes.POINTER(CDone)), CAP_DONE
        s.events, s.cap_events = ctypes.cast(self.events, ctypes.POINTER(CEvent)), CAP_EVENTS

    @classmethod
    def for_run(cls, exchange: PaperExchange, strategy: PerpGridStrategy) -> "Kernel | None":
        lib = library()
        if lib is None or type(exchange) is not PaperExchange or type(strategy) is not PerpGridStrategy:
            return None
        return cls(lib, exchange, strategy)

    # ---- one stretch -------------------------------------------------------------------------
    def run(self, ticks: int, max_ticks: int, peak: float, max_dd: float) -> tuple[int, int, float, float]:
        """Run from the top of an iteration; returns (why it stopped, ticks, peak, max_dd) with the
        Python objects written back."""
        s = self.s
        self._load()
        s.ticks, s.max_ticks, s.peak, s.max_dd, s.turns, s.range_changes = ticks, max_ticks, peak, max_dd, 0, 0
        self._attach_block()
        try:
            while True:
                rc = self.lib.gk_run(ctypes.byref(s))
                if rc == RC_NEED_BLOCK:
                    self._next_block()
                elif rc == RC_FLUSH:
                    self._flush()
                else:
                    break
        finally:
            self._write_back()
            self.turns += s.turns
            self.range_changes += s.range_changes
        if rc == RC_BROKEN:
            raise RuntimeError("backtest kernel: a turn needed the general path after sending orders")
        return rc, s.ticks, s.peak, s.max_dd

    def _attach_block(self) -> None:
        buf = getattr(self.exchange, "_buf", None)
        s = self.s
        s.no_more = 0
        if buf is None:
            s.blk_len = s.blk_pos = 0
            self.block = None
            return
        self._point_at(buf)

    def _point_at(self, buf: list) -> None:
        ts, px, rounded = buf[0], buf[1], buf[2]
        self.block = (ts, px, rounded)
        s = self.s
        s.blk_ts = ts.ctypes.data_as(ctypes.POINTER(c_i64))
        s.blk_px = px.ctypes.data_as(ctypes.POINTER(c_dbl))
        s.blk_rounded = rounded.ctypes.data_as(ctypes.POINTER(c_dbl))
        s.blk_len, s.blk_pos = int(px.size), int(buf[5])

    def _next_block(self) -> None:
        """PaperExchange.advance's refill: the source's next block, or the end of the prices."""
        ex, s = self.exchange, self.s
        ex.ts, ex.price = int(s.ts), float(s.price)     # the next block's clock starts here
        if getattr(ex, "_buf", None) is not None:
            ex._buf[5] = int(s.blk_pos)
        if ex._block(lists=False) is None:
            ex.exhausted = True
            s.no_more = 1
            return
        self._point_at(ex._buf)

    # ---- the hand-over -----------------------------------------------------------------------
    def _load(self) -> None:
        ex, strat, s = self.exchange, self.strategy, self.s
        book = strat.book
        s.ts, s.trade_seq, s.order_seq = ex.ts, ex.trade_seq, ex.order_seq
        s.next_funding_ts, s.funding_ms, s.sums_changes = ex.next_funding_ts, ex.funding_ms, ex._sums_changes
        s.tick_m, s.tick_k = _decimal_step(ex.tick_size)
        s.step_m, s.step_k = _decimal_step(ex.step_size)
        s.price, s.balance, s.pos_qty, s.entry = ex.price, ex.balance, ex.pos_qty, ex.entry
        s.realized, s.fees, s.funding = ex.realized, ex.fees, ex.funding
        s.funding_rate, s.maker_fee, s.leverage, s.reach = ex.funding_rate, ex.maker_fee, ex.leverage, ex.reach
        s.tick_size, s.step_size, s.min_qty = ex.tick_size, ex.step_size, ex.min_qty
        for i, side in enumerate(SIDES):
            s.sums[i][0], s.sums[i][1] = ex._sums[side]
        s.sums_peak = ex._sums_peak
        s.n_orders = len(ex.orders)
        for k, order in enumerate(ex.orders.values()):
            o = s.orders[k]
            o.num, o.cid, o.ts, o.side = int(order.id[1:]), order.client_id, order.timestamp, SIDES.index(order.side)
            o.price, o.qty, o.filled = order.price, order.qty, order.filled_qty
        p = strat.params
        s.n_cells = len(book.cells)
        s.grid_type = {"neutral": 0, "long": 1, "short": -1}[p.grid_type]
        s.has_max_pos = p.max_position is not None
        s.max_pos = p.max_position if p.max_position is not None else 0.0
        s.tag = client_ids.instance_tag(strat.instance_id)
        s.stopped = 0
        s.touched_all = book.touched is None or strat.cells is not strat._layout
        s.resting_valid = 0
        for i, level in enumerate(book.levels):
            s.levels[i] = level
        for i, cell in enumerate(book.cells):
            c = s.cells[i]
            c.side = 1 if cell.side == "long" else -1
            c.blocked, c.seq, c.rejections = BLOCKS[cell.blocked], cell.seq, cell.rejections
            c.has_cost, c.cost = cell.cost is not None, cell.cost or 0.0
            c.retry_at, c.reject_price = cell.retry_at, cell.reject_price
            c.held, c.open_fees = cell.held, cell.open_fees
            _load_ref(c.open, cell.open_order)
            _load_ref(c.close, cell.close_order)
            s.unsettled[i] = i in strat._unsettled
            s.touched[i] = book.touched is not None and i in book.touched
        s.s_price, s.position, s.s_entry = strat.price, strat.position, strat.entry
        s.unrealized, s.s_realized = strat.unrealized, strat.realized
        s.carried, s.grid_entry = book.carried, book.grid_entry
        s.now_ms, s.last_fill_ts = strat.now_ms, book.last_fill_ts
        t = book.totals
        s.grid_profit, s.t_fees, s.volume, s.fill_count, s.cycles = t.grid_profit, t.fees, t.volume, t.fill_count, t.cycles
        s.lower, s.upper, s.tol, s.quantity = p.lower, p.upper, p.boundary_tolerance, p.quantity
        s.planned_qty[0], s.planned_qty[1] = strat._planned["buy"], strat._planned["sell"]
        s.num, s.mode, s.allow_unprofitable = p.num, MODES.index(p.mode), p.allow_unprofitable_step
        s.adjust_range, s.layout_changed = p.boundary_action == "adjust_range", 0
        s.adv_active = s.adv_pending = 0
        s.n_fills = s.n_done = s.n_events = s.booked_upto = 0

    def _flush(self) -> None:
        """The fills, finished orders and log lines the kernel made, as the Python objects hold them.

        Read column by column through numpy (a ctypes field read per value would cost more than the
        kernel's whole turn), and Fill objects made without their __init__ (which only stores the
        fields), with the collector paused over tens of thousands of new objects."""
        import numpy as np

        ex, strat, s = self.exchange, self.strategy, self.s
        symbol = strat.params.symbol
        n = s.n_fills
        if n:
            f = np.ctypeslib.as_array(self.fills)[:n]
            trade_ids = [f"P{t}" for t in f["trade"].tolist()]
            order_ids = [f"O{o}" for o in f["order_num"].tolist()]
            sides = [SIDES[k] for k in f["side"].tolist()]
            times = f["ts"].tolist()
            new, setattr_ = object.__new__, object.__setattr__     # Fill is frozen
            made = []
            collecting = gc.isenabled()
            gc.disable()
            try:
                for trade_id, order_id, side, price, qty, fee, ts, cid in zip(
                        trade_ids, order_ids, sides, f["price"].tolist(), f["qty"].tolist(), f["fee"].tolist(), times,
                        f["cid"].tolist()):
                    fill = new(Fill)
                    setattr_(fill, "__dict__", {"trade_id": trade_id, "order_id": order_id, "symbol": symbol, "side": side,
                                                "price": price, "qty": qty, "fee": fee, "is_maker": True, "timestamp": ts,
                                                "client_id": cid, "system_order": None})
                    made.append(fill)
            finally:
                if collecting:
                    gc.enable()
            ex._fills.extend(made)
            ex._fill_ts.extend(times)
            strat.book._seen.update(trade_ids[:s.booked_upto])  # the books booked these (the rest: Python's turn)
        done = ex._done
        for k in range(max(0, s.n_done - DONE_KEPT), s.n_done):    # older ones would leave `_done` at once
            d = self.done[k]
            order = ex.orders.get(f"O{d.num}") or Order(f"O{d.num}", symbol, SIDES[d.side], "limit", d.price, d.qty,
                                                        client_id=d.cid, post_only=True, timestamp=d.ts)
            order.filled_qty, order.status = d.filled, ("filled", "canceled")[d.status]
            done[order.id] = order
            if len(done) > DONE_KEPT:
                done.popitem(last=False)
        for k in range(s.n_events):
            self._say(self.events[k])
        s.n_fills = s.n_done = s.n_events = s.booked_upto = 0

    def _say(self, e: CEvent) -> None:
        """The log line the Python code writes where the kernel did what it does."""
        strat = self.strategy
        p = strat.params
        if e.kind == EV_RECENTRE:       # PerpGridStrategy._check_risk
            strat.log(f"price {e.a} left the range {e.b}..{e.c}: re-centring the grid")
            return
        if e.kind == EV_RECONFIGURED:   # reconfigure.apply_params (_describe)
            strat._event("reconfigured", f"now grid {e.a}..{e.b} x{p.num} {p.mode}, quantity {p.quantity}: kept "
                                         f"{int(e.c)} orders, cancelled {int(e.d)}, placed {e.rejections}")
            return
        if e.kind == EV_ADJUSTED:       # PerpGridStrategy.adjust_grid_range
            strat._event("grid_adjusted", f"range now {e.a}..{e.b}")
            return
        if e.kind == EV_MARGIN:
            free = e.b if e.b > 0 else 0
            strat._event("skip_level", f"level {e.cell} skipped until the next fill: order needs {e.a:.2f} margin, "
                                       f"{free:.2f} free")
            return
        error = f"quantity {e.a} below the market minimum {e.d if e.kind == EV_CLOSE_REFUSED else e.c}"
        if e.kind == EV_INVALID:
            strat._event("skip_level", f"level {e.cell} skipped for {e.b / 1000:g} s (refusal {e.rejections}): {error}")
        else:
            strat._stop(f"level {e.cell}: the closing {SIDES[e.side]} of {e.a:g} at {e.b} was refused {e.rejections} "
                        f"times ({error}); the grid's position of {e.c:g} {strat.params.symbol} stays open")

    def _write_back(self) -> None:
        self._flush()           # first: a finished order keeps the object it rested as
        self._resting_orders()
        ex, strat, s = self.exchange, self.strategy, self.s
        book = strat.book
        if s.layout_changed:            # a range change: new cells (kept ones move), levels, range
            n = s.n_cells
            book.cells = [Cell(i, "long") for i in range(n)]
            book.levels = [s.levels[i] for i in range(n + 1)]
            strat.params = strat.params.with_range(s.lower, s.upper)
            s.layout_changed = 0
        ex.ts, ex.trade_seq, ex.order_seq, ex.next_funding_ts = int(s.ts), int(s.trade_seq), int(s.order_seq), int(s.next_funding_ts)
        ex._sums_changes = int(s.sums_changes)
        ex.price, ex.balance, ex.pos_qty, ex.entry = s.price, s.balance, s.pos_qty, s.entry
        ex.realized, ex.fees, ex.funding = s.realized, s.fees, s.funding
        ex._sums = {side: [s.sums[i][0], s.sums[i][1]] for i, side in enumerate(SIDES)}
        ex._sums_peak = s.sums_peak
        buf = getattr(ex, "_buf", None)
        if buf is not None and self.block is not None and buf[1] is self.block[1]:
            buf[5] = int(s.blk_pos)
        for i, cell in enumerate(book.cells):
            c = s.cells[i]
            cell.side = "long" if c.side > 0 else "short"
            cell.blocked, cell.seq, cell.rejections = BLOCK_NAMES[c.blocked], int(c.seq), int(c.rejections)
            cell.cost = c.cost if c.has_cost else None
            cell.retry_at, cell.reject_price = int(c.retry_at), c.reject_price
            cell.held, cell.open_fees = c.held, c.open_fees
            cell.unbooked = {}
            cell.open_order = _ref_back(c.open, cell.open_order)
            cell.close_order = _ref_back(c.close, cell.close_order)
        book.refs_changed()
        strat.price, strat.position, strat.entry = s.s_price, s.position, s.s_entry
        strat.unrealized, strat.realized, strat.now_ms = s.unrealized, s.s_realized, int(s.now_ms)
        book.carried, book.grid_entry, book.last_fill_ts = s.carried, s.grid_entry, int(s.last_fill_ts)
        t = book.totals
        t.grid_profit, t.fees, t.volume, t.fill_count, t.cycles = s.grid_profit, s.t_fees, s.volume, int(s.fill_count), int(s.cycles)
        strat._planned = {"buy": s.planned_qty[0], "sell": s.planned_qty[1]}
        n = len(book.cells)
        strat._unsettled = {i for i in range(n) if s.unsettled[i]}
        if s.touched_all:
            book.touched = None
        else:
            book.touched = {i for i in range(n) if s.touched[i]}
            strat._layout = book.cells

    def _resting_orders(self) -> None:
        """The resting orders as the exchange's Order objects (kept ones keep their object)."""
        ex, s = self.exchange, self.s
        symbol = self.strategy.params.symbol
        old = ex.orders
        orders: dict[str, Order] = {}
        prices: dict[str, list[float]] = {"buy": [], "sell": []}
        for k in range(s.n_orders):
            o = s.orders[k]
            oid = f"O{o.num}"
            order = old.get(oid) or Order(oid, symbol, SIDES[o.side], "limit", o.price, o.qty, client_id=int(o.cid),
                                          post_only=True, timestamp=int(o.ts))
            order.filled_qty = o.filled
            orders[oid] = order
            prices[order.side].append(order.price)
        ex.orders = orders
        ex._prices = {side: sorted(values) for side, values in prices.items()}
        ex._client_ids = {order.client_id for order in ex.orders.values()}


def _load_ref(r: Ref, ref: OrderRef | None) -> None:
    r.present = ref is not None
    if ref is not None:
        r.num, r.cid = int(ref.id[1:]), ref.client_id
        r.price, r.qty, r.filled, r.executed = ref.price, ref.qty, ref.filled, ref.executed


def _ref_back(r: Ref, ref: OrderRef | None) -> OrderRef | None:
    if not r.present:
        return None
    if ref is not None and ref.id == f"O{r.num}":
        ref.filled, ref.executed = r.filled, r.executed
        return ref
    return OrderRef(f"O{r.num}", int(r.cid), r.price, r.qty, r.filled, r.executed)
