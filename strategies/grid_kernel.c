/* The backtest kernel: the grid's plain turns on the paper market, compiled.
 *
 * Why: a backtest of a grid that trades spends 150-300 us of Python per fill in the general path
 * (PerpGridStrategy.step on PaperExchange), spread thinly over the strategy's turn, the books and
 * the matching engine; no one place is slow. This file does the same arithmetic, in the same
 * order, on plain structs: run_backtest's loop (strategies/backtest.py), PaperExchange.advance,
 * _tick, _match, _execute, place_order and its margin checks (exchanges/paper_exchange.py),
 * PerpGridStrategy.step, _ensure_all, _ensure, _plan, _fresh_id, wake_prices, the books' fill
 * booking (strategies/order_book.py), and adjust_range's re-centring (_check_risk,
 * reconfigure.apply_params, inventory.take_lots and adopt_inventory, grid_math.grid_levels).
 * Each function names the Python it mirrors; a change there must be made here too, and
 * tests/bot/test_backtest_kernel.py holds every run equal to the general path, fill by fill,
 * field by field and log line by log line.
 *
 * Anything else (a stop, another boundary action, a range change that fails, a refused level's
 * backoff) is the Python code's: the kernel returns at a point where the general path can go on
 * (strategies/backtest_kernel.py hands the state over both ways). Floats are IEEE doubles as in Python; Python's round(x, 10)
 * and the exact decimal rounding of exchanges/ticks.py are written out below, and the build
 * turns off contraction into fused multiply-adds (-ffp-contract=off), which Python never does.
 * No CPython API: the caller (ctypes) owns every buffer.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPS 1e-9
#define MAX_CELLS 1023
#define MAX_ORDERS 2100
#define MARGIN_RESYNC 256
#define MARGIN_TOLERANCE 1e-9
#define MAX_SEQ 2047
#define NOISE_ULPS 4

enum { BUY = 0, SELL = 1 };
enum { OPEN = 0, CLOSE = 1 };
enum { FREE = 0, MARGIN = 1, EXPOSURE = 2, INVALID = 3, BAND = 4 };   /* Cell.blocked */

/* why the kernel returned */
enum {
    RC_END = 0,        /* the loop is over: max ticks, the prices ran out, or the grid stopped */
    RC_NEED_BLOCK = 1, /* the price block is used up: the caller refills it and calls again */
    RC_STEP = 2,       /* the next turn is Python's: the price left the range (or the state is not plain) */
    RC_ENSURE = 3,     /* fills booked and risk checked: Python places this turn's orders */
    RC_FLUSH = 4,      /* the output buffers are nearly full: the caller empties them and calls again */
    RC_LOOP = 5,       /* a refused level waits out its backoff: whole iterations are Python's until it is over */
    RC_BROKEN = -1,    /* a turn needed the Python code after it had sent orders: never expected */
};

/* event kinds for the caller's log */
enum { EV_MARGIN = 1, EV_INVALID = 2, EV_CLOSE_REFUSED = 3, EV_RECENTRE = 4, EV_RECONFIGURED = 5, EV_ADJUSTED = 6 };

typedef struct {
    int32_t present;
    int32_t pad;
    int64_t num;        /* the order's number (its id is "O<num>") */
    int64_t cid;
    double price, qty, filled, executed;
} Ref;

typedef struct {
    int32_t side;       /* 1 long, -1 short */
    int32_t blocked;
    int32_t seq, rejections, has_cost, pad;
    int64_t retry_at;
    double held, open_fees, cost, reject_price;
    Ref open, close;
} Cell;

typedef struct {
    int64_t num, cid, ts;
    int32_t side, pad;
    double price, qty, filled;
} Order;

typedef struct {
    int64_t trade, order_num, cid, ts;
    int32_t side, pad;
    double price, qty, fee;
} FillOut;

typedef struct {
    int64_t num, cid, ts;
    int32_t side, status;   /* status 0 filled, 1 canceled */
    double price, qty, filled;
} DoneOut;

typedef struct {
    int32_t kind, cell, role, side, rejections, pad;
    double a, b, c, d;
} EventOut;

typedef struct {
    /* ---- the paper exchange ---- */
    int64_t ts, trade_seq, order_seq, next_funding_ts, funding_ms, sums_changes;
    int64_t tick_m, tick_k, step_m, step_k;     /* tick = tick_m * 10^-tick_k, step likewise */
    double price, balance, pos_qty, entry, realized, fees, funding;
    double funding_rate, maker_fee, leverage, reach, tick_size, step_size, min_qty;
    double sums[2][2];          /* per side: running qty, notional of resting orders */
    double sums_peak;
    int32_t n_orders, pad0;
    Order orders[MAX_ORDERS];   /* resting, in placement order (the dict's order) */
    /* ---- the strategy and its books ---- */
    int32_t n_cells, grid_type, has_max_pos, tag, stopped, touched_all, resting_valid, pad3;
    double levels[MAX_CELLS + 1];
    Cell cells[MAX_CELLS];
    uint8_t unsettled[MAX_CELLS + 1];
    uint8_t touched[MAX_CELLS + 1];
    double s_price, position, s_entry, unrealized, s_realized, carried, grid_entry;
    int64_t now_ms, last_fill_ts;
    double grid_profit, t_fees, volume;
    int64_t fill_count, cycles;
    double lower, upper, tol, quantity, max_pos;
    double resting[2];
    double planned_qty[2];
    /* ---- run_backtest ---- */
    double peak, max_dd;
    int64_t ticks, max_ticks;
    int64_t booked_upto;        /* fills of the output buffer the books have booked */
    int64_t turns;              /* turns the kernel took whole */
    int32_t num, mode, allow_unprofitable, adjust_range;  /* the grid's parameters besides its range */
    int32_t layout_changed, pad2;   /* the cells were laid out afresh (a range change) */
    int64_t range_changes;
    /* an advance in progress across blocks */
    int32_t adv_active, adv_pending, no_more, pad1;
    int64_t adv_consumed;
    double adv_cash, adv_qty, adv_entry, adv_last;
    double adv_low, adv_high;
    int64_t adv_wake_at;        /* -1: none */
    /* ---- the price block (the caller's arrays) ---- */
    const int64_t *blk_ts;
    const double *blk_px;
    const double *blk_rounded;
    int64_t blk_len, blk_pos;
    /* ---- output ---- */
    FillOut *fills; int64_t n_fills, cap_fills;
    DoneOut *done; int64_t n_done, cap_done;
    EventOut *events; int64_t n_events, cap_events;
} State;

/* ---------------------------------------------------------------- numbers, as Python has them */

static double py_max(double a, double b) { return b > a ? b : a; }   /* max(a, b) */
static double py_min(double a, double b) { return b < a ? b : a; }   /* min(a, b) */

static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
                               1e13, 1e14, 1e15, 1e16, 1e17, 1e18};

