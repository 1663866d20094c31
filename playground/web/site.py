"""The web view's HTTP side: twisted.web resources over a ``capture.Capture``, on the proxy's reactor.

Routes (all JSON but the page and its assets; an error is ``{"error": ...}`` with its status:
404 unknown id or path, 400 bad query or body, 401 no or wrong token, 403 an action without its
header or from another origin, or a request a page on another site made (but a link opening a
page: ``_from_another_site``), 405 not GET, or not POST for an action):

* ``/`` the page; ``/static/NAME`` its assets, read once from the package
  (``importlib.resources``): nothing is fetched from elsewhere, and the Content-Security-Policy
  says so to the browser too;
* ``/api/connections`` the connections list, newest first, at most ``?limit=N`` (``more``: ask
  again with ``?before=`` the answer's ``before``); ``?since=SEQ``: only what changed after it;
* ``/api/connections/{id}`` one connection and its exchanges (``?after=INDEX``, ``?limit=N``;
  about ``MAX_EXCHANGES_TEXT`` characters of requests and replies at most; ``more``: ask again
  with ``?after=`` the answer's ``next_after``);
* on both, the view's filter (``capture.Filter``): ``?proto=resp|http|text|hex``, ``?cmd=GLOB``,
  ``?http=[METHOD[,METHOD...]] [PATH-GLOB]``, ``?errors=1``, ``?slow=MS``, ``?client=GLOB``: only the
  connections that match, and of a connection only its matching exchanges (a bad value: 400
  naming the parameter); a list answer, and a filtered connection's, reads at most
  ``MAX_SCAN_ROWS`` exchange rows' worth
  (``filterscan.FilterScan`` remembers how far it read; a row it checks on its stored form,
  the sink's ``peek``, counts a fraction of one), and says ``more`` when it stopped;
* ``/api/latency`` the pictures' numbers (``latency.Latency.snapshot``): per command name its
  count, errors, p50/p90/p99/max and histogram buckets, and exchanges per second; it follows
  the filter's ``proto``, ``cmd`` (RESP names) and ``http`` methods, and says which of the
  filter's other parts it ``ignores``;
* ``/api/connections/{id}/stream`` its stream in arrival order, FIN/RST marks in place
  (``?after=N``, ``?limit=N``, ``?encoding=base64|text``: text is escaped, ``\\r`` ``\\n``
  ``\\xNN``), about ``MAX_STREAM_ANSWER`` bytes at most; ``more``: ask again ``?after=``;
* ``/api/connections/{id}.pcap`` and ``.jsonl``: that connection as a file to download
  (``playground.web.export``; ``X-Tcpplay-Evicted`` names the stream bytes the pcap lacks);
* ``POST /api/connections/{id}/close`` with ``{"how": "fin"|"rst"}``: close that open pair
  gracefully or by reset (``close``, the ``WebService``'s, reaches the proxies); 202 when
  asked, 404 when it is not open. It must carry ``X-Tcpplay-Action: close``: a custom header
  makes a cross-site request a CORS preflight, which this site never grants, so a page on
  another site cannot send it (a plain form POST cannot set a header); and an ``Origin`` header,
  when present, must name this host;
* ``/api/events`` Server-Sent Events: one message per tick (``interval``, 0.2 s: at most five a
  second) to each client that is behind, ``capture.changes(since)`` as JSON with ``id:
  EPOCH-SEQ`` (a reconnecting EventSource sends it back as ``Last-Event-ID`` and gets what it
  missed, or a ``resync`` when the proxy restarted or it is too far behind). A client whose connection does not take what is sent (the transport pauses it)
  gets nothing more, and after ``stall_ticks`` ticks it is dropped (``abortConnection``): it
  never makes the proxy wait, and when it comes back it resyncs.

``token``: when set, every request must carry it (``?token=`` or the ``X-Tcpplay-Token``
header; ``Authorization: Bearer`` too), compared in constant time; the page passes it on.
"""

