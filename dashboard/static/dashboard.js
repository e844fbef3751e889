/* The fleet page: polls /api/fleet every 2 s (cheap: it reads small files) and updates one card
   per instance in place, so an open confirmation or adjustment form survives the refresh.
   Actions need a session from the login form; each sends the session's CSRF token. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const POLL_MS = 2000;
  const cards = new Map();
  let csrf = null;

  const fmt = (v, d) => (v === null || v === undefined || !isFinite(v)) ? "—"
    : Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
  const digits = (p) => !isFinite(p) || p === null ? 2 : p >= 1000 ? 2 : p >= 1 ? 3 : 6;
  const money = (v) => (v > 0 ? "+" : "") + fmt(v, 2);
  const pct = (v) => v === null || v === undefined ? "—" : (v >= 0 ? "" : "−") + Math.abs(v).toFixed(2) + "%";
  function duration(s) {
    if (s === null || s === undefined || !isFinite(s)) return "—";
    s = Math.max(0, Math.floor(s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
  }
  function signed(el, v) { el.classList.toggle("pos", v > 0); el.classList.toggle("neg", v < 0); }
  function setConn(kind, text) { $("conn-dot").className = "dot " + kind; $("conn-text").textContent = text; }

  async function post(path, body) {
    const r = await fetch(path, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf || "" }, body: JSON.stringify(body || {}) });
    const answer = await r.json().catch(() => ({}));
    return { status: r.status, ok: r.ok, answer: answer };
  }

  function makeCard(id) {
    const node = $("card-tpl").content.firstElementChild.cloneNode(true);
    const f = {};
    node.querySelectorAll("[data-f]").forEach((el) => { f[el.dataset.f] = el; });
    node.id = "card-" + id;
    node.dataset.instance = id;
    f.link.href = "bot/" + encodeURIComponent(id) + "/";
    f.instance_id.textContent = id;
    const card = { node: node, f: f, row: null, pending: null };
    node.querySelectorAll("[data-act]").forEach((b) => b.addEventListener("click", () => ask(card, b.dataset.act)));
    f["confirm-no"].addEventListener("click", () => { card.pending = null; f.confirm.hidden = true; say(card, "Not done."); });
    f["confirm-yes"].addEventListener("click", () => { const p = card.pending; card.pending = null; f.confirm.hidden = true; if (p) act(card, p.action, p.body); });
    f.adjust.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const lo = Number(f.adjust.lower.value), up = Number(f.adjust.upper.value);
      if (!(lo > 0 && up > lo)) { say(card, "Lower must be above 0 and below upper.", "err"); return; }
      const p = card.row.price;
      const warn = isFinite(p) && p !== null && (p < lo || p > up) ? " Warning: the price " + fmt(p, digits(p)) + " is outside this range." : "";
      confirmBox(card, "adjust", { grid_lower_price: lo, grid_upper_price: up },
        "Move " + id + "'s range to " + fmt(lo, digits(lo)) + " – " + fmt(up, digits(up)) + "?" + warn);
    });
    cards.set(id, card);
    return card;
  }

  function say(card, text, kind) { card.f.msg.textContent = text; card.f.msg.className = "msg " + (kind || ""); }

  function confirmBox(card, action, body, text) {
    card.pending = { action: action, body: body };
    card.f["confirm-text"].textContent = text;
    card.f.confirm.hidden = false;
    card.f["confirm-yes"].focus();
  }

  const QUESTIONS = {
    stop: (id) => "Stop " + id + "? Its orders are cancelled; the position stays on the exchange.",
    restart: (id) => "Restart " + id + "? It cancels its orders, then starts again.",
    flatten: (id) => "Flatten " + id + "? Cancel its orders and close its position at market.",
  };

  function ask(card, action) {
    const id = card.node.dataset.instance;
    if (action === "adjust") {
      const f = card.f, r = card.row;
      f.adjust.hidden = !f.adjust.hidden;
      if (!f.adjust.hidden) { f.adjust.lower.value = r.grid_lower ?? ""; f.adjust.upper.value = r.grid_upper ?? ""; f.adjust.lower.focus(); }
      return;
    }
    if (QUESTIONS[action]) { confirmBox(card, action, { confirm: true }, QUESTIONS[action](id)); return; }
    act(card, action, {});
  }

  async function act(card, action, body) {
    const id = card.node.dataset.instance;
    card.node.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    say(card, action + "…");
    try {
      const r = await post("api/instances/" + encodeURIComponent(id) + "/" + action, body);
      if (r.status === 401) { showSession(false); say(card, "Log in first.", "err"); return; }
      if (!r.ok) { say(card, r.answer.error || r.answer.output || "HTTP " + r.status, "err"); return; }
      if (action === "adjust") { card.f.adjust.hidden = true; say(card, "Range now " + fmt(r.answer.grid.lower, 2) + " – " + fmt(r.answer.grid.upper, 2), "ok"); }
      else say(card, (r.answer.output || action + " done").split("\n").pop(), "ok");
      refresh();
    } catch (e) {
      say(card, "The dashboard did not answer.", "err");
    } finally {
      card.node.querySelectorAll("button").forEach((b) => { b.disabled = false; });
    }
  }

  function render(card, r) {
    const f = card.f;
    card.row = r;
    card.node.classList.toggle("attn", !!r.attention);
    card.node.classList.toggle("gone", !r.books_live);     // last known books of a bot that is not there
    f.state.textContent = r.state; f.state.className = "pill " + r.state;
    f.market.textContent = [r.exchange, r.symbol].filter(Boolean).join(" · ");
    f.attention.hidden = !r.attention; f.attention.textContent = r.attention ? "Needs attention: " + r.attention : "";
    const d = digits(r.price);
    f.price.textContent = fmt(r.price, d);
    f.quote.textContent = (r.quote || "") + (r.books_live || r.price === null ? "" : " · last known");
    f.marker.hidden = r.range_pos === null;
    if (r.range_pos !== null) f.marker.style.left = Math.max(0, Math.min(100, r.range_pos * 100)) + "%";
    f.marker.classList.toggle("out", r.in_range === false);
    f.lower.textContent = r.grid_lower === null ? "" : fmt(r.grid_lower, d) + " (" + pct(r.to_lower_pct) + ")";
    f.upper.textContent = r.grid_upper === null ? "" : fmt(r.grid_upper, d) + " (" + pct(r.to_upper_pct) + ")";
    f.position.textContent = r.position === null ? "—" : String(+Number(r.position).toFixed(6));
    signed(f.position, r.position);
    f.equity.textContent = fmt(r.equity, 2);
    ["unrealized_pnl", "realized_pnl", "grid_profit"].forEach((k) => { f[k].textContent = r[k] === null ? "—" : money(r[k]); signed(f[k], r[k]); });
    f.restarts.textContent = r.restarts;
    f.uptime.textContent = duration(r.uptime_s);
    f.orders.textContent = r.open_order_count ?? "—";
    f.last_error.hidden = !r.last_error; f.last_error.textContent = r.last_error || "";
    const acts = card.node.querySelectorAll("[data-act]");
    acts.forEach((b) => {
      const a = b.dataset.act;
      b.hidden = a === "start" ? r.alive : !r.alive;
    });
  }

  function renderTotals(totals) {
    const box = $("totals");
    box.textContent = "";
    totals.forEach((t) => {
      const el = document.createElement("div");
      el.className = "total";
      el.dataset.quote = t.quote;
      const h = document.createElement("h2");
      h.textContent = t.quote + " · " + t.instances + (t.instances === 1 ? " bot" : " bots");
      const kv = document.createElement("dl"); kv.className = "kv";
      [["Equity", fmt(t.equity, 2)], ["Unrealized", money(t.unrealized_pnl)], ["Realized", money(t.realized_pnl)], ["Grid profit", money(t.grid_profit)]]
        .forEach(([k, v]) => { const d = document.createElement("div"); const dt = document.createElement("dt"); dt.textContent = k;
          const dd = document.createElement("dd"); dd.textContent = v; d.append(dt, dd); kv.appendChild(d); });
      el.append(h, kv);
      box.appendChild(el);
    });
  }

  async function refresh() {
    let view;
    try {
      const r = await fetch("api/fleet", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      view = await r.json();
    } catch (e) { setConn("down", "dashboard unreachable"); return; }
    setConn("live", "live");
    const rows = view.instances;
    $("summary").textContent = rows.length + " instances · " + rows.filter((r) => r.alive).length + " live · " + view.attention + " need attention";
    document.title = (view.attention ? "(" + view.attention + "!) " : "") + "Fleet · " + rows.length;
    $("empty").hidden = rows.length > 0;
    const box = $("cards");
    rows.forEach((r, i) => {
      const card = cards.get(r.instance_id) || makeCard(r.instance_id);
      render(card, r);
      if (box.children[i + 1] !== card.node) box.insertBefore(card.node, box.children[i + 1] || null);  // attention first
    });
    const ids = new Set(rows.map((r) => r.instance_id));
    cards.forEach((c, id) => { if (!ids.has(id)) { c.node.remove(); cards.delete(id); } });
    renderTotals(view.totals);
  }

  function showSession(loggedIn) {
    $("login-link").hidden = loggedIn;
    $("logout").hidden = !loggedIn;
    document.body.classList.toggle("can-act", loggedIn);
    cards.forEach((c) => { c.f.acts.hidden = !loggedIn; });
    $("card-tpl").content.querySelector("[data-f=acts]").hidden = !loggedIn;
  }

  async function loadSession() {
    try {
      const s = await (await fetch("api/session", { cache: "no-store" })).json();
      csrf = s.csrf; showSession(s.logged_in);
    } catch (e) { showSession(false); }
  }
  $("logout").addEventListener("click", async () => { await post("logout"); csrf = null; showSession(false); });

  loadSession().then(refresh);
  setInterval(refresh, POLL_MS);
})();