/* round(x, 10): the decimal rounding of the exact binary value (half to even), read back. */
static double round10(double x) {
    double y = x * 1e10;
    if (fabs(y) < 4503599627370496.0) {                 /* 2^52: y's integers are exact */
        double r = nearbyint(y);
        double off = fabs(y - r);
        double room = 0.5 - 4 * (nextafter(fabs(y), INFINITY) - fabs(y));
        if (off < room) {                               /* far from a tie: rint of y is the exact rounding */
            double v = r / 1e10;
            return v == 0.0 ? copysign(0.0, x) : v;
        }
    }
    char buf[512];
    snprintf(buf, sizeof buf, "%.10f", x);
    return strtod(buf, NULL);
}

static double ulp(double x) {                           /* math.ulp */
    x = fabs(x);
    return nextafter(x, INFINITY) - x;
}

/* exchanges/ticks.py from_steps: n steps as the float nearest to the exact decimal n x step */
static double from_steps(int64_t n, int64_t m, int64_t k) { return (double)(n * m) / POW10[k]; }

/* exchanges/ticks.py _snapped: the step count `value` is up to float noise, or 0 with *ok = 0 */
static int64_t snapped(double value, int64_t m, int64_t k, double step, int *ok) {
    int64_t n = (int64_t)nearbyint(value / step);
    double noise = NOISE_ULPS * ulp(value);
    for (int64_t c = n - 1; c <= n + 1; c++) {
        if (fabs(from_steps(c, m, k) - value) <= noise) { *ok = 1; return c; }
    }
    *ok = 0;
    return 0;
}

/* exchanges/ticks.py floor_to: the largest multiple of the step not above `value` */
static double floor_steps(double value, int64_t m, int64_t k, double step) {
    if (step <= 0) return value;
    int ok;
    int64_t n = snapped(value, m, k, step, &ok);
    if (ok) return from_steps(n, m, k);
    n = (int64_t)floor(value / step);
    while (from_steps(n, m, k) > value) n--;
    while (from_steps(n + 1, m, k) <= value) n++;
    return from_steps(n, m, k);
}

/* math.fsum (Shewchuk's exact partial sums, rounded half to even once) */
static double fsum(const double *xs, int n) {
    double partials[64];
    int np = 0;
    for (int i = 0; i < n; i++) {
        double x = xs[i];
        int j = 0;
        for (int q = 0; q < np; q++) {
            double y = partials[q];
            if (fabs(x) < fabs(y)) { double t = x; x = y; y = t; }
            double hi = x + y;
            double lo = y - (hi - x);
            if (lo != 0.0) partials[j++] = lo;
            x = hi;
        }
        np = j;
        partials[np++] = x;
    }
    if (np == 0) return 0.0;
    double hi = partials[--np], lo = 0.0;
    while (np > 0) {
        double x = hi, y = partials[--np];
        hi = x + y;
        double yr = hi - x;
        lo = y - yr;
        if (lo != 0.0) break;
    }
    if (np > 0 && ((lo < 0.0 && partials[np - 1] < 0.0) || (lo > 0.0 && partials[np - 1] > 0.0))) {
        double y = lo * 2.0;
        double x = hi + y;
        double yr = x - hi;
        if (y == yr) hi = x;
    }
    return hi;
}

/* ---------------------------------------------------------------- the paper exchange */

static double unrealized(const State *s) { return s->pos_qty != 0.0 ? s->pos_qty * (s->price - s->entry) : 0.0; }
static double equity(const State *s) { return s->balance + unrealized(s); }

static double reducible(const State *s, int side) {     /* PaperExchange._reducible */
    if (side == BUY && s->pos_qty < 0) return -s->pos_qty;
    if (side == SELL && s->pos_qty > 0) return s->pos_qty;
    return 0.0;
}

static double best_bid(const State *s) {
    double b = -INFINITY;
    for (int i = 0; i < s->n_orders; i++)
        if (s->orders[i].side == BUY && s->orders[i].price > b) b = s->orders[i].price;
    return b;
}

static double best_ask(const State *s) {
    double a = INFINITY;
    for (int i = 0; i < s->n_orders; i++)
        if (s->orders[i].side == SELL && s->orders[i].price < a) a = s->orders[i].price;
    return a;
}

static double remaining(const Order *o) { return py_max(0.0, o->qty - o->filled); }

static void resum(State *s) {                            /* PaperExchange._resum */
    static double qs[MAX_ORDERS], ns[MAX_ORDERS];
    for (int side = 0; side < 2; side++) {
        int n = 0;
        for (int i = 0; i < s->n_orders; i++) {
            const Order *o = &s->orders[i];
            if (o->side != side) continue;
            qs[n] = remaining(o);
            ns[n] = o->price * remaining(o);
            n++;
        }
        s->sums[side][0] = fsum(qs, n);
        s->sums[side][1] = fsum(ns, n);
    }
    s->sums_peak = py_max(s->sums[BUY][1], s->sums[SELL][1]);
    s->sums_changes = 0;
}

static void rests(State *s, int side, double price, double qty) {   /* PaperExchange._rests */
    s->sums[side][0] += qty;
    s->sums[side][1] += qty * price;
    s->sums_peak = py_max(s->sums_peak, s->sums[side][1]);
    s->sums_changes += 1;
    if (s->sums_changes >= MARGIN_RESYNC) resum(s);
}

static void apply_trade(State *s, int side, double qty, double price) {   /* PaperExchange._apply_trade */
    double signed_qty = side == BUY ? qty : -qty;
    double old = s->pos_qty;
    if (old == 0 || (old > 0) == (signed_qty > 0)) {
        s->entry = (fabs(old) * s->entry + qty * price) / (fabs(old) + qty);
    } else {
        double closed = py_min(qty, fabs(old));
        double pnl = closed * (price - s->entry) * (old > 0 ? 1 : -1);
        s->realized += pnl;
        s->balance += pnl;
        if (qty > fabs(old) + EPS) s->entry = price;
    }
    s->pos_qty = round10(old + signed_qty);
    if (fabs(s->pos_qty) <= EPS) { s->pos_qty = 0.0; s->entry = 0.0; }
}

/* PaperExchange._finish: the order leaves the book (status 0 filled, 1 canceled), the margin sums
   lose what it had left, and the caller learns of it (`_done`) */
static void finish(State *s, int i, int status) {
    Order gone = s->orders[i];
    memmove(&s->orders[i], &s->orders[i + 1], sizeof(Order) * (size_t)(s->n_orders - i - 1));
    s->n_orders--;
    rests(s, gone.side, gone.price, -remaining(&gone));
    DoneOut *d = &s->done[s->n_done++];
    d->num = gone.num; d->cid = gone.cid; d->ts = gone.ts; d->side = gone.side; d->status = status;
    d->price = gone.price; d->qty = gone.qty; d->filled = gone.filled;
}