from __future__ import annotations

import base64
import json
import secrets
from importlib import resources
from time import perf_counter
from urllib.parse import quote

from twisted.internet import task
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.web import resource, server
from zope.interface import implementer

from playground.common.defaultreactor import default_reactor
from playground.common.digits import decimal
from playground.common.limits import CappedSite
from playground.web.capture import BadFilter, Capture, Filter, StreamEvicted
from playground.web.export import evicted_ranges, jsonl_pieces, pcap_pieces
from playground.web.filterscan import FilterScan
from playground.web.latency import PROTOCOLS as TIMED_PROTOCOLS
from playground.web.latency import Latency
from playground.web.options import authorised, host_refused
from playground.web.sink import rows as exchange_rows

ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "app.css": "text/css; charset=utf-8", "plots.js": "text/javascript; charset=utf-8"}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
MAX_LIMIT = 5000  # rows or chunks one API answer holds at most
MAX_SCAN_ROWS = 2000  # formatted exchange rows' worth a filtered list answer reads (tens of ms)
MAX_STREAM_ANSWER = 1 << 20  # stream bytes one API answer holds at most (one chunk at least)
MAX_EXCHANGES_TEXT = 1 << 20  # request and reply text one connection's answer holds, about
MAX_EVENT_ROWS = 1000  # connection rows one event message holds at most
DOWNLOAD_TURN = 0.004  # seconds of download pieces per reactor turn, at most (and one piece)
MAX_EVENT_CLIENTS = 32
MAX_ACTION_BODY = 1024
ACTION_HEADER = b"x-tcpplay-action"
CLOSE_HOW = ("fin", "rst")
DOWNLOADS = (".pcap", ".jsonl")  # /api/connections/{id}.pcap and .jsonl
_ID_DIGITS = 19  # a connection id or an event seq: ASCII digits, no more than a 63-bit one has


class BadQuery(ValueError):
    pass


def load_assets() -> dict[str, bytes]:
    """The page's files, from the package (``playground/web/static``)."""
    folder = resources.files("playground.web") / "static"
    return {name: (folder / name).read_bytes() for name in ASSETS}


