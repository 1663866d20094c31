// tcpplay's live web view: the connections list (live, from /api/events), one connection's
// exchanges, its follow-stream view and its Close (FIN) and Reset (RST) buttons. Plain JS, no
// framework. Traffic is attacker data: it is only ever set with textContent, never as HTML.
"use strict";

const token = new URLSearchParams(location.search).get("token");

function api(path, params) {
  const q = new URLSearchParams(params || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

// -- the filter: its state is the URL's hash (#proto=resp&cmd=GET&slow=5), so a shared URL opens
// with it; the server says which connections match (/api/connections?...) and which exchanges
const FILTER_KEYS = ["proto", "cmd", "http", "errors", "slow", "client"];
let filter = {}; // the hash's known keys with a value
let unknownKeys = []; // the hash's other keys: said in the note, never silently dropped
let matching = null; // ids the server says match, or null: no filter
let matchFetching = false, matchAgain = false;

function readFilter() {
  const h = new URLSearchParams(location.hash.slice(1));
  filter = {};
  for (const k of FILTER_KEYS) if (h.get(k)) filter[k] = h.get(k);
  unknownKeys = [...new Set(h.keys())].filter((k) => !FILTER_KEYS.includes(k));
  return Object.keys(filter).length > 0;
}

// What the filter note says when nothing else is to be said: a key it does not know (a typo,
// or "GET" without "cmd="), which would otherwise be ignored while the bar still shows it.
function unknownNote() {
  return unknownKeys.length ?
    `not a filter: ${unknownKeys.join(", ")} (filters: ${FILTER_KEYS.join(", ")})` : "";
}

// The server reads a bounded part of a full capture per answer (more: ask again with before=):
// the matches fill in as the answers come, and the last one of a pass is the new set.
async function refreshMatching() {
  if (!Object.keys(filter).length) { matching = null; return; }
  if (matchFetching) { matchAgain = true; return; }
  matchFetching = true;
  const note = document.getElementById("filter-note");
  const asked = filter, found = new Set();
  if (matching === null) matching = new Set();
  try {
    let before = null;
    for (;;) {
      const r = await fetch(api("api/connections", before ? { ...asked, before } : asked));
      const out = await r.json();
      if (filter !== asked) break; // changed meanwhile: the next pass asks for the new one
      if (!r.ok) { note.textContent = out.error; break; }
      for (const c of out.connections) found.add(c.id);
      if (!out.more) { matching = found; note.textContent = unknownNote(); break; }
      for (const id of found) matching.add(id); // meanwhile: what was found so far, too
      note.textContent = "searching older exchanges…";
      before = out.before;
      queueRender();
    }
    queueRender();
  } catch (e) {
    note.textContent = unknownNote();
  } finally {
    matchFetching = false;
    if (matchAgain) { matchAgain = false; refreshMatching(); }
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function ms(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 0.001) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1e3).toFixed(2)} ms`;
  return `${seconds.toFixed(3)} s`;
}

function size(n) {
  if (n === null || n === undefined) return "";
  if (n < 10 * 1024) return `${n} B`;
  if (n < 10 * 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

const ARROW = { c2s: "client → server", s2c: "server → client" };
const conns = new Map(); // id -> summary row
const rows = new Map(); // id -> <tr>
let sortKey = "id", sortDesc = false;
let picked = null;
let evictedTotal = 0;
let renderQueued = false;

// -- the connections list ---------------------------------------------------------------------
// A window of it: only the rows in view and ROW_MARGIN around them are in the table; two spacers
// stand for the others, so a capture of many thousands scrolls as one long list.
const listPane = document.getElementById("list-pane");
// The list sticks to the newest until the user scrolls away from the end, and again once they
// scroll back: said by the scroll events (below), not by the pane's geometry at each render (a
// pane made shorter, by the picked connection's pane or the latency pane opening, is not the
// user leaving the end: the list stayed at its top, the newest and the picked rows out of view).
let listAtEnd = true;
const listTable = document.getElementById("connections");
const tbody = listTable.querySelector("tbody");
const ROW_MARGIN = 40;
const padAbove = el("div", "list-pad"), padBelow = el("div", "list-pad");
listTable.before(padAbove);
listTable.after(padBelow);
let rowHeight = 24; // measured from the rows drawn

function cellsOf(c) {
  return [
    [c.id, "num"], [c.client, ""], [`${c.listen} → ${c.server || c.target}`, ""],
    [c.protocol || (c.state === "closed" ? "—" : "…"), ""], [c.state, c.state === "closed" ? "closed" : ""],
    [size(c.bytes_c2s), "num"], [size(c.bytes_s2c), "num"], [ms(c.duration), "num"],
    [c.exchanges, "num"], [c.errors, c.errors ? "num errors-some" : "num"],
    [c.how ? `${c.how} (${c.closed_by})` : "", ""],
  ];
}

function rowFor(c) {
  let tr = rows.get(c.id);
  if (!tr) {
    tr = el("tr");
    tr.dataset.id = c.id;
    for (let i = 0; i < 11; i++) tr.appendChild(el("td"));
    tr.addEventListener("click", () => pick(c.id));
    rows.set(c.id, tr);
  }
  const cells = cellsOf(c);
  for (let i = 0; i < cells.length; i++) {
    const td = tr.children[i];
    const text = String(cells[i][0]);
    if (td.textContent !== text) td.textContent = text;
    if (td.className !== cells[i][1]) td.className = cells[i][1];
  }
  tr.classList.toggle("picked", c.id === picked);
  return tr;
}

function sortValue(c) {
  if (sortKey === "route") return `${c.listen} ${c.server || c.target}`;
  if (sortKey === "how") return c.how || "";
  return c[sortKey];
}

function render() {
  renderQueued = false;
  const atEnd = listAtEnd;
  const list = Array.from(conns.values()).filter((c) => matching === null || matching.has(c.id));
  list.sort((a, b) => {
    const x = sortValue(a), y = sortValue(b);
    const r = x < y ? -1 : x > y ? 1 : a.id - b.id;
    return sortDesc ? -r : r;
  });
  // the rows in view: at the end when it sticks to the newest, else where the user scrolled
  const head = listTable.tHead.offsetHeight, view = listPane.clientHeight;
  const top = atEnd ? head + list.length * rowHeight - view : listPane.scrollTop;
  const first = Math.max(0, Math.floor((top - head) / rowHeight) - ROW_MARGIN);
  const last = Math.min(list.length, Math.ceil((top - head + view) / rowHeight) + ROW_MARGIN);
  const drawn = list.slice(first, last);
  const keep = new Set(drawn.map((c) => c.id));
  for (const [id, tr] of rows) {
    if (!keep.has(id)) { tr.remove(); rows.delete(id); }
  }
  let before = tbody.firstChild;
  for (const c of drawn) {
    const tr = rowFor(c);
    if (tr !== before) tbody.insertBefore(tr, before);
    else before = before.nextSibling;
  }
  padAbove.style.height = `${first * rowHeight}px`;
  padBelow.style.height = `${(list.length - last) * rowHeight}px`;
  if (drawn.length > 1) { // the spacers' unit: the rows' real height (fractional pixels add up)
    const measured = (tbody.lastChild.getBoundingClientRect().bottom -
                      tbody.firstChild.getBoundingClientRect().top) / drawn.length;
    if (Math.abs(measured - rowHeight) > 0.01) { rowHeight = measured; queueRender(); }
  }
  if (atEnd) listPane.scrollTop = listPane.scrollHeight; // stick to the newest
  // an empty list says why: nothing came yet (a bare header row reads as a broken page), or
  // the filter lets nothing through
  const empty = document.getElementById("empty-note");
  empty.hidden = list.length > 0;
  empty.textContent = conns.size ? "No connection matches the filter." :
    "No connections yet: each client that connects through the proxy is listed here as it " +
    "opens; click one to see its exchanges and its bytes.";
  const note = document.getElementById("evicted-note");
  note.hidden = evictedTotal === 0;
  note.textContent = `${evictedTotal} older connection(s) evicted (--web-connections, --web-memory)`;
  // with a filter, say how many of them it lets through: the list is not all of them
  const shown = matching === null ? "" : `${list.length} of `;
  document.getElementById("totals").textContent =
    `${shown}${conns.size} connection(s) · ${evictedTotal} evicted`;
}

function queueRender() {
  if (!renderQueued) { renderQueued = true; requestAnimationFrame(render); }
}

document.querySelectorAll("#connections th").forEach((th) => {
  th.addEventListener("click", () => {
    const key = th.dataset.key;
    if (key === sortKey) sortDesc = !sortDesc; else { sortKey = key; sortDesc = false; }
    document.querySelectorAll("#connections th").forEach((h) => {
      h.classList.toggle("sorted", h.dataset.key === sortKey);
      h.classList.toggle("desc", h.dataset.key === sortKey && sortDesc);
    });
    queueRender();
  });
});
document.querySelector('#connections th[data-key="id"]').classList.add("sorted");
listPane.addEventListener("scroll", () => {
  listAtEnd = listPane.scrollTop + listPane.clientHeight >= listPane.scrollHeight - 4;
  queueRender();
}, { passive: true });
new ResizeObserver(() => queueRender()).observe(listPane); // drawn again where it sticks

// -- live feed ----------------------------------------------------------------------------------
// EventSource reconnects by itself (the server asks for 1 s) and sends the last event id back:
// the same server sends what was missed; a restarted one (another EPOCH in EPOCH-SEQ) a resync,
// and its pair ids are new ones: the picked connection is no longer the one shown.
const statusEl = document.getElementById("status");
let source = null;
let epoch = null;

function connect() {
  source = new EventSource(api("api/events"));
  source.onopen = () => { statusEl.textContent = "live"; statusEl.className = "status live"; };
  source.onerror = () => {
    statusEl.textContent = "reconnecting…"; statusEl.className = "status down";
    // a closed one (an answer that was not an event stream) is made anew
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
  source.onmessage = (ev) => {
    const from = ev.lastEventId.split("-")[0];
    if (epoch !== null && from !== epoch) restarted();
    epoch = from;
    apply(JSON.parse(ev.data));
  };
}

function restarted() {
  picked = null;
  detail.hidden = true;
}

function apply(batch) {
  if (batch.resync) conns.clear();
  for (const id of batch.evicted) conns.delete(id);
  for (const c of batch.connections) conns.set(c.id, c);
  evictedTotal = batch.evicted_total;
  if (Object.keys(filter).length) refreshMatching();
  queueRender();
  if (picked !== null) {
    if (batch.resync && !conns.has(picked)) { showGone(); return; }
    if (batch.evicted.includes(picked)) { showGone(); return; }
    if (batch.resync || batch.connections.some((c) => c.id === picked)) refreshDetail();
  }
}

// -- one connection ---------------------------------------------------------------------------
const detail = document.getElementById("detail-pane");
const exTable = document.getElementById("exchanges");
const exBody = exTable.querySelector("tbody");
const exBox = exTable.parentElement;
const streamEl = document.getElementById("stream");
let lastExchange = 0, lastChunk = 0, fetching = false, again = false;
let hexView = false;
let chunks = []; // kept to redraw on a text/hex toggle
const MAX_CHUNKS_SHOWN = 5000; // the pane keeps a connection's last chunks
let chunksDropped = 0; // the earlier ones it let go: said in the note, never silently

function pick(id) {
  picked = id;
  setActions(conns.has(id) && conns.get(id).state !== "closed");
  lastExchange = 0; lastChunk = 0; chunks = []; chunksDropped = 0;
  exchanges.length = 0;
  exDrawn.clear();
  exBody.replaceChildren();
  exBox.scrollTop = 0;
  renderExchanges();
  streamEl.replaceChildren();
  document.getElementById("download-pcap").href = api(`api/connections/${id}.pcap`);
  document.getElementById("download-jsonl").href = api(`api/connections/${id}.jsonl`);
  detail.hidden = false;
  for (const [rid, tr] of rows) tr.classList.toggle("picked", rid === id);
  refreshDetail();
}

function showGone() {
  document.getElementById("detail-summary").textContent = "evicted: no longer kept";
  setActions(false);
}

// -- acting on the picked connection ------------------------------------------------------------
const finButton = document.getElementById("close-fin");
const rstButton = document.getElementById("close-rst");

function setActions(open) {
  finButton.disabled = !open;
  rstButton.disabled = !open;
}

async function closePicked(how) {
  const id = picked;
  setActions(false); // until the list says how it went
  try {
    const r = await fetch(api(`api/connections/${id}/close`), {
      method: "POST",
      headers: { "content-type": "application/json", "x-tcpplay-action": "close" },
      body: JSON.stringify({ how }),
    });
    if (!r.ok) {
      const answer = await r.json();
      document.getElementById("detail-summary").textContent = `could not close: ${answer.error}`;
    }
  } catch (e) {
    statusEl.textContent = "reconnecting…"; statusEl.className = "status down";
  }
  if (id === picked) refreshDetail();
}
finButton.addEventListener("click", () => closePicked("fin"));
rstButton.addEventListener("click", () => closePicked("rst"));

async function refreshDetail() {
  if (fetching) { again = true; return; }
  fetching = true;
  const id = picked;
  try {
    const [one, stream] = await Promise.all([
      fetch(api(`api/connections/${id}`, { ...filter, after: lastExchange })).then((r) => r.json()),
      fetch(api(`api/connections/${id}/stream`, { after: lastChunk })).then((r) => r.json()),
    ]);
    if (id !== picked) return;
    if (one.error) { showGone(); return; }
    showConnection(one);
    showStream(stream);
    if (one.more || stream.more) again = true; // answers are bounded: ask for the rest
  } catch (e) {
    statusEl.textContent = "reconnecting…"; statusEl.className = "status down";
  } finally {
    fetching = false;
    if (again) { again = false; refreshDetail(); }
  }
}

function showConnection(one) {
  const c = one.connection;
  setActions(c.state !== "closed");
  document.getElementById("detail-title").textContent = `#${c.id} ${c.client} → ${c.server || c.target}`;
  document.getElementById("detail-summary").textContent =
    `${c.protocol || "undetected"} · ${c.state}` +
    `${c.how ? ` (${c.how}, ${c.closed_by}${c.reason ? `: ${c.reason}` : ""})` : ""} · ` +
    `${size(c.bytes_c2s)} c→s · ${size(c.bytes_s2c)} s→c · ${ms(c.duration)} · ` +
    `${c.exchanges} exchange(s), ${c.errors} error(s)`;
  document.getElementById("exchanges-note").textContent =
    one.exchanges_evicted ? `${one.exchanges_evicted} older exchange(s) evicted` : "";
  const every = !Object.keys(filter).length; // a filter skips rows: no gap to say then
  for (const x of one.exchanges) {
    // rows the capture evicted between two answers: a row in their place, not skipped
    if (every && lastExchange && x.index > lastExchange + 1) {
      exchanges.push({ gap: x.index - lastExchange - 1 });
    }
    exchanges.push(x);
    lastExchange = x.index;
  }
  // a filtered answer stops after reading a bounded number of rows: the next goes on from there
  if (one.next_after > lastExchange) lastExchange = one.next_after;
  if (one.exchanges.length) queueExchanges();
}

// The exchanges table is a window, as the connections list: every row fetched is kept (the
// capture bounds how many), only those in view and ROW_MARGIN around them are drawn, two
// spacers stand for the others. At the end, it follows the new rows; scrolled up, it stays.
const exchanges = []; // the rows fetched, in order
const exDrawn = new Map(); // position in exchanges -> <tr>
const exPadAbove = el("div", "list-pad"), exPadBelow = el("div", "list-pad");
exTable.before(exPadAbove);
exTable.after(exPadBelow);
let exRowHeight = 22; // measured from the rows drawn
let exQueued = false;

function exchangeRow(x) {
  if (x.gap) {
    const tr = el("tr", "gap");
    const td = el("td", "", `── ${x.gap} exchange(s) evicted before shown ──`);
    td.colSpan = 6;
    tr.appendChild(td);
    return tr;
  }
  const tr = el("tr", x.error ? "error" : x.kind);
  tr.dataset.index = x.index;
  tr.appendChild(el("td", "num", x.index));
  const req = el("td", "req", x.request); req.title = x.request; tr.appendChild(req);
  tr.appendChild(el("td", "arrow", x.kind === "push" ? "⇐" : "→"));
  const rep = el("td", "rep", x.reply); rep.title = x.reply; tr.appendChild(rep);
  tr.appendChild(el("td", "num", ms(x.latency)));
  const known = x.request_size !== null || x.reply_size !== null;
  tr.appendChild(el("td", "num", known ? `${size(x.request_size) || "–"} / ${size(x.reply_size) || "–"}` : ""));
  return tr;
}

function renderExchanges() {
  exQueued = false;
  const atEnd = exBox.scrollTop + exBox.clientHeight >= exBox.scrollHeight - 4;
  const n = exchanges.length, head = exTable.tHead.offsetHeight, view = exBox.clientHeight;
  const top = atEnd ? head + n * exRowHeight - view : exBox.scrollTop;
  const first = Math.max(0, Math.floor((top - head) / exRowHeight) - ROW_MARGIN);
  const last = Math.min(n, Math.ceil((top - head + view) / exRowHeight) + ROW_MARGIN);
  for (const [i, tr] of exDrawn) {
    if (i < first || i >= last) { tr.remove(); exDrawn.delete(i); }
  }
  let before = exBody.firstChild;
  for (let i = first; i < last; i++) {
    let tr = exDrawn.get(i);
    if (!tr) { tr = exchangeRow(exchanges[i]); exDrawn.set(i, tr); }
    if (tr !== before) exBody.insertBefore(tr, before);
    else before = before.nextSibling;
  }
  exPadAbove.style.height = `${first * exRowHeight}px`;
  exPadBelow.style.height = `${(n - last) * exRowHeight}px`;
  if (last - first > 1) { // the spacers' unit: the rows' real height
    const measured = (exBody.lastChild.getBoundingClientRect().bottom -
                      exBody.firstChild.getBoundingClientRect().top) / (last - first);
    if (Math.abs(measured - exRowHeight) > 0.01) { exRowHeight = measured; queueExchanges(); }
  }
  if (atEnd) exBox.scrollTop = exBox.scrollHeight; // follow the new rows
}

function queueExchanges() {
  if (!exQueued) { exQueued = true; requestAnimationFrame(renderExchanges); }
}
exBox.addEventListener("scroll", () => queueExchanges(), { passive: true });

function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// The exact bytes as text: printable ASCII as it is, \r \n \t \\ and \xNN for the rest.
function asText(bytes) {
  let s = "";
  for (const b of bytes) {
    if (b === 0x0a) s += "\\n\n";
    else if (b === 0x0d) s += "\\r";
    else if (b === 0x09) s += "\\t";
    else if (b === 0x5c) s += "\\\\";
    else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
    else s += "\\x" + b.toString(16).padStart(2, "0");
  }
  return s;
}

function asHex(bytes, offset) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.slice(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${(offset + i).toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n") + "\n";
}

const MARKS = { fin: "FIN", rst: "RST", close: "closed" };

function chunkNode(ch) {
  if (ch.mark === "gap") return el("span", "mark", `── ${ch.count} chunk(s) evicted before shown ──`);
  if (ch.mark === "unreached") return el("span", "mark", "── the proxy could not reach the server ──");
  if (ch.mark) {
    const who = ch.direction === "c2s" ? "client" : ch.direction === "s2c" ? "server" : "proxy";
    return el("span", "mark", `── ${MARKS[ch.mark] || ch.mark} from the ${who} ──`);
  }
  const bytes = bytesOf(ch.base64);
  const span = el("span", ch.direction, hexView ? asHex(bytes, ch.offset) : asText(bytes));
  span.title = `${ARROW[ch.direction]}, offset ${ch.offset}, ${bytes.length} byte(s)`;
  return span;
}

let streamEvicted = { c2s: 0, s2c: 0 };

function showStream(stream) {
  streamEvicted = stream.stream_evicted;
  const atEnd = streamEl.scrollTop + streamEl.clientHeight >= streamEl.scrollHeight - 4;
  const show = (ch) => { chunks.push(ch); streamEl.appendChild(chunkNode(ch)); };
  for (const ch of stream.chunks) {
    // chunks the capture evicted between two answers: marked where they were, not skipped
    if (lastChunk && ch.n > lastChunk + 1) show({ mark: "gap", count: ch.n - lastChunk - 1 });
    show(ch);
    lastChunk = ch.n;
  }
  while (chunks.length > MAX_CHUNKS_SHOWN) {
    const first = chunks.shift();
    streamEl.firstChild.remove();
    chunksDropped += first.mark === "gap" ? first.count : 1; // a gap mark: the chunks it said
  }
  const gone = chunksDropped ? [`${chunksDropped} earlier chunk(s) not shown (the pane keeps ` +
                                `the last ${MAX_CHUNKS_SHOWN}; the pcap has them)`] : [];
  for (const d of ["c2s", "s2c"]) {
    if (streamEvicted[d]) gone.push(`${ARROW[d]} bytes 0-${streamEvicted[d] - 1} evicted`);
  }
  document.getElementById("stream-note").textContent = gone.join("; ");
  if (atEnd) streamEl.scrollTop = streamEl.scrollHeight;
}

function setView(hex) {
  hexView = hex;
  document.getElementById("view-text").classList.toggle("on", !hex);
  document.getElementById("view-hex").classList.toggle("on", hex);
  streamEl.replaceChildren(...chunks.map(chunkNode));
}
document.getElementById("view-text").addEventListener("click", () => setView(false));
document.getElementById("view-hex").addEventListener("click", () => setView(true));

const filterInput = document.getElementById("filter");
function filterChanged() {
  matching = readFilter() ? new Set() : null; // nothing shown until the server says what matches
  document.getElementById("filter-note").textContent = unknownNote();
  filterInput.value = location.hash.slice(1);
  refreshMatching();
  queueRender();
  if (picked !== null) pick(picked);
}
document.getElementById("filter-bar").addEventListener("submit", (ev) => {
  ev.preventDefault();
  location.hash = filterInput.value.trim(); // a hashchange applies it
});
window.addEventListener("hashchange", filterChanged);
filterChanged();

connect();