/* PaperExchange._execute of a resting order (maker), then _finish when it is done */
static void execute(State *s, int i, double qty) {
    Order *o = &s->orders[i];
    double price = o->price;
    qty = round10(qty);
    double fee = price * qty * s->maker_fee;
    apply_trade(s, o->side, qty, price);
    s->balance -= fee;
    s->fees += fee;
    s->trade_seq += 1;
    FillOut *f = &s->fills[s->n_fills++];
    f->trade = s->trade_seq; f->order_num = o->num; f->cid = o->cid; f->ts = s->ts;
    f->side = o->side; f->price = price; f->qty = qty; f->fee = fee;
    double before = remaining(o);
    o->filled = round10(o->filled + qty);
    rests(s, o->side, o->price, remaining(o) - before);
    if (remaining(o) <= EPS) finish(s, i, 0);
}

/* PaperExchange._tick and _match */
static void tick(State *s, int64_t ts, double raw) {
    s->ts = ts;
    s->price = from_steps((int64_t)nearbyint(raw / s->tick_size), s->tick_m, s->tick_k);
    if (s->funding_rate != 0.0 && s->funding_ms) {        /* _charge_funding */
        if (!s->next_funding_ts) s->next_funding_ts = (s->ts / s->funding_ms + 1) * s->funding_ms;
        while (s->ts >= s->next_funding_ts) {
            double payment = s->pos_qty * s->price * s->funding_rate;
            s->balance -= payment;
            s->funding += payment;
            s->next_funding_ts += s->funding_ms;
        }
    }
    double half = s->tick_size / 2;
    double buys_below = best_bid(s) - s->reach + half, sells_above = best_ask(s) + s->reach - half;
    if (buys_below < s->price && s->price < sells_above) return;
    int64_t crossed[MAX_ORDERS];
    int n = 0;
    for (int i = 0; i < s->n_orders; i++) {
        const Order *o = &s->orders[i];
        if (o->side == BUY ? s->price <= o->price - s->reach + half : s->price >= o->price + s->reach - half)
            crossed[n++] = o->num;
    }
    /* sorted by the queue key (nearest price first, then placement time), stably */
    for (int a = 1; a < n; a++) {
        int64_t num = crossed[a];
        int b = a;
        const Order *oa = NULL;
        for (int i = 0; i < s->n_orders; i++) if (s->orders[i].num == num) oa = &s->orders[i];
        double ka = oa->side == BUY ? -oa->price : oa->price;
        while (b > 0) {
            const Order *ob = NULL;
            for (int i = 0; i < s->n_orders; i++) if (s->orders[i].num == crossed[b - 1]) ob = &s->orders[i];
            double kb = ob->side == BUY ? -ob->price : ob->price;
            if (kb > ka || (kb == ka && ob->ts > oa->ts)) { crossed[b] = crossed[b - 1]; b--; } else break;
        }
        crossed[b] = num;
    }
    for (int c = 0; c < n; c++) {
        for (int i = 0; i < s->n_orders; i++) {
            if (s->orders[i].num == crossed[c]) { execute(s, i, remaining(&s->orders[i])); break; }
        }
    }
}

/* PaperExchange._opening_notional over the resting orders of one side, plus one more if qty > 0 */
static double opening_notional(const State *s, int side, double extra_price, double extra_qty, int with_extra) {
    double qty = 0.0, notional = 0.0;
    int any = 0;
    for (int i = 0; i < s->n_orders; i++) {
        const Order *o = &s->orders[i];
        if (o->side != side) continue;
        qty += remaining(o);
        any = 1;
    }
    if (with_extra) { qty += extra_qty; any = 1; }
    if (!any || qty <= EPS) return 0.0;
    double opening = py_max(0.0, qty - reducible(s, side));
    for (int i = 0; i < s->n_orders; i++) {
        const Order *o = &s->orders[i];
        if (o->side != side) continue;
        notional += o->price * remaining(o);
    }
    if (with_extra) notional += extra_price * extra_qty;
    return opening * notional / qty;
}

static double sum_notional(const State *s, int of, double q, double n) {   /* _surely_enough_margin.notional */
    return q > EPS ? py_max(0.0, q - reducible(s, of)) * n / q : 0.0;
}

/* PaperExchange.place_order of a postOnly limit order that does not cross: 0 placed, 1 refused
   for margin (need and free in *need, *free), 2 below the market minimum */
static int place(State *s, int side, double qty, double price, int64_t cid, int64_t *num, double *need, double *free) {
    if (qty < s->min_qty - EPS) return 2;
    double q = s->sums[side][0], n = s->sums[side][1];
    int other = 1 - side;
    double without = sum_notional(s, side, q, n);
    double need_s = (sum_notional(s, side, q + qty, n + qty * price) - without) / s->leverage;
    double position = fabs(s->pos_qty) * s->entry;
    double eq = equity(s);
    double free_s = eq - (position + without + sum_notional(s, other, s->sums[other][0], s->sums[other][1])) / s->leverage;
    double tolerance = MARGIN_TOLERANCE * (1.0 + fabs(eq) + position + s->sums_peak + qty * price);
    if (!(need_s + tolerance <= free_s + EPS)) {
        double same_before = opening_notional(s, side, 0, 0, 0);
        double same_after = opening_notional(s, side, price, qty, 1);
        double nd = (same_after - same_before) / s->leverage;
        double orders = opening_notional(s, BUY, 0, 0, 0) + opening_notional(s, SELL, 0, 0, 0);
        double used = (fabs(s->pos_qty) * s->entry + orders) / s->leverage;
        double fr = eq - used;
        if (nd > fr + EPS) { *need = nd; *free = fr; return 1; }
    }
    s->order_seq += 1;
    Order *o = &s->orders[s->n_orders++];
    o->num = s->order_seq; o->cid = cid; o->ts = s->ts; o->side = side;
    o->price = price; o->qty = qty; o->filled = 0.0;
    rests(s, side, price, remaining(o));
    *num = o->num;
    return 0;
}

/* ---------------------------------------------------------------- the books and the grid */

static int open_side(const Cell *c) { return c->side > 0 ? BUY : SELL; }
static int close_side(const Cell *c) { return c->side > 0 ? SELL : BUY; }

static double side_price(const State *s, int i, int role, int *side) {   /* OrderBook.side_price */
    const Cell *c = &s->cells[i];
    if (c->side > 0) { *side = role == OPEN ? BUY : SELL; return role == OPEN ? s->levels[i] : s->levels[i + 1]; }
    *side = role == OPEN ? SELL : BUY;
    return role == OPEN ? s->levels[i + 1] : s->levels[i];
}

static void touch(State *s, int i) { if (!s->touched_all) s->touched[i] = 1; }

static void refresh_position(State *s) {               /* PerpGridStrategy._refresh_position */
    s->position = s->pos_qty;
    s->s_entry = s->entry;
    s->unrealized = unrealized(s);
    s->s_realized = s->realized;
}

static double ref_traded(const Ref *r) { return py_max(r->filled, r->executed); }
static double ref_remaining(const Ref *r) { return py_max(0.0, r->qty - ref_traded(r)); }
static double ref_to_book(const Ref *r) { return py_max(0.0, r->qty - r->filled); }

