// tcpplay's web view: the Latency panel. Per command, p50/p90/p99/max (a table), the picked
// command's latency histogram and the exchanges per second of the last five minutes (two
// canvases), from /api/latency: asked at most once a second, and only while the panel is open
// and the tab visible. It follows the page's filter (the URL's hash) as far as the API does.
// Names come from traffic: they are set with textContent only. Uses app.js's api() and ms().
"use strict";

(() => {
  const pane = document.getElementById("latency-pane");
  const toggle = document.getElementById("latency-toggle");
  const body = document.querySelector("#latency tbody");
  const note = document.getElementById("latency-note");
  const histogram = document.getElementById("histogram");
  const histogramTitle = document.getElementById("histogram-title");
  const rate = document.getElementById("rate");
  const rateTitle = document.getElementById("rate-title");
  const KEY = "tcpplay.latency";
  const FILTER_KEYS = ["proto", "cmd", "http", "errors", "slow", "client"];
  const COLOURS = { bar: "#3b6fd4", error: "#b42318", axis: "#9ca3af", text: "#4b5563",
                    p50: "#067647", p99: "#c2410c", grid: "#eef0f2" };
  let picked = null; // "resp GET": the histogram's command
  let asking = false;
  let last = null; // the latest answer, to redraw on a resize
  const LABEL_GAP = 6; // px between two axis labels

  function decade(d) { // 10**d seconds as a label: 1 µs, 10 ms, 1 s
    const units = [[-9, "ns"], [-6, "µs"], [-3, "ms"], [0, "s"]];
    const [base, unit] = units.filter(([b]) => b <= d).pop() || units[0];
    return `${10 ** (d - base)} ${unit}`;
  }

  function keyOf(row) { return `${row.protocol} ${row.name}`; }

  function setOpen(open) {
    pane.hidden = !open;
    toggle.setAttribute("aria-pressed", String(open));
    try { localStorage.setItem(KEY, open ? "open" : "closed"); } catch (e) { /* private mode */ }
    if (open) refresh();
  }
  toggle.addEventListener("click", () => setOpen(pane.hidden));

  function filterParams() {
    const hash = new URLSearchParams(location.hash.slice(1));
    const out = {};
    for (const k of FILTER_KEYS) if (hash.get(k)) out[k] = hash.get(k);
    return out;
  }

  async function refresh() {
    if (asking || pane.hidden || document.hidden) return;
    asking = true;
    try {
      const r = await fetch(api("api/latency", filterParams()));
      const answer = await r.json();
      if (!r.ok) { note.textContent = answer.error; return; }
      last = answer;
      show(answer);
    } catch (e) {
      note.textContent = "no answer";
    } finally {
      asking = false;
    }
  }

  // -- the table ---------------------------------------------------------------------------------
  const trs = new Map(); // "resp GET" -> its <tr>

  function rowFor(row) {
    const key = keyOf(row);
    let tr = trs.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.key = key;
      for (let i = 0; i < 8; i++) tr.appendChild(document.createElement("td"));
      tr.addEventListener("click", () => { picked = key; show(last); });
      trs.set(key, tr);
    }
    const cells = [[row.protocol, ""], [row.name, "name"], [row.count, "num"],
                   [row.errors, row.errors ? "num errors-some" : "num"], [ms(row.p50), "num"],
                   [ms(row.p90), "num"], [ms(row.p99), "num"], [ms(row.max), "num"]];
    cells.forEach(([text, cls], i) => {
      const td = tr.children[i];
      if (td.textContent !== String(text ?? "")) td.textContent = String(text ?? "");
      if (td.className !== cls) td.className = cls;
    });
    tr.title = `${row.name}: ${row.count} exchange(s), ${row.timed} with a latency, ` +
      `min ${ms(row.min)}`;
    tr.classList.toggle("picked", key === picked);
    return tr;
  }

  function show(answer) {
    const rows = answer.commands;
    const ignored = answer.ignores.length ? ` · the filter's ${answer.ignores.join(", ")} not applied` : "";
    note.textContent =
      `percentiles within ${(answer.error_bound * 100).toFixed(1)} % · since start${ignored}`;
    if (!rows.some((r) => keyOf(r) === picked)) picked = rows.length ? keyOf(rows[0]) : null;
    const keys = new Set(rows.map(keyOf));
    for (const [key, tr] of trs) if (!keys.has(key)) { tr.remove(); trs.delete(key); }
    let before = body.firstChild;
    for (const row of rows) { // rows stay the same elements, updated in place
      const tr = rowFor(row);
      if (tr !== before) body.insertBefore(tr, before);
      else before = before.nextSibling;
    }
    drawHistogram(rows.find((r) => keyOf(r) === picked) || null);
    drawRate(answer.series);
  }

  // -- drawing -------------------------------------------------------------------------------------
  function canvas2d(canvas) {
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px system-ui, sans-serif";
    return { ctx, w, h };
  }

  function label(ctx, text, x, y, align, colour) {
    ctx.fillStyle = colour || COLOURS.text;
    ctx.textAlign = align || "left";
    ctx.fillText(text, x, y);
  }

  // An axis's labels ([text, x, align] each, the ones that matter most first), each drawn only
  // clear of those drawn before it: a narrow plot shows fewer, none run into each other.
  // Returns what was drawn, [text, left, right] each.
  function axisLabels(ctx, ticks, y) {
    const drawn = [];
    for (const [text, x, align] of ticks) {
      const width = ctx.measureText(text).width;
      const left = align === "left" ? x : align === "right" ? x - width : x - width / 2;
      const right = left + width;
      if (drawn.some(([, l, r]) => left < r + LABEL_GAP && right + LABEL_GAP > l)) continue;
      label(ctx, text, x, y, align);
      drawn.push([text, left, right]);
    }
    return drawn;
  }

  // Latency on a log axis: one bar per filled bucket, p50 and p99 marked, decades labelled.
  function drawHistogram(row) {
    const { ctx, w, h } = canvas2d(histogram);
    histogram.dataset.bars = "0";
    if (!row || !row.buckets.length) {
      histogramTitle.textContent = row ? `${row.name}: no latency yet` : "histogram";
      label(ctx, "no exchanges yet", w / 2, h / 2, "center", COLOURS.axis);
      return;
    }
    histogramTitle.textContent =
      `${row.protocol} ${row.name} · ${row.timed} timed · p50 ${ms(row.p50)} · p99 ${ms(row.p99)}`;
    const buckets = row.buckets.map(([low, high, n]) => [low || high / 2, high || low * 1.0625, n]);
    const lo = Math.log10(buckets[0][0]), hi = Math.log10(buckets[buckets.length - 1][1]);
    const from = Math.floor(lo), to = Math.max(Math.ceil(hi), from + 1);
    const pad = { left: 8, right: 8, top: 18, bottom: 20 };
    const plotW = w - pad.left - pad.right, plotH = h - pad.top - pad.bottom;
    const x = (v) => pad.left + ((Math.log10(v) - from) / (to - from)) * plotW;
    const most = Math.max(...buckets.map((b) => b[2]));
    ctx.strokeStyle = COLOURS.grid;
    const ticks = [];
    for (let d = from; d <= to; d++) {
      const px = x(10 ** d);
      ctx.beginPath(); ctx.moveTo(px, pad.top); ctx.lineTo(px, pad.top + plotH); ctx.stroke();
      const tick = [decade(d), px, d === from ? "left" : d === to ? "right" : "center"];
      if (d === from || d === to) ticks.unshift(tick); else ticks.push(tick); // the ends first
    }
    histogram.dataset.ticks = JSON.stringify(axisLabels(ctx, ticks, h - 6));
    ctx.fillStyle = COLOURS.bar;
    for (const [low, high, n] of buckets) {
      const x0 = x(low), x1 = Math.max(x(high), x0 + 1.5);
      const bh = Math.max(1, (n / most) * plotH);
      ctx.fillRect(x0, pad.top + plotH - bh, x1 - x0 - 0.5, bh);
    }
    ctx.strokeStyle = COLOURS.axis;
    ctx.beginPath(); ctx.moveTo(pad.left, pad.top + plotH + 0.5); ctx.lineTo(w - pad.right, pad.top + plotH + 0.5); ctx.stroke();
    for (const [name, colour] of [["p50", COLOURS.p50], ["p99", COLOURS.p99]]) {
      const px = Math.round(x(row[name])) + 0.5;
      ctx.strokeStyle = colour; ctx.setLineDash([3, 2]);
      ctx.beginPath(); ctx.moveTo(px, pad.top - 4); ctx.lineTo(px, pad.top + plotH); ctx.stroke();
      ctx.setLineDash([]);
      // p50 to the left of its line, p99 to the right: apart even when the lines are close
      const left = name === "p50" ? px > pad.left + 30 : px > w - pad.right - 30;
      label(ctx, name, left ? px - 3 : px + 3, pad.top - 6, left ? "right" : "left", colour);
    }
    histogram.dataset.bars = String(buckets.length);
  }

  // Exchanges per second, now at the right, errors in red at each bar's foot. The window is the
  // last minute, growing to the last five as the traffic goes back further.
  function drawRate(series) {
    const { ctx, w, h } = canvas2d(rate);
    const first = series.exchanges.findIndex((c) => c > 0);
    const n = Math.max(60, first < 0 ? 0 : series.exchanges.length - first);
    const counts = series.exchanges.slice(-n), errors = series.errors.slice(-n);
    const peak = Math.max(...counts);
    const now = counts[n - 2] ?? 0; // the last whole second
    const span = n > 60 ? `${Math.ceil(n / 60)} min` : "minute";
    rateTitle.textContent = `exchanges/s · last ${span} · now ${now}/s · peak ${peak}/s`;
    const pad = { left: 8, right: 8, top: 14, bottom: 20 };
    const plotW = w - pad.left - pad.right, plotH = h - pad.top - pad.bottom;
    const bw = plotW / n;
    let bars = 0;
    for (let i = 0; i < n && peak > 0; i++) {
      if (!counts[i]) continue;
      const bh = Math.max(1, (counts[i] / peak) * plotH);
      const x0 = pad.left + i * bw, width = Math.max(bw - (bw > 3 ? 1 : 0.3), 0.8);
      ctx.fillStyle = COLOURS.bar;
      ctx.fillRect(x0, pad.top + plotH - bh, width, bh);
      if (errors[i]) {
        const eh = Math.max(1, (errors[i] / peak) * plotH);
        ctx.fillStyle = COLOURS.error;
        ctx.fillRect(x0, pad.top + plotH - eh, width, eh);
      }
      bars++;
    }
    if (peak === 0) label(ctx, "no exchanges in the last minutes", w / 2, h / 2, "center", COLOURS.axis);
    ctx.strokeStyle = COLOURS.axis;
    ctx.beginPath(); ctx.moveTo(pad.left, pad.top + plotH + 0.5); ctx.lineTo(w - pad.right, pad.top + plotH + 0.5); ctx.stroke();
    const step = n > 60 ? 60 : 10; // a tick a minute, or every ten seconds
    const ticks = [];
    for (let s = 0; s <= n; s += step) {
      const px = w - pad.right - (s / n) * plotW;
      ctx.beginPath(); ctx.moveTo(px, pad.top + plotH); ctx.lineTo(px, pad.top + plotH + 4); ctx.stroke();
      const text = s === 0 ? "now" : step === 60 ? `-${s / 60} min` : `-${s} s`;
      const oldest = s + step > n;
      const tick = [text, px, s === 0 ? "right" : oldest ? "left" : "center"];
      if (oldest) ticks.splice(1, 0, tick); else ticks.push(tick); // "now" and the oldest first
    }
    rate.dataset.ticks = JSON.stringify(axisLabels(ctx, ticks, h - 6));
    if (peak > 0) label(ctx, `${peak}/s`, pad.left, pad.top - 3, "left", COLOURS.axis);
    rate.dataset.bars = String(bars);
  }

  window.addEventListener("resize", () => { if (last && !pane.hidden) show(last); });
  window.addEventListener("hashchange", refresh);
  document.addEventListener("visibilitychange", refresh);
  setInterval(refresh, 1000);
  let stored = null;
  try { stored = localStorage.getItem(KEY); } catch (e) { /* private mode */ }
  setOpen(stored === "open");
})();
