/* Live page of one grid bot: fetches the JSON API, then follows Socket.IO events.
   After a dropped connection it refetches everything on reconnect, so nothing is missed.
   Every URL is relative, so the same page works at its own port and behind the fleet
   dashboard's proxy at /bot/<id>/. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const instance = document.body.dataset.instance;
  const tokenKey = "gridbot-token:" + instance;
  const MAX_POINTS = 3000;
  const FILLS_PAGE = 100, MAX_FILLS = 1000;   // the API serves at most 1000; the CSV has them all
  const PROBE_AFTER_MS = 4000;                 // no news for this long: ask /health whether the bot is there

  const state = { snap: null, series: [], pnl: [], fills: [], orders: [], lastUpdate: 0, decimals: 2,
    seenFills: new Set(), fillLimit: FILLS_PAGE, loopAge: null, loopSeenAt: 0, offline: false };

  /* ---------- formatting ---------- */
  const fmt = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "—"
    : Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  const price = (v) => fmt(v, state.decimals);
  const plain = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "—" : Number(v).toFixed(d);
  const money = (v) => (v > 0 ? "+" : "") + fmt(v, 2);
  const qty = (v) => (v === null || v === undefined) ? "—" : String(+Number(v).toFixed(6));
  const signClass = (el, v) => { el.classList.toggle("pos", v > 0); el.classList.toggle("neg", v < 0); };
  const clock = (ts) => new Date(ts * 1000).toLocaleTimeString("en-GB", { hour12: false });
  // The API speaks epoch milliseconds (as the exchange layer does); the chart works in seconds.
  const seconds = (t) => (t > 1e11 ? t / 1000 : t);
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "—";
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    if (m) return m + "m " + (s % 60) + "s";
    return s + "s";
  }
  function decimalsFor(grid) {
    const levels = (grid && grid.levels) || [];
    const step = levels.length > 1 ? Math.abs(levels[1] - levels[0]) : (grid ? (grid.upper - grid.lower) / Math.max(1, grid.num) : 1);
    return Math.min(6, Math.max(2, Math.ceil(-Math.log10(step || 1)) + 1));
  }

  /* ---------- data ---------- */
  async function getJSON(path) {
    const r = await fetch(path, { cache: "no-store" });   // relative: "api/status", never "api/status"
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }

  function addPoint(t, p) {
    if (!isFinite(p)) return;
    const last = state.series[state.series.length - 1];
    if (last && t <= last.t) return;
    state.series.push({ t: t, p: p });
    if (state.series.length > MAX_POINTS) state.series.splice(0, state.series.length - MAX_POINTS);
  }

  // History rows (one per ~10 s), fills (trades at their price) and live points (one per status)
  // interleave: merge, never reset, so a refetch after a reconnect or an adjustment keeps what
  // the page has already drawn, and the line passes through the fills drawn on it.
  function mergeHistory(rows) {
    const all = state.series.concat(rows.filter((r) => isFinite(r.price)).map((r) => ({ t: seconds(r.timestamp), p: r.price })));
    all.sort((a, b) => a.t - b.t);
    state.series = all.filter((q, i) => i === 0 || q.t !== all[i - 1].t).slice(-MAX_POINTS);
  }

  // The fills at the page size asked for now, or null once a later request was made meanwhile: answers
  // can arrive out of order, and an older one (fewer rows) must not shrink a list the trader just extended.
  let fillsAsked = 0;
  async function latestFills() {
    const ask = ++fillsAsked;
    const fills = await getJSON("api/fills?limit=" + state.fillLimit);
    return ask === fillsAsked ? fills : null;
  }

  async function refetchAll() {
    try {
      const [snap, pnl, orders, fills] = await Promise.all([
        getJSON("api/status"), getJSON("api/pnl?limit=" + MAX_POINTS), getJSON("api/orders"), latestFills(),
      ]);
      mergeHistory(pnl.concat(fills || []));
      state.pnl = pnl.map((r) => ({ t: seconds(r.timestamp), equity: r.equity, realized: r.realized, total: r.realized + r.unrealized }));
      state.orders = orders;
      if (fills) setFills(fills);
      applyStatus(snap, Date.now() / 1000);
    } catch (e) {
      markOffline("cannot reach the bot");
    }
  }

  let ordersTimer = null;
  function refetchOrdersAndFills() {
    if (ordersTimer) return;  // one fetch for a burst of fills
    ordersTimer = setTimeout(async () => {
      ordersTimer = null;
      try {
        const [orders, fills] = await Promise.all([getJSON("api/orders"), latestFills()]);
        state.orders = orders;
        if (fills) { mergeHistory(fills); setFills(fills); }
        renderOrders(); draw();
      } catch (e) { /* the next status or reconnect tries again */ }
    }, 250);
  }

  /* ---------- rendering ---------- */
  /* The pill says what the bot is doing now: its own state while it answers, "stopped" as soon as
     it does not (a dead bot must never keep a green RUNNING), and why it waits or stopped. */
  function showState() {
    const s = state.snap || {};
    const name = state.offline ? "stopped" : (s.state || "unknown");
    const st = $("state");
    st.textContent = name;
    st.className = "pill " + name;
    const why = state.offline ? state.offline : (s.state === "waiting" || s.state === "stopped") ? s.message : "";
    const banner = $("state-msg");
    banner.hidden = !why;
    banner.textContent = why ? (name === "waiting" ? "Waiting: " : "Stopped: ") + why : "";
    banner.className = "banner " + name;
    $("main").classList.toggle("stale", !!state.offline);
    if (state.offline) {
      $("loop-age").textContent = "—";
      $("order-count").textContent = "unknown";
    }
  }

  function markOffline(why) {
    state.offline = why + " (since " + new Date().toLocaleTimeString("en-GB", { hour12: false }) + ")";
    setConn("down", "bot unreachable");
    document.title = "stopped · " + instance;
    showState();
  }

  function tickLoopAge() {
    if (state.offline || state.loopAge === null) return;
    const age = state.loopAge + (Date.now() - state.loopSeenAt) / 1000;   // ticks on between pushes
    $("loop-age").textContent = age.toFixed(1) + "s ago";
  }

  function applyStatus(s, ts) {
    const prev = state.snap;
    state.snap = s;
    state.lastUpdate = Date.now();
    state.offline = false;
    state.decimals = decimalsFor(s.grid);
    addPoint(ts, s.price);

    $("symbol").textContent = s.symbol || "";
    $("exchange").textContent = s.exchange || "";
    showState();
    $("uptime").textContent = duration(s.uptime_s);
    if (typeof s.loop_age_s === "number") { state.loopAge = s.loop_age_s; state.loopSeenAt = Date.now(); }
    tickLoopAge();
    if (isFinite(s.price) && s.price !== null) document.title = price(s.price) + " " + (s.symbol || "") + " · " + instance;
    if (isFinite(s.equity) && s.equity !== null && ts) addPnlPoint(ts, s);

    const g = s.grid || {};
    $("price").textContent = price(s.price);
    const inside = s.price >= g.lower && s.price <= g.upper;
    $("price-sub").textContent = g.lower === undefined ? "" : (inside ? "inside the grid" : (s.price < g.lower ? "below the grid" : "above the grid"));

    const pos = s.position || {};
    const p = $("position");
    p.textContent = qty(pos.qty) + (pos.qty ? " " + String(s.symbol || "").split(/[_/:-]/)[0] : "");
    p.className = "value " + (pos.qty > 0 ? "pos" : pos.qty < 0 ? "neg" : "");
    $("entry").textContent = pos.qty ? (pos.qty > 0 ? "long" : "short") + " · entry " + price(pos.entry_price) : "flat";

    [["upnl", s.unrealized_pnl], ["rpnl", s.realized_pnl], ["gprofit", s.grid_profit]].forEach(([id, v]) => {
      const el = $(id); el.textContent = money(v); signClass(el, v);
    });
    $("upnl-sub").textContent = pos.qty && s.price ? "at " + price(s.price) : "";
    $("fees").textContent = "fees " + fmt(s.fees, 2);
    $("fill-count").textContent = (s.fill_count || 0) + " fills";
    $("equity").textContent = fmt(s.equity, 2);
    $("volume").textContent = "volume " + fmt(s.volume, 0);

    $("range").textContent = price(g.lower) + " – " + price(g.upper);
    $("grid-meta").textContent = [g.num ? g.num + " grids" : "", g.mode, g.type].filter(Boolean).join(" · ");
    const lo = $("lower"), up = $("upper");
    if (document.activeElement !== lo && document.activeElement !== up && !formDirty) {
      lo.value = g.lower; up.value = g.upper;
    }
    if (prev && (prev.open_order_count !== s.open_order_count || prev.fill_count !== s.fill_count)) refetchOrdersAndFills();
    renderOrders();
    draw();
    drawPnl();
  }

  function renderOrders() {
    const bids = state.orders.filter((o) => o.side === "buy").map((o) => o.price);
    const asks = state.orders.filter((o) => o.side === "sell").map((o) => o.price);
    if (!state.offline) $("order-count").textContent = state.orders.length + " resting";
    $("best-bid").textContent = bids.length ? price(Math.max(...bids)) : "—";
    $("best-ask").textContent = asks.length ? price(Math.min(...asks)) : "—";
    $("bids").textContent = bids.length + " buys";
    $("asks").textContent = asks.length + " sells";
  }

  function setFills(fills) {
    const fresh = state.fills.length > 0;
    state.fills = fills.map((f) => Object.assign({}, f, { t: seconds(f.timestamp) })).sort((a, b) => b.t - a.t);
    const body = $("fills").tBodies[0];
    body.textContent = "";
    if (!state.fills.length) {
      body.innerHTML = '<tr class="empty"><td colspan="5">No fills yet</td></tr>';
    }
    state.fills.forEach((f) => {
      const tr = document.createElement("tr");
      if (fresh && !state.seenFills.has(f.trade_id)) tr.className = "fresh";
      [[clock(f.t), ""], [f.side, f.side === "buy" ? "buy" : "sell"], [price(f.price), "r"], [qty(f.qty), "r"], [fmt(f.fee, 4), "r"]]
        .forEach(([text, cls]) => { const td = document.createElement("td"); td.textContent = text; td.className = cls; tr.appendChild(td); });
      body.appendChild(tr);
    });
    state.seenFills = new Set(state.fills.map((f) => f.trade_id));
    const total = (state.snap && state.snap.fill_count) || state.fills.length;
    $("fills-meta").textContent = state.fills.length ? "last " + state.fills.length + " of " + total : "";
    $("fills-more").hidden = !(state.fills.length >= state.fillLimit && state.fillLimit < MAX_FILLS);
  }

  $("fills-more").addEventListener("click", async () => {
    state.fillLimit = Math.min(MAX_FILLS, state.fillLimit + FILLS_PAGE);
    try {
      const fills = await latestFills();
      if (fills) setFills(fills);
    } catch (e) { /* reconnect refetches */ }
  });

  function addPnlPoint(ts, s) {
    const last = state.pnl[state.pnl.length - 1];
    if (last && ts <= last.t) return;
    state.pnl.push({ t: ts, equity: s.equity, realized: s.realized_pnl, total: (s.realized_pnl || 0) + (s.unrealized_pnl || 0) });
    if (state.pnl.length > MAX_POINTS) state.pnl.splice(0, state.pnl.length - MAX_POINTS);
  }

  /* ---------- chart (canvas, drawn here: no library) ---------- */
  const canvas = $("chart");
  function css(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }
  function niceStep(span, count) {
    const raw = span / Math.max(1, count), mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const n = raw / mag;
    return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
  }

  // A cleared 2D context the size of the canvas on screen, in CSS pixels (sharp on any screen).
  function prepare(cv) {
    const dpr = window.devicePixelRatio || 1;
    const W = cv.clientWidth, H = cv.clientHeight;
    if (!W || !H) return null;
    if (cv.width !== Math.round(W * dpr) || cv.height !== Math.round(H * dpr)) {
      cv.width = Math.round(W * dpr); cv.height = Math.round(H * dpr);
    }
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    return { ctx: ctx, W: W, H: H };
  }

  function draw() {
    const s = state.snap;
    const area = prepare(canvas);
    if (!area || !s) return;
    const { ctx, W, H } = area;
    canvas.setAttribute("aria-label", "price " + price(s.price) + " against " + ((s.grid || {}).levels || []).length +
      " grid levels from " + price((s.grid || {}).lower) + " to " + price((s.grid || {}).upper) + ", " + state.orders.length + " open orders");
    const col = { text: css("--muted"), grid: css("--grid"), line: css("--line"), accent: css("--accent"),
      buy: css("--buy"), sell: css("--sell"), bound: css("--bound"), card: css("--card") };
    const g = s.grid || {}, levels = g.levels || [];
    ctx.font = "11px " + css("--mono");
    // the right margin holds the axis labels and the last-price tag: wide prices (2,984.50) need more
    const tagW = isFinite(s.price) ? ctx.measureText(price(s.price)).width + 12 : 0;
    const pad = { l: 8, r: Math.max(78, tagW + 32), t: 10, b: 24 };
    const pw = W - pad.l - pad.r, ph = H - pad.t - pad.b;

    const pts = state.series;
    const now = pts.length ? pts[pts.length - 1].t : Date.now() / 1000;
    const t0 = pts.length > 1 ? pts[0].t : now - 60;
    const t1 = Math.max(now, t0 + 1);
    let lo = Math.min(g.lower, ...pts.map((q) => q.p)), hi = Math.max(g.upper, ...pts.map((q) => q.p));
    if (!isFinite(lo) || !isFinite(hi)) { lo = s.price * 0.99; hi = s.price * 1.01; }
    const margin = (hi - lo) * 0.06 || 1;
    lo -= margin; hi += margin;
    const x = (t) => pad.l + (t - t0) / (t1 - t0) * pw;
    const y = (p) => pad.t + (hi - p) / (hi - lo) * ph;

    ctx.font = "11px " + css("--mono");
    ctx.textBaseline = "middle";

    // price axis ticks (right) and faint horizontal guides
    const step = niceStep(hi - lo, 6);
    ctx.fillStyle = col.text;
    ctx.textAlign = "left";
    for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) {
      ctx.fillText(fmt(v, Math.max(0, Math.min(state.decimals, -Math.floor(Math.log10(step)) + 1))), W - pad.r + 30, y(v));
    }
    // time axis
    ctx.textAlign = "center"; ctx.textBaseline = "top";
    const ticks = pw < 360 ? 2 : 4;   // on a phone five clock labels would overlap
    for (let i = 0; i <= ticks; i++) {
      const t = t0 + (t1 - t0) * i / ticks;
      ctx.fillText(clock(t), Math.min(Math.max(x(t), pad.l + 26), pad.l + pw - 26), H - pad.b + 8);
    }
    ctx.textBaseline = "middle";

    // grid levels, tinted by the side of the order resting there
    const sideAt = new Map();
    state.orders.forEach((o) => sideAt.set(Number(o.price).toFixed(state.decimals), o.side));
    levels.forEach((lv) => {
      const side = sideAt.get(Number(lv).toFixed(state.decimals));
      ctx.strokeStyle = side === "buy" ? col.buy : side === "sell" ? col.sell : col.grid;
      ctx.globalAlpha = side ? 0.35 : 1;
      ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(pad.l, Math.round(y(lv)) + 0.5); ctx.lineTo(pad.l + pw, Math.round(y(lv)) + 0.5); ctx.stroke();
      ctx.globalAlpha = 1;
    });
    // range bounds
    ctx.setLineDash([6, 4]); ctx.strokeStyle = col.bound; ctx.lineWidth = 1.5;
    [["upper", g.upper], ["lower", g.lower]].forEach(([name, v]) => {
      if (!isFinite(v)) return;
      ctx.beginPath(); ctx.moveTo(pad.l, y(v)); ctx.lineTo(pad.l + pw, y(v)); ctx.stroke();
      ctx.fillStyle = col.bound; ctx.textAlign = "left";
      ctx.fillText(name + " " + price(v), pad.l + 6, y(v) + (name === "upper" ? -9 : 9));
    });
    ctx.setLineDash([]);

    // open orders: a small marker per order on the right edge of the plot
    state.orders.forEach((o) => {
      const yy = y(o.price), xx = pad.l + pw + 4;
      ctx.fillStyle = o.side === "buy" ? col.buy : col.sell;
      ctx.beginPath(); ctx.moveTo(xx, yy); ctx.lineTo(xx + 7, yy - 4); ctx.lineTo(xx + 7, yy + 4); ctx.closePath(); ctx.fill();
    });

    // price line
    if (pts.length > 1) {
      ctx.strokeStyle = col.accent; ctx.lineWidth = 2; ctx.lineJoin = "round";
      ctx.beginPath();
      pts.forEach((q, i) => (i ? ctx.lineTo(x(q.t), y(q.p)) : ctx.moveTo(x(q.t), y(q.p))));
      ctx.stroke();
    }
    // fills as dots where they happened
    state.fills.forEach((f) => {
      if (f.t < t0 || f.t > t1) return;
      ctx.fillStyle = f.side === "buy" ? col.buy : col.sell;
      ctx.strokeStyle = col.card; ctx.lineWidth = 1.5;
      ctx.beginPath(); ctx.arc(x(f.t), y(f.price), 4, 0, Math.PI * 2); ctx.fill(); ctx.stroke();
    });
    // last price tag on the axis
    if (isFinite(s.price)) {
      const yy = y(s.price), label = price(s.price);
      const w = ctx.measureText(label).width + 12;
      ctx.fillStyle = col.accent;
      ctx.fillRect(W - pad.r + 26, yy - 9, w, 18);
      ctx.fillStyle = "#fff"; ctx.textAlign = "left";
      ctx.fillText(label, W - pad.r + 32, yy);
      ctx.strokeStyle = col.accent; ctx.globalAlpha = 0.4; ctx.setLineDash([2, 3]); ctx.lineWidth = 1;
      ctx.beginPath(); ctx.moveTo(pad.l, yy); ctx.lineTo(pad.l + pw, yy); ctx.stroke();
      ctx.setLineDash([]); ctx.globalAlpha = 1;
    }
  }
  /* equity (top half, its own scale) over realized and total PnL (bottom half, shared scale) */
  const pnlCanvas = $("pnl-chart");
  function drawPnl() {
    const area = prepare(pnlCanvas);
    if (!area) return;
    const { ctx, W, H } = area;
    const rows = state.pnl;
    pnlCanvas.setAttribute("aria-label", "equity and PnL history, " + rows.length + " points" +
      (rows.length ? ", equity " + fmt(rows[rows.length - 1].equity, 2) : ""));
    if (rows.length < 2) return;
    const col = { text: css("--muted"), accent: css("--accent"), buy: css("--buy"), bound: css("--bound"), line: css("--line") };
    ctx.font = "11px " + css("--mono"); ctx.textBaseline = "middle"; ctx.textAlign = "left";
    const padR = 70, t0 = rows[0].t, t1 = Math.max(rows[rows.length - 1].t, t0 + 1);
    const x = (t) => 4 + (t - t0) / (t1 - t0) * (W - padR - 8);
    function panel(top, height, series) {
      const values = series.flatMap((sr) => rows.map((r) => r[sr.key])).filter((v) => v !== null && isFinite(v));
      if (!values.length) return;
      let lo = Math.min(...values), hi = Math.max(...values);
      if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
      const y = (v) => top + 10 + (hi - v) / (hi - lo) * (height - 20);   // labels of the two halves never touch
      ctx.fillStyle = col.text;
      ctx.fillText(fmt(hi, 2), W - padR + 4, y(hi)); ctx.fillText(fmt(lo, 2), W - padR + 4, y(lo));
      series.forEach((sr) => {
        ctx.strokeStyle = sr.color; ctx.lineWidth = 1.6; ctx.beginPath();
        let started = false;
        rows.forEach((r) => {
          const v = r[sr.key];
          if (v === null || !isFinite(v)) return;
          if (started) ctx.lineTo(x(r.t), y(v)); else { ctx.moveTo(x(r.t), y(v)); started = true; }
        });
        ctx.stroke();
      });
    }
    panel(0, H / 2, [{ key: "equity", color: col.accent }]);
    ctx.strokeStyle = col.line; ctx.beginPath(); ctx.moveTo(0, Math.round(H / 2) + 0.5); ctx.lineTo(W, Math.round(H / 2) + 0.5); ctx.stroke();
    panel(H / 2, H / 2, [{ key: "realized", color: col.buy }, { key: "total", color: col.bound }]);
  }
  new ResizeObserver(draw).observe(canvas.parentElement);
  new ResizeObserver(drawPnl).observe(pnlCanvas.parentElement);

  /* ---------- adjusting the range ---------- */
  let formDirty = false;
  ["lower", "upper"].forEach((id) => $(id).addEventListener("input", () => { formDirty = true; }));
  function message(text, kind) { const m = $("adjust-msg"); m.textContent = text; m.className = "msg " + (kind || ""); }
  function askToken(why) { $("token-row").hidden = false; $("token").focus(); message(why, "err"); }

  $("adjust").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const typed = $("token").value.trim();
    if (typed) sessionStorage.setItem(tokenKey, typed);
    const token = sessionStorage.getItem(tokenKey);
    if (!token) { askToken("Enter this bot's token once (kept for this tab only)."); return; }
    const body = {};
    const lo = $("lower").value.trim(), up = $("upper").value.trim();
    const g = (state.snap && state.snap.grid) || {};
    if (lo !== "" && Number(lo) !== g.lower) body.grid_lower_price = Number(lo);
    if (up !== "" && Number(up) !== g.upper) body.grid_upper_price = Number(up);
    if (!Object.keys(body).length) { message("Change the lower or upper price first.", "err"); return; }
    askConfirmation(body, token, g);
  });

  /* An adjustment moves real orders: say what will change, warn when the price would be outside */
  let pending = null;
  function askConfirmation(body, token, g) {
    const lower = body.grid_lower_price !== undefined ? body.grid_lower_price : g.lower;
    const upper = body.grid_upper_price !== undefined ? body.grid_upper_price : g.upper;
    const p = state.snap ? state.snap.price : NaN;
    pending = { body: body, token: token };
    $("confirm-text").textContent = "Move the range from " + price(g.lower) + " – " + price(g.upper) + " to " + price(lower) + " – " + price(upper) + "?";
    const outside = isFinite(p) && (p < lower || p > upper);
    $("confirm-warn").hidden = !outside;
    $("confirm-warn").textContent = outside ? "Warning: the price " + price(p) + " is outside the new range; the bot may stop or trade at once." : "";
    $("confirm").hidden = false;
    message("");
    $("confirm-yes").focus();
  }
  $("confirm-no").addEventListener("click", () => { pending = null; $("confirm").hidden = true; message("Not changed."); });
  $("confirm-yes").addEventListener("click", async () => {
    if (!pending) return;
    const { body, token } = pending;
    pending = null;
    $("confirm").hidden = true;
    $("apply").disabled = true; message("Adjusting…");
    try {
      const r = await fetch("api/grid/adjust", {
        method: "POST", headers: { "Content-Type": "application/json", "Authorization": "Bearer " + token },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({}));
      if (r.status === 401) { sessionStorage.removeItem(tokenKey); $("token").value = ""; askToken("Token rejected: check `daemon_manager.py info " + instance + "`."); return; }
      if (!r.ok) { message(answer.error || "HTTP " + r.status, "err"); return; }
      $("token-row").hidden = true; $("token").value = "";
      formDirty = false;
      message("Range now " + price(answer.grid.lower) + " – " + price(answer.grid.upper), "ok");
      refetchAll();
    } catch (e) {
      message("Bot unreachable; try again when it reconnects.", "err");
    } finally {
      $("apply").disabled = false;
    }
  });

  /* ---------- live updates ---------- */
  function setConn(kind, text) { $("conn-dot").className = "dot " + kind; $("conn-text").textContent = text; }
  const base = location.pathname.replace(/[^/]*$/, "");   // "/" or "/bot/<id>/"
  const socket = io({ path: base + "socket.io", reconnectionDelayMax: 5000 });
  socket.on("connect", () => { setConn("live", "live"); refetchAll(); });
  socket.on("disconnect", () => { setConn("down", "reconnecting…"); probe(); });
  socket.io.on("reconnect_attempt", () => setConn("down", "reconnecting…"));
  socket.on("status_update", (s) => applyStatus(s, s.ts ? seconds(s.ts) : Date.now() / 1000));
  socket.on("fill", () => refetchOrdersAndFills());
  socket.on("grid_adjusted", () => refetchAll());
  // Is the bot still there? A dead process answers nothing (or, behind the dashboard, 502).
  async function probe() {
    try {
      const r = await fetch("health", { cache: "no-store" });
      if (r.status === 200 || r.status === 503) {
        const h = await r.json();
        if (state.offline) refetchAll();
        if (r.status === 503) setConn("down", "loop stalled " + duration(h.loop_age_s));
        return;
      }
      markOffline("the page answers HTTP " + r.status);
    } catch (e) {
      markOffline("no answer from the bot");
    }
  }
  setInterval(tickLoopAge, 1000);
  setInterval(() => {
    if (!state.lastUpdate || Date.now() - state.lastUpdate > PROBE_AFTER_MS || !socket.connected) probe();
  }, 2000);
  refetchAll();
})();