static double to_close(const Cell *c) { return c->held; }    /* Cell.to_close: nothing unbooked here */

static double book_resting(State *s, int side) {        /* OrderBook.resting */
    if (!s->resting_valid) {
        double r[2] = {0.0, 0.0};
        for (int i = 0; i < s->n_cells; i++) {
            const Cell *c = &s->cells[i];
            if (c->open.present) r[open_side(c)] += ref_remaining(&c->open);
            if (c->close.present) r[close_side(c)] += ref_remaining(&c->close);
        }
        s->resting[0] = r[0]; s->resting[1] = r[1];
        s->resting_valid = 1;
    }
    return s->resting[side];
}

static double owned(const State *s) {                   /* OrderBook.owned */
    double sum = 0.0;
    for (int i = 0; i < s->n_cells; i++) {
        const Cell *c = &s->cells[i];
        if (c->held != 0.0) sum += c->side > 0 ? c->held : -c->held;
    }
    return round10(sum + s->carried);
}

static double average_entry(double qty, double entry, double signed_qty, double price) {
    double after = qty + signed_qty;
    if (fabs(after) <= EPS) return 0.0;
    if (fabs(qty) <= EPS || (qty > 0) != (after > 0)) return price;
    if (fabs(after) > fabs(qty)) return (fabs(qty) * entry + fabs(signed_qty) * price) / fabs(after);
    return entry;
}

static void emptied(State *s, int i) {                 /* OrderBook.emptied */
    Cell *c = &s->cells[i];
    touch(s, i);
    c->held = 0.0; c->open_fees = 0.0;
    if (c->has_cost && s->grid_type != 0) c->side = s->grid_type;
    c->has_cost = 0; c->cost = 0.0;
}

static double open_price(const State *s, int i) {      /* OrderBook.open_price */
    int side;
    return s->cells[i].has_cost ? s->cells[i].cost : side_price(s, i, OPEN, &side);
}

static void fill_ref(State *s, Ref *r, const FillOut *f) {   /* OrderBook._fill_ref */
    if (r->present && r->num == f->order_num) {
        r->filled = round10(r->filled + f->qty);
        s->resting_valid = 0;
        if (ref_to_book(r) <= EPS) r->present = 0;
    }
}

/* OrderBook._book: one fill on its cell; returns owned() after it */
static double book_fill(State *s, const FillOut *f, double owned_before) {
    int level = (int)((f->cid >> 12) & 1023), role = (int)((f->cid >> 11) & 1);
    if (f->ts > s->last_fill_ts) s->last_fill_ts = f->ts;
    double signed_qty = f->side == BUY ? f->qty : -f->qty;
    s->t_fees += f->fee;
    s->volume += f->price * f->qty;
    s->fill_count += 1;
    int cell = -1;
    if (level < s->n_cells) {
        const Cell *c = &s->cells[level];
        if ((c->open.present && c->open.num == f->order_num) || (c->close.present && c->close.num == f->order_num))
            cell = level;
    }
    for (int i = 0; cell < 0 && i < s->n_cells; i++) {
        const Cell *c = &s->cells[i];
        if ((c->open.present && c->open.num == f->order_num) || (c->close.present && c->close.num == f->order_num))
            cell = i;
    }
    if (cell < 0 && level < s->n_cells) cell = level;
    int side = 0;
    if (cell >= 0) side_price(s, cell, role, &side);
    if (cell < 0 || f->side != side) {
        s->carried = round10(s->carried + signed_qty);
    } else if (role == OPEN) {
        Cell *c = &s->cells[cell];
        touch(s, cell);
        c->held = round10(c->held + f->qty);
        c->open_fees += f->fee;
        fill_ref(s, &c->open, f);
    } else {
        Cell *c = &s->cells[cell];
        touch(s, cell);
        double closing = py_min(f->qty, c->held);
        double fee_share = c->held > EPS ? c->open_fees * closing / c->held : 0.0;
        double profit = (f->price - open_price(s, cell)) * closing * c->side - f->fee - fee_share;
        c->open_fees -= fee_share;
        c->held = round10(c->held - closing);
        if (c->held <= EPS) { emptied(s, cell); s->cycles += 1; }
        s->grid_profit += profit;
        s->carried = round10(s->carried + signed_qty + closing * c->side);   /* its side after emptied(), as there */
        fill_ref(s, &c->close, f);
    }
    double owned_after = owned(s);
    s->grid_entry = average_entry(owned_before, s->grid_entry, owned_after - owned_before, f->price);
    return owned_after;
}

/* PerpGridStrategy._visit: the cells that may want something */
static void visit(State *s) {
    if (s->touched_all) {
        for (int i = 0; i < s->n_cells; i++) s->unsettled[i] = 1;
    } else {
        for (int i = 0; i < s->n_cells; i++) if (s->touched[i]) s->unsettled[i] = 1;
    }
    memset(s->touched, 0, sizeof s->touched);
    s->touched_all = 0;
}

static int too_small(const State *s, const Cell *c) {   /* PerpGridStrategy._too_small */
    return EPS < c->held && c->held < s->min_qty - EPS && !c->close.present;
}

static int settled(const State *s, const Cell *c) {      /* PerpGridStrategy._settled */
    if (c->blocked == INVALID || c->blocked == BAND) return 0;
    if (c->held <= EPS) return !c->close.present && (c->open.present || c->blocked != FREE);
    return c->close.present &&
           fabs(ref_to_book(&c->close) - floor_steps(to_close(c), s->step_m, s->step_k, s->step_size)) <= EPS;
}

static double exposure(State *s, int direction) {        /* PerpGridStrategy._exposure */
    int side = direction > 0 ? BUY : SELL;
    return py_max(0.0, s->position * direction + book_resting(s, side) + s->planned_qty[side]);
}

static int taken(const State *s, int64_t cid) {         /* OrderBook.taken: foreign, doubts, gone: none here */
    for (int i = 0; i < s->n_cells; i++) {
        const Cell *c = &s->cells[i];
        if ((c->open.present && c->open.cid == cid) || (c->close.present && c->close.cid == cid)) return 1;
    }
    return 0;
}

typedef struct { int cell, role, side; double qty, price; int64_t cid; } Planned;

/* PerpGridStrategy._plan; returns 0, or -1 when every client id of the level is taken */
static int plan(State *s, int i, int role, double qty, Planned *planned, int *n_planned) {
    int side;
    double price = side_price(s, i, role, &side);
    if ((side == BUY && price >= s->s_price) || (side == SELL && price <= s->s_price)) return 0;
    qty = floor_steps(qty, s->step_m, s->step_k, s->step_size);
    Cell *c = &s->cells[i];
    for (int k = 0; k <= MAX_SEQ; k++) {                 /* _fresh_id */
        c->seq = (c->seq + 1) & MAX_SEQ;
        int64_t cid = ((int64_t)s->tag << 22) | ((int64_t)i << 12) | ((int64_t)role << 11) | c->seq;
        if (!taken(s, cid)) {
            Planned *p = &planned[(*n_planned)++];
            p->cell = i; p->role = role; p->side = side; p->qty = qty; p->price = price; p->cid = cid;
            s->planned_qty[side] += qty;
            return 0;
        }
    }
    return -1;
}