def stream_text(data: bytes) -> str:
    """Bytes as escaped text: printable ASCII as it is, ``\\r``, ``\\n``, ``\\t``, ``\\\\``
    and ``\\xNN`` for the rest (one line per ``\\n``)."""
    out = []
    for b in data:
        if b == 0x0A:
            out.append("\\n\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x09:
            out.append("\\t")
        elif b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def _filter_arg(request) -> Filter:
    query = {}
    for name in Filter.FIELDS:
        values = request.args.get(name.encode())
        if values:
            query[name] = values[-1].decode("utf-8", "replace")
    try:
        return Filter.parse(query)
    except BadFilter as e:
        raise BadQuery(str(e))


def _int_arg(request, name: str, default: int, lowest: int = 0, highest: int = 1 << 62) -> int:
    values = request.args.get(name.encode())
    if not values:
        return default
    raw = values[-1]  # ASCII digits, a minus sign allowed (to be named out of range below):
    value = decimal(raw[1:] if raw[:1] == b"-" else raw, 30)  # int() alone takes +5, 1_0, ' 5'
    if value is None:
        got = raw[:40].decode("utf-8", "replace")  # as typed, not a bytes repr
        raise BadQuery(f"{name}: expected an integer, got {got!r}")
    if raw[:1] == b"-":
        value = -value
    if not lowest <= value <= highest:
        raise BadQuery(f"{name}: must be {lowest}-{highest}, got {value}")
    return value


@implementer(IPushProducer)
class EventClient:
    """One ``/api/events`` stream: the seq it has seen, and whether its transport keeps up."""

    def __init__(self, request, seq: int):
        self.request = request
        self.seq = seq
        self.paused = False
        self.stalled = 0  # ticks it had something to get while paused
        self.gone = False

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.stalled = 0

    def stopProducing(self):
        self.gone = True


@implementer(IPushProducer)
class PieceWriter:
    """Writes a download (``pieces``: an iterator of bytes, each a bounded piece of work) to
    its ``request`` through ``cooperator``, whose ticks are bounded in time
    (``DOWNLOAD_TURN``): a connection's file of a full capture (5 s of formatting for 960,000
    exchanges as JSON lines) goes out over many reactor turns, the proxy forwarding between
    them. A push producer to the request: paused while the client's transport is full, so
    what is made waits in the iterator, not in a buffer; stopped when the client goes. A piece
    that raises is logged and the connection dropped: the client sees a cut transfer, never
    a file that looks whole."""

    log = Logger()

    def __init__(self, request, pieces, cooperator: task.Cooperator):
        self.request = request
        self.done = False
        self.paused = False
        self.task = cooperator.cooperate(self._each(pieces))
        request.registerProducer(self, True)
        request.notifyFinish().addErrback(self._gone)
        self.task.whenDone().addCallbacks(self._finished, self._failed)

    def _each(self, pieces):
        request = self.request
        for piece in pieces:
            if piece:
                request.write(piece)  # looked up each time: twisted.web replaces it for HEAD
            yield None

    def pauseProducing(self):
        if not (self.done or self.paused):
            self.paused = True
            self.task.pause()

    def resumeProducing(self):
        if self.paused and not self.done:
            self.paused = False
            self.task.resume()

    def stopProducing(self):
        if not self.done:
            self.done = True
            self.task.stop()

    def _gone(self, _):
        self.stopProducing()  # the client went before the end

    def _finished(self, _):
        self.done = True
        self.request.unregisterProducer()
        self.request.finish()

    def _failed(self, failure):
        self.done = True
        if failure.check(task.TaskStopped):
            return None  # stopProducing: the client is gone
        if failure.check(StreamEvicted):  # the capture's bound, not a bug: no traceback
            self.log.warn("web view: a download's connection was evicted from the capture "
                          "while it was sent; the download is cut")
        else:
            self.log.failure("web view: a download failed; its connection is dropped", failure)
        self.request.unregisterProducer()
        transport = getattr(self.request, "transport", None)
        if transport is not None:
            transport.abortConnection()
        return None


def _turn_over(seconds: float):
    """A cooperator tick's end: ``seconds`` from now (as ``task.Cooperator``'s own timer)."""
    end = perf_counter() + seconds
    return lambda: perf_counter() >= end


class EventFeed:
    """The ticks of ``/api/events``: runs only while a client is connected."""

    log = Logger()

    def __init__(self, capture: Capture, reactor=None, interval: float = 0.2,
                 stall_ticks: int = 25):
        self.capture = capture
        self.reactor = default_reactor(reactor)
        self.interval = interval
        self.stall_ticks = stall_ticks
        self.clients: list[EventClient] = []
        # event ids are EPOCH-SEQ: a page that reconnects to a restarted proxy resyncs
        self.epoch = secrets.token_hex(4)
        self.dropped = 0  # clients dropped for not reading
        self._loop = None

    def add(self, request, since: int) -> EventClient:
        client = EventClient(request, since)
        self.clients.append(client)
        request.registerProducer(client, True)
        request.notifyFinish().addBoth(lambda _: self._remove(client))
        self._send(client, {})  # what it missed, at once
        if self._loop is None:
            self._loop = task.LoopingCall(self.tick)
            self._loop.clock = self.reactor
            self._loop.start(self.interval, now=False).addErrback(
                lambda f: self.log.failure("web event feed failed", f))
        return client

    def _remove(self, client: EventClient) -> None:
        client.gone = True
        if client in self.clients:
            self.clients.remove(client)
        if not self.clients and self._loop is not None:
            loop, self._loop = self._loop, None
            if loop.running:
                loop.stop()

    def tick(self) -> None:
        self.capture.sync()  # what the sink queued is in, so the seq says it
        seq = self.capture.seq
        made: dict[int, tuple[int, bytes]] = {}  # a message per seq the clients are at
        for client in list(self.clients):
            if client.gone or client.seq == seq:
                continue
            if client.paused:
                client.stalled += 1
                if client.stalled > self.stall_ticks:
                    self.dropped += 1
                    self.log.info("web: dropping an event stream that does not read")
                    self._remove(client)
                    transport = client.request.channel.transport if client.request.channel else None
                    if transport is not None:
                        transport.abortConnection()
                continue
            self._send(client, made)

    def _send(self, client: EventClient, made: dict[int, tuple[int, bytes]]) -> None:
        """Send ``client`` what changed since its seq: made once a tick for the clients at one
        seq (``made``: seq -> the seq it brings them to, the message), which after a tick is
        all that keep up (32 pages each had their 1000 rows made and dumped: 113 ms a tick)."""
        message = made.get(client.seq)
        if message is None:
            changes = self.capture.changes(client.seq, self.reactor.seconds(), MAX_EVENT_ROWS)
            payload = json.dumps(changes, separators=(",", ":"))
            message = made[client.seq] = (
                changes["seq"], f"id: {self.epoch}-{changes['seq']}\ndata: {payload}\n\n".encode())
        client.seq = message[0]
        client.request.write(message[1])

    def stop(self) -> None:
        for client in list(self.clients):
            self._remove(client)
            if not client.request.finished and client.request.channel is not None:
                client.request.unregisterProducer()
                client.request.finish()


class WebRoot(resource.Resource):
    """Every route (see the module docstring); one leaf resource that dispatches by path."""

    isLeaf = True
    log = Logger()

    def __init__(self, capture: Capture, token: str | None = None, reactor=None,
                 assets: dict[str, bytes] | None = None, feed: EventFeed | None = None,
                 describe=exchange_rows, close=None, latency: Latency | None = None,
                 peek=None, exchange_row=None):
        super().__init__()
        self.latency = latency if latency is not None else Latency()
        self.close = close  # (pair_id, how) -> bool: closed; None: the view cannot act
        self.capture = capture
        self.describe = describe  # an exchanges entry -> its table rows
        self.token = token
        self.reactor = default_reactor(reactor)
        self.assets = assets if assets is not None else load_assets()
        self.feed = feed if feed is not None else EventFeed(capture, self.reactor)
        # peek, exchange_row: a filter's look at a RESP row without formatting it (the sink's)
        self.scan = FilterScan(describe, peek, exchange_row)
        # downloads, a bounded slice of their pieces a reactor turn (PieceWriter)
        self.cooperator = task.Cooperator(
            terminationPredicateFactory=lambda: _turn_over(DOWNLOAD_TURN),
            scheduler=lambda tick: self.reactor.callLater(0, tick))
        self._forgotten = 0  # capture.evicted_connections when the scan last forgot the gone

    # -- plumbing ----------------------------------------------------------------------------
    def _json(self, request, obj, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(obj, separators=(",", ":")).encode()

    def _error(self, request, status: int, message: str) -> bytes:
        return self._json(request, {"error": message, "status": status}, status)

    def render(self, request):
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        if not authorised(request, self.token):
            return self._error(request, 401, "a token is needed: add ?token=TOKEN (printed at "
                                             "start) or the X-Tcpplay-Token header")
        if host_refused(request, self.token):
            return self._error(request, 403, "without a token, the view answers only a Host "
                                             "naming loopback (127.0.0.1, [::1], localhost): "
                                             "a page on another name may be DNS rebinding "
                                             "(behind a proxy of your own: set --web-token)")
        if _from_another_site(request):
            return self._error(request, 403, "a request from a page on another site (a frame, "
                                             "an image, a script's): the view answers its own "
                                             "page, and a link that opens it")
        self.capture.sync()  # an answer sees everything the sink was handed
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        if path and path[-1] == "" and len(path) > 1:
            path = path[:-1]
        if len(path) == 4 and path[:2] == ["api", "connections"] and path[3] == "close":
            if request.method != b"POST":
                request.setHeader(b"allow", b"POST")
                return self._error(request, 405, "only POST")
            return self._close(request, path[2])
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self._error(request, 405, "only GET")
        try:
            return self._route(request, path)
        except BadQuery as e:
            return self._error(request, 400, str(e))

    def _route(self, request, path):
        if path in ([], [""], ["index.html"]):
            return self._asset(request, "index.html")
        if path == ["favicon.ico"]:
            request.setResponseCode(204)  # none: a browser asks for it anyway
            return b""
        if path[0] == "static" and len(path) == 2 and path[1] in self.assets:
            return self._asset(request, path[1])
        if path[0] != "api" or len(path) < 2:
            return self._error(request, 404, "no such page")
        if path[1:] == ["connections"]:
            return self._connections(request)
        if path[1:] == ["events"]:
            return self._events(request)
        if path[1:] == ["latency"]:
            return self._latency(request)
        if path[1] == "connections" and len(path) == 3 and path[2].endswith(DOWNLOADS):
            return self._download(request, path[2])
        if path[1] == "connections" and len(path) in (3, 4):
            pair = decimal(path[2], _ID_DIGITS)
            if pair is None:
                return self._error(request, 404, f"no connection {path[2][:40]!r}")
            c = self.capture.get(pair)
            if c is None:
                return self._error(request, 404, f"no connection {pair} (unknown or evicted)")
            if len(path) == 3:
                return self._connection(request, c)
            if path[3] == "stream":
                return self._stream(request, c)
        return self._error(request, 404, "no such API path")

    def _asset(self, request, name: str) -> bytes:
        request.setHeader(b"content-type", ASSETS[name].encode())
        request.setHeader(b"content-security-policy", CSP.encode())
        request.setHeader(b"cache-control", b"no-cache")
        body = self.assets[name]
        if name == "index.html" and self.token is not None:
            # the page's own requests for its assets carry the token too (app.js adds it to
            # the API's); only a request that had it gets this page
            query = b"?token=" + quote(self.token, safe="").encode()
            for asset in (b"static/app.css", b"static/app.js", b"static/plots.js"):
                body = body.replace(b'"' + asset + b'"', b'"' + asset + query + b'"')
        return body

    # -- the API -----------------------------------------------------------------------------
    def _connections(self, request) -> bytes:
        capture = self.capture
        now = self.reactor.seconds()
        since = _int_arg(request, "since", 0)
        limit = _int_arg(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        before = _int_arg(request, "before", 0)
        shown = _filter_arg(request)
        if since:  # the oldest changes first, at most ``limit``: ask again from the seq
            out = capture.changes(since, now, limit)
            candidates = [(capture.get(row["id"]), row) for row in out["connections"]]
        else:
            out = {"seq": capture.seq, "resync": True, "evicted": [],
                   "evicted_total": capture.evicted_connections}
            candidates = ((c, None) for c in reversed(capture.connections.values())
                          if not before or c.id < before)  # newest first
            if shown.on_exchanges and self._forgotten != capture.evicted_connections:
                self._forgotten = capture.evicted_connections
                self.scan.forget(capture.connections)
        rows: list[dict] = []
        budget, more, resume = MAX_SCAN_ROWS, False, None
        for c, row in candidates:
            if not since and len(rows) >= limit:
                more, resume = True, rows[-1]["id"]
                break
            row = row if row is not None else c.summary(now)
            if shown.active:
                matched, read = self.scan.matches(shown, c, row, budget)
                budget -= read
                if matched is None:  # read enough for one answer: the rest on the next ask
                    more, resume = True, c.id + 1
                    break
                if not matched:
                    continue
            rows.append(row)
        if since and more:
            out["seq"] = since  # ask again from the same point: it goes on where it stopped
        elif since:
            more = out["seq"] < capture.seq  # the limit stopped it: the rest from its seq
        out["connections"] = rows
        out["more"] = more
        if not since:
            out["before"] = resume
        out["capture"] = {"connections": len(capture.connections),
                          "max_connections": capture.max_connections,
                          "bytes": capture.bytes, "max_bytes": capture.max_bytes,
                          "evicted_connections": capture.evicted_connections,
                          "evicted_bytes": capture.evicted_bytes}
        return self._json(request, out)

    def _connection(self, request, c) -> bytes:
        after = _int_arg(request, "after", 0)
        limit = _int_arg(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        shown = _filter_arg(request)
        rows, read_to, more = self.scan.rows(shown, c, after, limit,
                                             MAX_SCAN_ROWS if shown.on_exchanges else limit,
                                             MAX_EXCHANGES_TEXT)
        return self._json(request, {"connection": c.summary(self.reactor.seconds()),
                                    "exchanges": rows, "more": more, "next_after": read_to,
                                    "exchanges_evicted": c.exchanges_evicted})

    def _stream(self, request, c) -> bytes:
        after = _int_arg(request, "after", 0)
        limit = _int_arg(request, "limit", MAX_LIMIT, 1, MAX_LIMIT)
        encoding = (request.args.get(b"encoding") or [b"base64"])[-1]
        if encoding not in (b"base64", b"text"):
            raise BadQuery("encoding: base64 or text")
        chunks = []
        size = 0
        stored = self.capture.stream(c.id, after, limit + 1)
        for ch in stored[:limit]:
            if size >= MAX_STREAM_ANSWER:
                break
            size += len(ch.data)
            item = {"n": ch.n, "ts": ch.ts, "direction": ch.direction, "offset": ch.offset}
            if ch.mark is not None:
                item["mark"] = ch.mark
            elif encoding == b"text":
                item["text"] = stream_text(bytes(ch.data))
                item["length"] = len(ch.data)
            else:
                item["base64"] = base64.b64encode(ch.data).decode("ascii")
                item["length"] = len(ch.data)
            chunks.append(item)
        return self._json(request, {"id": c.id, "stream_evicted": dict(c.stream_evicted),
                                    "chunks": chunks, "more": len(chunks) < len(stored)})

    def _download(self, request, name: str) -> bytes:
        stem, _, kind = name.rpartition(".")
        pair = decimal(stem, _ID_DIGITS)
        c = self.capture.get(pair) if pair is not None else None
        if c is None:
            return self._error(request, 404, f"no connection {stem[:40]!r} (unknown or evicted)")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-disposition",
                          f'attachment; filename="tcpplay-{c.id}.{kind}"'.encode())
        if kind == "pcap":
            request.setHeader(b"content-type", b"application/vnd.tcpdump.pcap")
            evicted = evicted_ranges(c)
            if evicted:
                request.setHeader(b"x-tcpplay-evicted", f"bytes {evicted}".encode())
            pieces = pcap_pieces(c, self.capture.stream_windows(c.id))
        else:
            request.setHeader(b"content-type", b"application/x-ndjson; charset=utf-8")
            pieces = jsonl_pieces(c, self.describe, self.capture.exchange_windows(c.id))
        if request.method == b"HEAD":  # the headers alone: nothing to make
            return b""
        PieceWriter(request, pieces, self.cooperator)
        return server.NOT_DONE_YET

    def _latency(self, request) -> bytes:
        shown = _filter_arg(request)
        protocols = tuple(p for p in TIMED_PROTOCOLS if not shown.proto or p == shown.proto)
        if shown.cmd:  # a command name is RESP's, a method HTTP's (as on the exchanges)
            protocols = tuple(p for p in protocols if p == "resp")
        if shown.http_method:
            protocols = tuple(p for p in protocols if p == "http")
        methods = shown.http_method.split(",") if shown.http_method not in ("", "*") else None

        def named(protocol: str, name: str) -> bool:
            if protocol == "resp":
                return shown.cmd_matches(name)
            return methods is None or name in methods

        out = self.latency.snapshot(self.reactor.seconds(), protocols, named)
        out["ignores"] = [name for name, on in (
            ("http", shown.http_path not in ("", "*")), ("errors", shown.errors),
            ("slow", shown.slow is not None), ("client", bool(shown.client))) if on]
        return self._json(request, out)

    def _close(self, request, pair_text: str) -> bytes:
        if request.getHeader(ACTION_HEADER) != b"close":
            return self._error(request, 403, "an action needs the header X-Tcpplay-Action: close")
        origin = request.getHeader(b"origin")
        if origin is not None and _origin_host(origin) != request.getHeader(b"host"):
            return self._error(request, 403, "an action from another origin")
        body = request.content.read(MAX_ACTION_BODY + 1) if request.content is not None else b""
        try:
            how = json.loads(body)["how"] if len(body) <= MAX_ACTION_BODY else None
        except (ValueError, TypeError, KeyError):
            how = None
        if how not in CLOSE_HOW:
            return self._error(request, 400, 'the body must be {"how": "fin"} or {"how": "rst"}')
        pair = decimal(pair_text, _ID_DIGITS)
        if pair is None:
            return self._error(request, 404, f"no connection {pair_text[:40]!r}")
        if self.close is None or not self.close(pair, how):
            return self._error(request, 404, f"no open connection {pair}")
        return self._json(request, {"id": pair, "how": how, "closing": True}, 202)

    def _events(self, request):
        if len(self.feed.clients) >= MAX_EVENT_CLIENTS:
            return self._error(request, 503, "too many event streams")
        since = _int_arg(request, "since", 0)
        last = request.getHeader(b"last-event-id")
        if last:
            epoch, _, seq = last.decode("ascii", "replace").partition("-")
            since = (decimal(seq, _ID_DIGITS) or 0) if epoch == self.feed.epoch else 0
        request.setHeader(b"content-type", b"text/event-stream")
        request.setHeader(b"cache-control", b"no-store")
        if request.method == b"HEAD":  # the headers alone: no stream to hold a place for
            return b""
        request.write(b"retry: 1000\n\n")
        self.feed.add(request, since)
        return server.NOT_DONE_YET


def _from_another_site(request) -> bool:
    """Whether the browser says (Fetch Metadata: ``Sec-Fetch-Site``, which a page cannot set)
    that a page of another origin made the request, and it is not a link or an address
    opening a page in its tab (a top-level navigation): a frame, an image, a script's fetch
    or event stream. A page on any site can ask the loopback view so (its Host is loopback;
    only reading the answer is refused), and 40 frames of ``/api/events`` on names under
    ``.localhost`` (6 connections a name in a browser) held all the view's event streams:
    the user's page said ``reconnecting…``. Without the header (curl, a client that is not a
    browser): not refused."""
    if request.getHeader(b"sec-fetch-site") in (None, b"same-origin", b"none"):
        return False
    return not (request.getHeader(b"sec-fetch-mode") == b"navigate"
                and request.getHeader(b"sec-fetch-dest") == b"document")


def _origin_host(origin: bytes) -> bytes:
    """``http://host:port`` -> ``host:port``: what a same-origin request's Host header says
    (``null``, an opaque origin, gives ``b""``: never a host)."""
    return origin.partition(b"://")[2].rstrip(b"/")


def make_site(capture: Capture, token: str | None = None, reactor=None,
              describe=exchange_rows, close=None, latency: Latency | None = None,
              peek=None, exchange_row=None) -> server.Site:
    root = WebRoot(capture, token=token, reactor=reactor, describe=describe, close=close,
                   latency=latency, peek=peek, exchange_row=exchange_row)
    site = CappedSite(root, reactor=reactor)
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # no access log: the proxy's log is for the proxy
    site.feed = root.feed
    return site