/* PerpGridStrategy._ensure for one cell; -1: it needs what only the Python code does (a cancel:
   a holding whose closing order no longer fits, which takes partial fills or a hand-over the
   kernel does not make; no grid it runs is known to reach it, but if one did the turn would be
   the Python code's rather than wrong) */
static int ensure(State *s, int i, Planned *planned, int *n_planned, int *held_back, int *n_held_back) {
    Cell *c = &s->cells[i];
    int small = 0;
    if (c->held > EPS) {
        small = too_small(s, c);
        double tc = floor_steps(to_close(c), s->step_m, s->step_k, s->step_size);
        if (c->close.present && fabs(ref_to_book(&c->close) - tc) > EPS) return -1;
        if (!c->close.present && tc > EPS && !small && c->blocked != INVALID && c->blocked != BAND)
            if (plan(s, i, CLOSE, tc, planned, n_planned) < 0) return -1;
    } else if (c->close.present) {
        return -1;
    }
    if (!c->open.present && (c->held <= EPS || small) && c->blocked == FREE) {
        double qty = small ? floor_steps(s->quantity - c->held, s->step_m, s->step_k, s->step_size) : s->quantity;
        if (s->has_max_pos && exposure(s, c->side) + qty > s->max_pos + EPS) {
            c->blocked = EXPOSURE;
            held_back[(*n_held_back)++] = i;
            return 0;
        }
        if (plan(s, i, OPEN, qty, planned, n_planned) < 0) return -1;
    }
    return 0;
}

static const State *sort_state;
static double sort_price;
static int by_distance(const void *a, const void *b) {   /* _ensure_all's sort key */
    int i = *(const int *)a, j = *(const int *)b;
    const double *l = sort_state->levels;
    double ki = fabs(l[i] + l[i + 1] - 2 * sort_price), kj = fabs(l[j] + l[j + 1] - 2 * sort_price);
    if (ki < kj) return -1;
    if (ki > kj) return 1;
    return (i > j) - (i < j);
}

static void event(State *s, int kind, int cell, int role, int side, double a, double b, double c, double d) {
    EventOut *e = &s->events[s->n_events++];
    e->kind = kind; e->cell = cell; e->role = role; e->side = side; e->rejections = s->cells[cell].rejections;
    e->a = a; e->b = b; e->c = c; e->d = d;
}

#define REJECT_BACKOFF_MS 2000
#define REJECT_BACKOFF_MAX_MS 300000
#define CLOSE_REJECTIONS 6

/* OrderBook.submit and PerpGridStrategy._refused; returns 1 when every order was placed */
static int submit(State *s, const Planned *planned, int n) {
    int all = 1;
    for (int k = 0; k < n; k++) {
        const Planned *p = &planned[k];
        Cell *c = &s->cells[p->cell];
        int64_t num = 0;
        double need = 0, free = 0;
        int rc = place(s, p->side, p->qty, p->price, p->cid, &num, &need, &free);
        if (rc == 0) {
            Ref *r = p->role == OPEN ? &c->open : &c->close;
            r->present = 1; r->num = num; r->cid = p->cid; r->price = p->price; r->qty = p->qty;
            r->filled = 0.0; r->executed = 0.0;
            touch(s, p->cell);
            c->rejections = 0;
            s->resting_valid = 0;
        } else if (rc == 1) {
            all = 0;
            c->blocked = MARGIN;
            event(s, EV_MARGIN, p->cell, p->role, p->side, need, py_max(free, 0), 0, 0);
        } else {
            all = 0;
            c->rejections += 1;
            double wait = py_min(REJECT_BACKOFF_MAX_MS, REJECT_BACKOFF_MS * pow(2.0, c->rejections - 1));
            c->blocked = INVALID;
            c->retry_at = s->now_ms + (int64_t)wait;
            c->reject_price = s->s_price;
            if (p->role == CLOSE && c->rejections >= CLOSE_REJECTIONS) {
                s->stopped = 1;
                event(s, EV_CLOSE_REFUSED, p->cell, p->role, p->side, p->qty, p->price, owned(s), s->min_qty);
                continue;
            }
            event(s, EV_INVALID, p->cell, p->role, p->side, p->qty, wait, s->min_qty, 0);
        }
    }
    return all;
}

/* PerpGridStrategy._ensure_all; -1: a cell needs the Python code (nothing changed then) */
static int ensure_all(State *s) {
    static Planned planned[2 * MAX_CELLS];
    static int order[MAX_CELLS], held_back[MAX_CELLS];
    static uint8_t attempted[MAX_CELLS];
    static Cell saved[MAX_CELLS];
    memset(attempted, 0, sizeof attempted);
    int first = 1;
    for (;;) {
        s->planned_qty[0] = s->planned_qty[1] = 0.0;
        int n_planned = 0, n_held_back = 0, n = 0;
        visit(s);
        for (int i = 0; i < s->n_cells; i++) if (s->unsettled[i]) order[n++] = i;
        sort_state = s; sort_price = s->s_price;
        qsort(order, (size_t)n, sizeof(int), by_distance);
        if (first) memcpy(saved, s->cells, sizeof(Cell) * (size_t)s->n_cells);
        int bail = 0;
        for (int k = 0; k < n; k++) {
            int i = order[k];
            if (attempted[i]) continue;
            if (ensure(s, i, planned, &n_planned, held_back, &n_held_back) < 0) { bail = 1; break; }
        }
        if (bail) {
            if (!first) return -2;      /* after orders were sent: cannot be handed back */
            memcpy(s->cells, saved, sizeof(Cell) * (size_t)s->n_cells);
            return -1;
        }
        first = 0;
        if (!n_planned) break;
        for (int k = 0; k < n_planned; k++) attempted[planned[k].cell] = 1;
        if (submit(s, planned, n_planned) || !n_held_back) break;
        for (int k = 0; k < n_held_back; k++) s->cells[held_back[k]].blocked = FREE;
    }
    visit(s);
    for (int i = 0; i < s->n_cells; i++)
        if (s->unsettled[i] && settled(s, &s->cells[i])) s->unsettled[i] = 0;
    return 0;
}


/* ---------------------------------------------------------------- range changes */

/* v's shortest repr (Python's repr) as digits x 10^exp10; v >= 0 */
static void shortest(double v, int64_t *digits, int *exp10) {
    char buf[48];
    int lo = 1, hi = 17;                    /* p digits read back as v: true from some p on */
    while (lo < hi) {
        int p = (lo + hi) / 2;
        snprintf(buf, sizeof buf, "%.*e", p - 1, v);
        if (strtod(buf, NULL) == v) hi = p; else lo = p + 1;
    }
    snprintf(buf, sizeof buf, "%.*e", lo - 1, v);
    int64_t d = 0;
    int nd = 0;
    const char *c = buf;
    for (; *c && *c != 'e'; c++) if (*c >= '0' && *c <= '9') { d = d * 10 + (*c - '0'); nd++; }
    *digits = d;
    *exp10 = atoi(c + 1) - (nd - 1);
}

/* exchanges/ticks.py round_to: the multiple of the tick nearest the decimal v was written as
   (half to even); NAN where the numbers are too large to count exactly here */
static double round_to_tick(double v, int64_t m, int64_t k) {
    if (!(v >= 0)) return NAN;
    double step = from_steps(1, m, k), q = v / step, near = nearbyint(q);
    if (fabs(from_steps((int64_t)near, m, k) - v) <= NOISE_ULPS * ulp(v)) return from_steps((int64_t)near, m, k);
    if (fabs(q) < 1e9 && fabs(fabs(q - near) - 0.5) > 1e-6) return from_steps((int64_t)near, m, k);  /* far from a tie */
    int64_t d;
    int e;
    shortest(v, &d, &e);
    int sh = e + (int)k;
    if (sh > 18 || sh < -30) return NAN;
    __int128 num = d, den = m;
    for (int i = 0; i < sh; i++) num *= 10;
    for (int i = 0; i < -sh; i++) den *= 10;
    __int128 n = num / den, r = num % den;
    if (2 * r > den || (2 * r == den && (n & 1))) n++;
    return from_steps((int64_t)n, m, k);
}

/* strategies/grid_math.py grid_levels; returns how many, or -1 (NAN: not countable here) */
static int grid_levels(const State *s, double lower, double upper, double *out) {
    int n = 0, num = s->num;
    double step = (upper - lower) / (num - 1), ratio = pow(upper / lower, 1.0 / (num - 1));
    for (int i = 0; i < num; i++) {
        double raw = i == num - 1 ? upper : (s->mode == 0 ? lower + i * step : lower * pow(ratio, (double)i));
        double r = round_to_tick(raw, s->tick_m, s->tick_k);
        if (r != r) return -1;
        if (r > 0 && (n == 0 || r > out[n - 1])) {
            if (n > MAX_CELLS) return -1;
            out[n++] = r;
        }
    }
    return n;
}

static void cancel_ref(State *s, Ref *r) {              /* OrderBook.cancel_ref, on the paper exchange */
    for (int i = 0; i < s->n_orders; i++) {
        if (s->orders[i].num != r->num) continue;
        finish(s, i, 1);
        break;
    }
    r->present = 0;
    s->resting_valid = 0;
}

typedef struct { double qty, cost, key; int at; } Lot;

static int by_key(const void *a, const void *b) {       /* sorted(key=...), stable by `at` */
    const Lot *x = a, *y = b;
    if (x->key < y->key) return -1;
    if (x->key > y->key) return 1;
    return (x->at > y->at) - (x->at < y->at);
}

static double dist_price;
static const State *dist_state;
static int by_far(const void *a, const void *b) {        /* _trim_exposure: farthest first, stable */
    int i = *(const int *)a, j = *(const int *)b;
    double di = fabs(dist_state->cells[i].open.price - dist_price), dj = fabs(dist_state->cells[j].open.price - dist_price);
    if (di > dj) return -1;
    if (di < dj) return 1;
    return (i > j) - (i < j);
}

/* PerpGridStrategy._check_risk's adjust_range, through adjust_grid_range and
   reconfigure.apply_params. 0 done; 1 the change is the Python code's (it fails, or a case not
   modelled here), nothing changed then. */
static int recentre(State *s) {
    static double levels[MAX_CELLS + 2];
    static Cell old[MAX_CELLS];
    static int plan[MAX_CELLS], used[MAX_CELLS + 1], order[MAX_CELLS];
    static int64_t before[2 * MAX_CELLS];
    static Lot lots[MAX_CELLS + 1];
    static Lot *chunks = NULL;                  /* adopt_inventory's quantity-sized pieces */
    static size_t chunks_room = 0;
    double half = (s->upper - s->lower) / 2, tick = s->tick_size;
    double lower = round_to_tick(py_max(tick, s->s_price - half), s->tick_m, s->tick_k);
    double upper = round_to_tick(lower + 2 * half, s->tick_m, s->tick_k);
    if (lower != lower || upper != upper || !(lower > 0) || lower >= upper) return 1;
    if (lower == s->lower && upper == s->upper) return 1;   /* the same layout: apply_params' other path */
    /* grid_params.check_params: the rest of its checks cannot fail on a new range, but here */
    if (s->has_max_pos && s->max_pos < s->quantity) return 1;
    int multiple;
    snapped(s->quantity, s->step_m, s->step_k, s->step_size, &multiple);
    if (s->quantity < s->min_qty || !multiple) return 1;
    if (s->tol < 0) return 1;
    double eq = equity(s);
    if (s->has_max_pos && s->max_pos >= s->quantity && s->max_pos * upper / s->leverage > eq) return 1;
    int n_levels = grid_levels(s, lower, upper, levels);
    if (n_levels < 2) return 1;
    if (!s->allow_unprofitable)
        for (int i = 0; i + 1 < n_levels; i++)
            if ((levels[i + 1] - levels[i]) - s->maker_fee * (levels[i] + levels[i + 1]) <= 0) return 1;
    int n_new = n_levels - 1;
    /* room for adopt_inventory's pieces: every holding and the carried inventory, cut in quantities
       (a cell that took "the rest" at an earlier change may hold many) */
    double total = fabs(s->carried);
    for (int i = 0; i < s->n_cells; i++) total += s->cells[i].held;
    double pieces = total / s->quantity + s->n_cells + 4;
    if (!(pieces < 1e7)) return 1;
    if ((size_t)pieces > chunks_room) {
        Lot *grown = realloc(chunks, sizeof(Lot) * (size_t)pieces);
        if (!grown) return 1;
        chunks = grown;
        chunks_room = (size_t)pieces;
    }
    /* the change begins: what a Python log would say first */
    event(s, EV_RECENTRE, 0, 0, 0, s->s_price, s->lower, s->upper, 0);
    int n_before = 0;
    for (int i = 0; i < s->n_cells; i++) {
        if (s->cells[i].open.present) before[n_before++] = s->cells[i].open.num;
        if (s->cells[i].close.present) before[n_before++] = s->cells[i].close.num;
    }
    s->touched_all = 1;
    /* _plan: the old cells the new layout keeps (same edges; same side unless holding) */
    for (int i = 0; i < s->n_cells; i++) {
        plan[i] = -1;
        for (int j = 0; j < n_new; j++) {
            if (levels[j] == s->levels[i] && levels[j + 1] == s->levels[i + 1]) {
                int side = s->grid_type != 0 ? s->grid_type : ((levels[j] + levels[j + 1]) / 2 < s->s_price ? 1 : -1);
                if (s->cells[i].held > EPS || s->cells[i].side == side) plan[i] = j;
                break;
            }
        }
    }
    /* _cancel_misfits: the vanishing cells' orders; a lower max_position is not possible here */
    for (int i = 0; i < s->n_cells; i++) {
        Cell *c = &s->cells[i];
        if (plan[i] < 0) {
            if (c->open.present) cancel_ref(s, &c->open);
            if (c->close.present) cancel_ref(s, &c->close);
        } else if (c->open.present && fabs(c->open.qty - s->quantity) > EPS) {
            cancel_ref(s, &c->open);                         /* a smaller opening order of a small holding */
        }
    }
    if (s->has_max_pos) {                                   /* _trim_exposure */
        for (int d = 0; d < 2; d++) {
            int direction = d == 0 ? 1 : -1, side = d == 0 ? BUY : SELL, n = 0;
            for (int i = 0; i < s->n_cells; i++)
                if (s->cells[i].open.present && open_side(&s->cells[i]) == side) order[n++] = i;
            dist_state = s; dist_price = s->s_price;
            qsort(order, (size_t)n, sizeof(int), by_far);
            s->planned_qty[0] = s->planned_qty[1] = 0.0;
            for (int k = 0; k < n; k++) {
                if (exposure(s, direction) <= s->max_pos + EPS) break;
                cancel_ref(s, &s->cells[order[k]].open);
            }
        }
    }
    refresh_position(s);                                    /* no fill came since the turn's */
    /* _relayout */
    for (int i = 0; i <= MAX_CELLS; i++) used[i] = -1;
    for (int i = 0; i < s->n_cells; i++) used[i] = s->cells[i].seq;
    int n_lots = 0;
    for (int i = 0; i < s->n_cells; i++) {                 /* take_lots */
        const Cell *c = &s->cells[i];
        if (plan[i] >= 0 || c->held <= EPS) continue;
        lots[n_lots].qty = round10(c->held) * c->side;
        lots[n_lots].cost = open_price(s, i);
        n_lots++;
    }
    if (fabs(s->carried) > EPS) {
        lots[n_lots].qty = s->carried;
        lots[n_lots].cost = s->grid_entry != 0.0 ? s->grid_entry : s->s_price;
        n_lots++;
    }
    s->carried = 0.0;
    memcpy(old, s->cells, sizeof(Cell) * (size_t)s->n_cells);
    int n_old = s->n_cells;
    for (int j = 0; j < n_new; j++) {
        Cell *c = &s->cells[j];
        memset(c, 0, sizeof *c);
        c->side = s->grid_type != 0 ? s->grid_type : ((levels[j] + levels[j + 1]) / 2 < s->s_price ? 1 : -1);
    }
    for (int i = 0; i < n_old; i++) if (plan[i] >= 0) s->cells[plan[i]] = old[i];
    for (int j = 0; j < n_new; j++) {
        const Ref *refs[2] = {&s->cells[j].open, &s->cells[j].close};
        for (int r = 0; r < 2; r++) {
            if (!refs[r]->present) continue;
            int level = (int)((refs[r]->cid >> 12) & 1023), seq = (int)(refs[r]->cid & MAX_SEQ);
            if (used[level] < seq) used[level] = seq;
        }
    }
    for (int j = 0; j < n_new; j++) if (used[j] > s->cells[j].seq) s->cells[j].seq = used[j];
    memcpy(s->levels, levels, sizeof(double) * (size_t)n_levels);
    s->n_cells = n_new;
    s->resting_valid = 0;
    s->lower = lower; s->upper = upper;
    s->layout_changed = 1;
    for (int d = 0; d < 2; d++) {                            /* adopt_inventory */
        int direction = d == 0 ? 1 : -1, n = 0, nc = 0;
        for (int k = 0; k < n_lots; k++) {
            if (!(lots[k].qty * direction > EPS)) continue;
            order[n] = k;
            n++;
        }
        static Lot sorted_lots[MAX_CELLS + 1];
        for (int k = 0; k < n; k++) {
            sorted_lots[k] = lots[order[k]];
            sorted_lots[k].qty = fabs(sorted_lots[k].qty);
            sorted_lots[k].key = sorted_lots[k].cost * direction;
            sorted_lots[k].at = k;
        }
        qsort(sorted_lots, (size_t)n, sizeof(Lot), by_key);
        for (int k = 0; k < n; k++) {
            double qty = sorted_lots[k].qty;
            while (qty > EPS) {
                chunks[nc].qty = py_min(qty, s->quantity);
                chunks[nc].cost = sorted_lots[k].cost;
                nc++;
                qty = round10(qty - s->quantity);
            }
        }
        int cands[MAX_CELLS], m = 0;
        for (int j = 0; j < s->n_cells; j++) {
            const Cell *c = &s->cells[j];
            if (c->held <= EPS && !c->open.present && !c->close.present &&
                (direction > 0 ? s->levels[j + 1] > s->s_price : s->levels[j] < s->s_price))
                cands[m++] = j;
        }
        if (direction < 0)
            for (int a = 0, b = m - 1; a < b; a++, b--) { int t = cands[a]; cands[a] = cands[b]; cands[b] = t; }
        if (!m) {
            double sum = 0.0;
            for (int k = 0; k < nc; k++) sum += chunks[k].qty;
            s->carried = round10(s->carried + direction * sum);
            continue;
        }
        if (nc > m) {                                       /* fit: the last cell takes the rest */
            double qty = 0.0, notional = 0.0;
            for (int k = m - 1; k < nc; k++) qty += chunks[k].qty;
            for (int k = m - 1; k < nc; k++) notional += chunks[k].qty * chunks[k].cost;
            chunks[m - 1].qty = qty;
            chunks[m - 1].cost = notional / qty;
            nc = m;
        }
        for (int k = 0; k < nc && k < m; k++) {
            Cell *c = &s->cells[cands[k]];
            c->side = direction;
            c->held = round10(chunks[k].qty);
            c->cost = chunks[k].cost;
            c->has_cost = 1;
            c->open_fees = 0.0;
        }
    }
    for (int j = 0; j < s->n_cells; j++)                   /* reconfigure._unblock */
        if (s->cells[j].blocked == INVALID || s->cells[j].blocked == EXPOSURE) s->cells[j].blocked = FREE;
    s->touched_all = 1;
    if (ensure_all(s) < 0) return -1;
    s->touched_all = 1;                                     /* apply_params' finally: touch_all */
    int kept = 0, placed = 0, n_after = 0;
    for (int j = 0; j < s->n_cells; j++) {
        const Ref *refs[2] = {&s->cells[j].open, &s->cells[j].close};
        for (int r = 0; r < 2; r++) {
            if (!refs[r]->present) continue;
            n_after++;
            int found = 0;
            for (int k = 0; k < n_before; k++) if (before[k] == refs[r]->num) { found = 1; break; }
            if (found) kept++; else placed++;
        }
    }
    (void)n_after;
    event(s, EV_RECONFIGURED, 0, 0, 0, lower, upper, (double)kept, (double)(n_before - kept));
    s->events[s->n_events - 1].rejections = placed;
    event(s, EV_ADJUSTED, 0, 0, 0, lower, upper, 0, 0);
    s->range_changes += 1;
    return 0;
}

/* PerpGridStrategy.wake_prices */
static void wake_prices(State *s, double *low, double *high) {
    double half = s->tick_size / 2;
    *low = s->lower * (1 - s->tol);
    *high = s->upper * (1 + s->tol);
    visit(s);
    for (int i = 0; i < s->n_cells; i++) {
        if (!s->unsettled[i]) continue;
        const Cell *c = &s->cells[i];
        if (c->blocked == INVALID || c->blocked == BAND) continue;
        int small = too_small(s, c);
        int side;
        if (to_close(c) > EPS && !c->close.present && !small) {
            double price = side_price(s, i, CLOSE, &side);
            if (side == BUY) *high = py_min(*high, price + half); else *low = py_max(*low, price - half);
        }
        if (c->blocked == FREE && !c->open.present && (c->held <= EPS || small)) {
            double price = side_price(s, i, OPEN, &side);
            if (side == BUY) *high = py_min(*high, price + half); else *low = py_max(*low, price - half);
        }
    }
}

static int any_refused(const State *s) {
    for (int i = 0; i < s->n_cells; i++) if (s->cells[i].blocked == INVALID || s->cells[i].blocked == BAND) return 1;
    return 0;
}

static void drawdown(State *s, double price) {           /* run_backtest, a tick skipped */
    double eq = s->adv_cash + s->adv_qty * (price - s->adv_entry);
    if (eq > s->peak) s->peak = eq;
    else if (s->peak - eq > s->max_dd) s->max_dd = s->peak - eq;
}

/* PerpGridStrategy._refresh_market, the turn's first step */
static void refresh_market(State *s) {
    s->s_price = s->price;
    s->now_ms = s->ts;
    if (s->s_entry != 0.0 && s->position != 0.0) s->unrealized = s->position * (s->s_price - s->s_entry);
}

/* OrderBook.sync_fills and _book for the fills since the last turn, then PerpGridStrategy._booked
   and _refresh_position */
static void sync_fills(State *s) {
    if (s->booked_upto >= s->n_fills) return;
    double o = owned(s);
    for (int64_t k = s->booked_upto; k < s->n_fills; k++) o = book_fill(s, &s->fills[k], o);
    for (int64_t k = s->booked_upto; k < s->n_fills; k++) {     /* _booked */
        const FillOut *f = &s->fills[k];
        s->position = round10(s->position + (f->side == BUY ? f->qty : -f->qty));
    }
    for (int i = 0; i < s->n_cells; i++) {
        if (s->cells[i].blocked == MARGIN || s->cells[i].blocked == EXPOSURE) {
            s->cells[i].blocked = FREE;
            touch(s, i);
        }
    }
    s->booked_upto = s->n_fills;
    refresh_position(s);
}

static void after_step(State *s) {
    double eq = equity(s);
    s->peak = py_max(s->peak, eq);
    s->max_dd = py_max(s->max_dd, s->peak - eq);
}

/* The backtest loop, from the top of an iteration (or the middle of an advance) until something
   the kernel leaves to the caller. */
int gk_run(State *s) {
    for (;;) {
        if (!s->adv_active) {
            if (s->ticks >= s->max_ticks || s->stopped) return RC_END;
            if (any_refused(s)) return RC_LOOP;
            /* room for one iteration's worst case: every order filled by its tick, or cancelled by a
               re-centre; every cell refused in each of the turn's two placements, three log lines */
            if (s->n_fills + MAX_ORDERS + 8 > s->cap_fills || s->n_done + 2 * MAX_ORDERS + 8 > s->cap_done ||
                s->n_events + 2 * MAX_CELLS + 8 > s->cap_events)
                return RC_FLUSH;
            double low, high;
            wake_prices(s, &low, &high);
            /* PaperExchange.advance: its set-up */
            double half = s->tick_size / 2;
            s->adv_low = py_max(best_bid(s) - s->reach + half, low) + EPS;
            s->adv_high = py_min(best_ask(s) + s->reach - half, high) - EPS;
            s->adv_wake_at = (s->funding_rate != 0.0 && s->funding_ms && s->next_funding_ts) ? s->next_funding_ts : -1;
            s->adv_cash = s->balance; s->adv_qty = s->pos_qty; s->adv_entry = s->entry;
            s->adv_consumed = 0; s->adv_pending = 0; s->adv_active = 1;
        }
        int64_t left = s->max_ticks - s->ticks;
        int hit = -1;
        if (s->no_more) {
            s->adv_active = 0;
            if (s->adv_consumed == 0) return RC_END;
        } else {
            if (s->blk_pos >= s->blk_len) return RC_NEED_BLOCK;
            int64_t start = s->blk_pos;
            int64_t end = s->blk_len < start + left - s->adv_consumed ? s->blk_len : start + left - s->adv_consumed;
            for (int64_t k = start; k < end; k++) {
                double p = s->blk_rounded[k];
                if (p <= s->adv_low || p >= s->adv_high || (s->adv_wake_at >= 0 && s->blk_ts[k] >= s->adv_wake_at)) {
                    hit = (int)(k - start);
                    break;
                }
            }
            int64_t last = hit >= 0 ? start + hit : end - 1;
            /* the ticks before the last one of the whole advance are skipped: their drawdown now */
            if (s->adv_pending) drawdown(s, s->adv_last);
            for (int64_t k = start; k < last; k++) drawdown(s, s->blk_rounded[k]);
            s->adv_last = s->blk_rounded[last];
            s->adv_pending = 1;
            s->blk_pos = last + 1;
            s->adv_consumed += last + 1 - start;
            if (hit >= 0) {
                tick(s, s->blk_ts[last], s->blk_px[last]);
            } else {
                s->ts = s->blk_ts[last];
                s->price = s->blk_rounded[last];
                if (s->adv_consumed < left) continue;       /* the next block */
            }
            s->adv_active = 0;
        }
        s->ticks += s->adv_consumed;
        /* the turn: PerpGridStrategy.step */
        refresh_market(s);
        sync_fills(s);
        if (!(s->lower * (1 - s->tol) <= s->s_price && s->s_price <= s->upper * (1 + s->tol))) {
            /* _check_risk: adjust_range re-centres here; anything else (or a change that fails) is
               the Python code's turn, which finds these fills booked already */
            if (!s->adjust_range) return RC_STEP;
            int changed = recentre(s);
            if (changed > 0) return RC_STEP;
            if (changed < 0) return RC_BROKEN;
        }
        int rc = ensure_all(s);
        if (rc == -1) return RC_ENSURE;
        if (rc == -2) return RC_BROKEN;
        after_step(s);
        s->turns += 1;
        if (s->no_more) return RC_END;
    }
}

size_t gk_state_size(void) { return sizeof(State); }
