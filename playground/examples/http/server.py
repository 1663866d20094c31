"""HTTP/1.1 responder: the Twisted adapter around ``parser`` (parsing) and ``app`` (endpoints).

``twistd -n tcpplay http --listen 8080``, then ``curl -v http://127.0.0.1:8080/get``.

Per connection: bytes go to the pure parser; each request becomes a slot in an in-order queue;
a slot's response is written only when every earlier one is done (pipelining), so a slow
``/delay`` holds later answers back. ``Expect: 100-continue`` gets ``100 Continue`` once the
request is at the front of the queue and its endpoint wants the body. Errors (limits, bad
syntax, timeouts) are answered with their status, then the connection is half-closed and
drained briefly, so the client reads the answer instead of a reset.

Flow control: the protocol is the transport's streaming producer; while the client does not
read, no further response is produced and no further request is read. The parser reads at most
``max_pipeline`` requests ahead of the responses; past ``MAX_AHEAD`` bytes of responses made and
not yet written, a request's response is made when its turn comes, and one pass writes about that
much before the transport may pause us.

Timers: ``--header-timeout`` from the first byte of a request head (or from the connection's
start) to the end of the head (slowloris: 408); ``--keepalive-timeout`` while idle between
requests (quiet close); ``--body-timeout`` from the end of a request head (or from the
``100 Continue``) to the end of its body, however steadily the bytes trickle in (408);
``--idle-timeout`` while a body is being read with no bytes coming, or while the client is not
reading our response.
"""

from __future__ import annotations

from collections import deque
from time import time

from twisted.application import service
from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.logger import Logger, LogLevel
from zope.interface import implementer

from playground.common import twistedprivate
from playground.common.limits import LimitedFactory
from playground.common.listening import ListeningService
from playground.common.options import (
    ServerOptions,
    byte_count,
    limit_arguments,
    non_negative_float,
    parameter,
    positive_int,
)
from playground.examples.http.app import AppLimits, HttpApp, Response
from playground.examples.http.parser import (
    CONTINUE,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_REQUEST_LINE,
    LAST_CHUNK,
    SERVER,
    BodyChunk,
    HttpRequestParser,
    RequestEnd,
    RequestHead,
    bodiless_status,
    chunk,
    error_response,
    http_date,
    status_text,
)

LINGER = 2.0  # seconds to drain a client's input after our final response, before closing
# Bytes held ahead of their turn on one connection, request bodies and made responses: past it,
# a pipelined request's response is made when the request reaches the front of the queue (a
# client pipelining 32 /bytes/10485760 and not reading held 320 MiB of made responses; 4 such
# clients 2.7 GB), and no further request is read until it drops (31 bodies of 1 MiB behind a
# /delay held 31 MiB a connection: 31 GB at --max-connections 1000).
MAX_AHEAD = 1 << 20


_HEADER_BLOCKS: dict = {}  # an endpoint's header fields -> (their text, has Content-Length)


def _header_block(headers: tuple) -> tuple[str, bool]:
    """``Name: value\\r\\n`` for each field, and whether one is ``Content-Length``: made once
    per distinct set of fields (endpoints answer with a few constant ones; at most 256 kept)."""
    block = _HEADER_BLOCKS.get(headers)
    if block is None:
        block = ("".join([f"{name}: {value}\r\n" for name, value in headers]),
                 any(name == "Content-Length" for name, _ in headers))
        if len(_HEADER_BLOCKS) < 256:
            _HEADER_BLOCKS[headers] = block
    return block


class _Slot:
    """One request in the response queue."""

    __slots__ = ("head", "parts", "complete", "response", "ready", "timer", "error", "close",
                 "continue_sent", "want_continue", "streaming", "sent", "started", "ahead")

    def __init__(self, head: RequestHead | None, started: float):
        self.head = head
        self.parts: list[bytes] = []
        self.complete = False
        self.response: Response | None = None
        self.ready = False
        self.timer = None
        self.error: tuple[int, str, bool] | None = None  # status, reason, to a HEAD request
        self.close = False
        self.ahead = 0  # the response's bytes, made ahead of its turn
        self.continue_sent = False
        self.want_continue = False
        self.streaming = False
        self.sent = 0
        self.started = started


@implementer(IHalfCloseableProtocol, IPushProducer)
class HttpProtocol(protocol.Protocol):
    log = Logger()
    peer = "?"
    peer_host = "?"

    def __init__(self):
        self.queue: deque[_Slot] = deque()
        self._current: _Slot | None = None
        self._out: list[bytes] = []
        self._finished: list = []  # (slot, end time) answered, not yet logged
        self._timer = None
        self._timer_kind = None
        self._deadline = 0.0
        self._body_deadline = None  # when the body being read must be complete (None: no limit)
        self._write_paused = False
        self._read_held = False
        self._input_stopped = False
        self._read_closed = False
        self._eof_pending = False
        self._closing = False
        self._direct = False
        self._plain = False
        self._send_mark = None
        self.requests = 0
        self._ahead = 0  # bytes of the responses made and not yet written (see MAX_AHEAD)
        self._bodies = 0  # bytes of the request bodies read and not yet answered
        self.parser: HttpRequestParser | None = None

    # -- connection life

    def connectionMade(self):
        f = self.factory
        self.reactor = f.reactor
        self.app = f.app
        self.parser = HttpRequestParser(
            f.max_request_line, f.max_header_bytes, f.max_headers, f.max_body
        )
        self._access_log = self.log  # bound once (each ``self.log`` builds a new Logger)
        self.transport.registerProducer(self, True)
        # plain TCP (no TLS layered on the socket): direct sends and half-close are safe
        self._plain = twistedprivate.direct_write_supported(self.transport)
        self._direct = f.direct_send and self._plain
        self._arm()

    def dataReceived(self, data):
        if self._input_stopped:
            return  # draining after a final response, or after an error
        now = self.reactor.seconds()
        if self._timer_kind == "body":
            self._cancel_timer()  # progress
        try:
            events = self.parser.feed(data, now, self._allowance())
            if events and self._timer_kind == "keepalive":
                # the end of an idle period (empty lines before a request line are skipped
                # and end none: a client sending one now and then would never be closed)
                self._cancel_timer()
            self._handle(events, now)
        except Exception:
            self.log.failure("http: unexpected error handling input from {peer}", peer=self.peer)
            self._fail(500, "internal error", now)
        self._settle()

    def readConnectionLost(self):
        self._read_closed = True
        if self._closing:
            self.transport.loseConnection()
            return
        self._eof_pending = not self._input_stopped  # after any requests held back are read
        self._settle()

    def writeConnectionLost(self):
        if self._closing:
            return  # our own half-close after the last response: keep draining input
        self._abort()  # the client stopped reading

    def connectionLost(self, reason):
        self._stop_timer()
        for slot in self.queue:
            if slot.timer is not None and slot.timer.active():
                slot.timer.cancel()
        self.queue.clear()
        self.factory.connectionClosed(self)

    # -- producer (the transport tells us when its write buffer is full or drained)

    def pauseProducing(self):
        self._write_paused = True
        self.transport.pauseProducing()
        self._arm()

    def resumeProducing(self):
        self._write_paused = False
        if not self._read_held and not self._closing:
            self.transport.resumeProducing()
        self._settle()

    def stopProducing(self):
        pass

    # -- input

    def _allowance(self) -> int:
        if self._ahead + self._bodies >= MAX_AHEAD and self.queue:
            return 0
        return max(0, self.factory.max_pipeline - len(self.queue))

    def _handle(self, events, now):
        for ev in events:
            kind = type(ev)
            if kind is BodyChunk:
                self._current.parts.append(ev.data)
                self._bodies += len(ev.data)
            elif kind is RequestHead:
                if self._timer_kind == "header":
                    self._cancel_timer()  # the head came in time; the next one gets its own
                slot = _Slot(ev, now)
                self.queue.append(slot)
                self._current = slot
                self._body_deadline = None
                if ev.expect_continue and ev.has_body:
                    if self.app.wants_body(ev):
                        slot.want_continue = True  # the body deadline starts at 100 Continue
                    else:  # answer without reading the body, then close (RFC 9110 10.1.1)
                        self._respond(slot, b"")
                        slot.close = True
                        self._stop_input()
                        return
                elif ev.has_body:
                    self._start_body_deadline(now)
            elif kind is RequestEnd:
                slot, self._current = self._current, None
                if self._ahead < MAX_AHEAD or slot is self.queue[0]:
                    self._respond(slot, self._body(slot))
                else:  # made when its turn comes (``_pump``); its body waits in ``parts``
                    slot.complete = True
            else:  # ParseError
                self._fail(ev.status, ev.reason, now)

    def _body(self, slot: _Slot) -> bytes:
        """The request body read for ``slot``, taken out of it (and out of ``_bodies``)."""
        body = b"".join(slot.parts)
        slot.parts = []
        self._bodies -= len(body)
        return body

    def _respond(self, slot: _Slot, body: bytes):
        slot.complete = True
        head = slot.head
        try:
            response = self.app.respond(head, body, self.peer_host)
        except Exception:
            self.log.failure("http: endpoint failed for {target}", target=head.target)
            response = Response(500, (("Content-Type", "text/plain"),), b"internal error\n")
        slot.response = response
        slot.ahead = _size(response)  # counted in _ahead until it is written (_start)
        self._ahead += slot.ahead
        if response.delay > 0:
            slot.timer = self.reactor.callLater(response.delay, self._delayed, slot)
        else:
            slot.ready = True

    def _delayed(self, slot: _Slot):
        slot.timer = None
        slot.ready = True
        self._settle()

    def _fail(self, status: int, reason: str, now: float):
        """Answer ``status`` after the responses already queued, then close."""
        slot = self._current
        if slot is None or slot.complete:
            slot = _Slot(None, now)
            self.queue.append(slot)
        self._current = None
        slot.complete = True
        slot.error = (status, reason, self.parser.head_request)
        slot.close = True
        slot.ready = True
        self._stop_input()

    def _stop_input(self):
        self._input_stopped = True
        self._current = None

    def _settle(self):
        """After any input or timer: write what is ready, parse what the queue now has room
        for, flush once, set read flow control and the timer."""
        parser = self.parser
        for _ in range(self.factory.max_pipeline + 1):
            self._pump()
            if self._closing or self._input_stopped or not parser.held:
                break
            allowance = self._allowance()
            if not allowance:
                break
            now = self.reactor.seconds()
            self._handle(parser.feed(b"", now, allowance), now)
        if self._eof_pending and not parser.held and not self._closing:
            self._eof_pending = False
            if not self._input_stopped:
                now = self.reactor.seconds()
                self._handle(parser.eof(now), now)
                self._input_stopped = True
            self._pump()
        self._flush()
        # read no further while the parser holds requests back for lack of queue room
        hold = parser.held and not self._closing and not self._input_stopped
        if hold != self._read_held:
            self._read_held = hold
            if hold:
                self.transport.pauseProducing()
            elif not self._write_paused and not self._closing:
                self.transport.resumeProducing()
        self._arm()

    # -- output

    def _pump(self):
        queue = self.queue
        out = 0  # bytes put in ``_out`` here: past MAX_AHEAD they go to the transport, which
        # pauses us when its buffer is full (all the ready responses went in one write before)
        while queue and not self._write_paused and not self._closing:
            slot = queue[0]
            if slot.response is None and slot.complete and slot.error is None:
                self._respond(slot, self._body(slot))  # held back by MAX_AHEAD
            if not slot.ready:
                if slot.want_continue and not slot.continue_sent and not slot.complete:
                    slot.continue_sent = True
                    self._out.append(CONTINUE)
                    if slot is self._current:
                        self._start_body_deadline(self.reactor.seconds())
                break
            if slot.streaming:
                break
            if not self._start(slot):
                break  # streaming: the piece timer continues
            self._done(slot)
            out += slot.sent
            if out >= MAX_AHEAD:
                out = 0
                self._flush()
        if not queue and not self._closing and self._input_stopped:
            self._close()  # nothing more will be read (error, closing request, or EOF)

    def _date(self) -> str:
        f = self.factory
        now = int(self.reactor.seconds())
        if now != f._date_second:
            f._date_second = now
            f._date_value = http_date(now)
            f._preamble = f"Server: {SERVER}\r\nDate: {f._date_value}\r\n"
        return f._date_value

    def _start(self, slot: _Slot) -> bool:
        """Write the response (or its head and first pieces); True when it is complete."""
        if slot.error is not None:
            status, reason, head = slot.error
            data = error_response(status, reason, self._date(), head)
            self._out.append(data)
            slot.sent = len(data)
            return True
        head = slot.head
        resp = slot.response
        self._ahead -= slot.ahead
        status = resp.status
        keep = head.keep_alive and not slot.close
        slot.close = not keep
        self._date()
        fields, has_length = _header_block(resp.headers)
        headers = [status_text(status), self.factory._preamble, fields]
        body = resp.body
        pieces = resp.pieces
        chunked = False
        if bodiless_status(status):
            body = b""
            pieces = None
        elif pieces is not None:
            if resp.chunked and head.version == "HTTP/1.1":
                chunked = True
                headers.append("Transfer-Encoding: chunked\r\n")
                if not resp.interval:
                    body = b"".join([chunk(p) for p in pieces]) + LAST_CHUNK
                    pieces = None
            else:
                headers.append(f"Content-Length: {sum(map(len, pieces))}\r\n")
                if not resp.interval:
                    body = b"".join(pieces)
                    pieces = None
        elif not has_length:
            headers.append(f"Content-Length: {len(body)}\r\n")
        if not keep:
            headers.append("Connection: close\r\n\r\n")
        elif head.version == "HTTP/1.0":
            headers.append("Connection: keep-alive\r\n\r\n")
        else:
            headers.append("\r\n")
        if head.method == "HEAD":
            body = b""
            pieces = None
        data = "".join(headers).encode("latin-1", "replace")
        if body:
            data += body
        self._out.append(data)
        slot.sent = len(data)
        if pieces is None:
            return True
        slot.streaming = True
        slot.timer = self.reactor.callLater(resp.interval, self._piece, slot, pieces, 0, chunked)
        return False

    def _piece(self, slot: _Slot, pieces, index: int, chunked: bool):
        slot.timer = None
        data = pieces[index]
        if chunked:
            data = chunk(data) + (LAST_CHUNK if index + 1 == len(pieces) else b"")
        self._out.append(data)
        slot.sent += len(data)
        if index + 1 < len(pieces):
            interval = slot.response.interval
            slot.timer = self.reactor.callLater(interval, self._piece, slot, pieces, index + 1,
                                                chunked)
        else:
            slot.streaming = False
            self._done(slot)
        self._settle()

    def _done(self, slot: _Slot):
        """Slot fully written: drop it (its log line follows the flush), close if it was the
        last."""
        self.queue.popleft()
        if slot.parts:  # a body an error cut short
            self._body(slot)
        self.requests += 1
        if self.factory.access_log:
            self._finished.append((slot, self.reactor.seconds()))
        if slot.close:
            self._close()

    def _flush(self):
        out = self._out
        if not out:
            if self._finished:
                self._log_finished()
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        if self._direct:  # send now when nothing is queued (see playground.common.twistedprivate)
            twistedprivate.direct_write(self.transport, data)
        else:
            self.transport.write(data)
        if self._finished:
            self._log_finished()

    def _log_finished(self):
        """One access-log line per answered request, emitted after its bytes went out."""
        finished, self._finished = self._finished, []
        log = self._access_log
        observer, namespace, source = log.observer, log.namespace, log.source
        peer = self.peer
        for slot, end in finished:
            head = slot.head
            method, target, version = (head.method, head.target, head.version) if head else "---"
            error = slot.error
            status = error[0] if error else slot.response.status
            duration = end - slot.started
            line = f"{peer} {method} {target} {version} {status} {slot.sent} {duration:.4f}s"
            if "{" in line or "}" in line:
                line = line.replace("{", "{{").replace("}", "}}")
            # the event ``log.info(line, access=True, client=..., ...)`` emits, handed to the
            # logger's observer directly (Logger.emit's level check and keyword copying cost
            # a third of our share of the line); the line is its own format (cheapest to
            # render), the parts stay structured
            observer({
                "access": True, "client": peer, "method": method, "target": target,
                "version": version, "status": status, "bytes": slot.sent,
                "duration": duration, "reason": error[1] if error else None,
                "log_logger": log, "log_level": LogLevel.info, "log_namespace": namespace,
                "log_source": source, "log_format": line, "log_time": time(),
            })

    def _close(self):
        """No more responses: half-close and drain the client's input briefly, then close."""
        if self._closing:
            return
        self._closing = True
        self._input_stopped = True
        self._flush()
        for slot in self.queue:  # requests after the one that closes are never answered
            if slot.timer is not None and slot.timer.active():
                slot.timer.cancel()
        self.queue.clear()
        self._ahead = self._bodies = 0
        self._cancel_timer()
        self.transport.unregisterProducer()
        if self._read_closed or not self._plain:
            self.transport.loseConnection()
            return
        self.transport.resumeProducing()  # keep reading (and discarding) until the client closes
        self.transport.loseWriteConnection()
        self._set_timer("linger", LINGER)

    def _abort(self):
        self._closing = True
        self._input_stopped = True
        self._cancel_timer()
        self.transport.abortConnection()

    # -- timers

    def _arm(self):
        if self._closing:
            return
        f = self.factory
        p = self.parser
        kind, delay = None, 0.0
        if self._write_paused:
            kind, delay = "send", f.idle_timeout
        elif self._input_stopped:
            kind = None
        elif p.in_body:
            kind, delay = "body", f.idle_timeout
            if self._body_deadline is not None:
                left = max(0.0, self._body_deadline - self.reactor.seconds())
                if delay <= 0 or left < delay:
                    delay = left or 1e-6  # the whole-body deadline comes first
        elif p.held:
            kind = None
        elif p.buffered or (not self.queue and self.requests == 0):
            kind, delay = "header", f.header_timeout
        elif not self.queue:
            kind, delay = "keepalive", f.keepalive_timeout
        if kind == self._timer_kind:
            return
        self._timer_kind = None
        if kind is not None and delay > 0:
            self._set_timer(kind, delay)

    def _pending_out(self) -> int | None:
        """Bytes waiting in a plain TCP transport's buffer (None when unknown)."""
        if not self._plain:
            return None
        return twistedprivate.pending_write_bytes(self.transport)

    # One lazy timer per connection: setting or clearing a deadline is an attribute write; the
    # single DelayedCall, when it fires early, reschedules itself for the current deadline.
    # (A callLater and a cancel per request would cost more than parsing the request.)

    def _start_body_deadline(self, now: float):
        timeout = self.factory.body_timeout
        self._body_deadline = now + timeout if timeout > 0 else None

    def _set_timer(self, kind: str, delay: float):
        if kind == "send" or kind == "linger":
            self._send_mark = self._pending_out()
        self._timer_kind = kind
        self._deadline = self.reactor.seconds() + delay
        timer = self._timer
        if timer is None:
            self._timer = self.reactor.callLater(delay, self._on_timer)
        elif timer.getTime() > self._deadline:
            timer.reset(delay)

    def _cancel_timer(self):
        self._timer_kind = None

    def _stop_timer(self):
        self._timer_kind = None
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None

    def _on_timer(self):
        self._timer = None
        kind = self._timer_kind
        if kind is None:
            return
        left = self._deadline - self.reactor.seconds()
        if left > 1e-6:
            self._timer = self.reactor.callLater(left, self._on_timer)
            return
        self._timer_kind = None
        self._timed_out(kind)

    def _timed_out(self, kind: str):
        f = self.factory
        now = self.reactor.seconds()
        if kind == "header":
            self._fail(408, f"request head not complete within {f.header_timeout:g}s", now)
        elif kind == "body":
            if self._body_deadline is not None and now >= self._body_deadline - 1e-6:
                reason = f"request body not complete within {f.body_timeout:g}s"
            else:
                reason = f"no request body bytes for {f.idle_timeout:g}s"
            self._fail(408, reason, now)
        elif kind == "keepalive":
            self._close()
            return
        elif kind == "linger" and not self._pending_out():
            # everything is in the kernel's hands and the client has not closed: close our
            # side too (gracefully: the kernel still delivers what it holds)
            self.transport.loseConnection()
            return
        elif kind in ("send", "linger") and (pending := self._pending_out()) is not None and (
            0 < pending < self._send_mark
        ):
            self._set_timer(kind, f.idle_timeout)  # a slow reader, but a reader: more time
            return
        else:  # "send" (client not reading) or "linger" (client not closing)
            self.log.info("http {peer}: closing, {kind} timeout", peer=self.peer, kind=kind)
            self._abort()
            return
        self._settle()


def _size(response: Response) -> int:
    pieces = response.pieces
    return len(response.body) if pieces is None else sum(map(len, pieces))


class HttpFactory(LimitedFactory):
    protocol = HttpProtocol
    service_name = "http"
    refusal_message = error_response(503, "too many connections", None)

    def __init__(
        self,
        reactor=None,
        *,
        max_connections: int = 1000,
        max_per_peer: int = 0,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_body: int = DEFAULT_MAX_BODY,
        header_timeout: float = 5.0,
        body_timeout: float = 30.0,
        keepalive_timeout: float = 15.0,
        idle_timeout: float = 30.0,
        max_pipeline: int = 32,
        access_log: bool = True,
        direct_send: bool = True,
        app: HttpApp | None = None,
        app_limits: AppLimits | None = None,
    ):
        super().__init__(max_connections, max_per_peer, reactor)
        self.max_request_line = max_request_line
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.keepalive_timeout = keepalive_timeout
        self.idle_timeout = idle_timeout
        self.max_pipeline = max(1, max_pipeline)
        self.access_log = access_log
        self.direct_send = direct_send
        self.app = app or HttpApp(app_limits)
        self._date_second = -1
        self._date_value = ""
        self._preamble = ""


def _positive_bytes(flag: str, value) -> int:
    return byte_count(flag, value, minimum=1)


class Options(ServerOptions):
    synopsis = "[options]"
    longdesc = (
        "An HTTP/1.1 server with httpbin-style endpoints, a test target for HTTP clients. "
        "Try: curl -v http://127.0.0.1:8080/get ; curl http://127.0.0.1:8080/ lists the "
        "endpoints. --idle-timeout applies while no request body bytes come and while the "
        "client does not read a response; --body-timeout bounds a whole request body."
    )
    default_listen = "8080"
    default_idle_timeout = 30.0
    optFlags = [["no-access-log", None, "Do not log a line per request."]]
    optParameters = [
        parameter("max-body", DEFAULT_MAX_BODY, "Largest request body in bytes; larger gets 413.",
                  byte_count),
        parameter("max-request-line", DEFAULT_MAX_REQUEST_LINE,
                  "Longest request line in bytes; longer gets 414.", _positive_bytes),
        parameter("max-header-bytes", DEFAULT_MAX_HEADER_BYTES,
                  "Largest header section in bytes; larger gets 431.", _positive_bytes),
        parameter("max-headers", DEFAULT_MAX_HEADERS,
                  "Most header fields in a request; more gets 431.", positive_int),
        parameter("header-timeout", 5.0,
                  "Seconds allowed to send a complete request head; then 408 (0 = never).",
                  non_negative_float),
        parameter("body-timeout", 30.0,
                  "Seconds allowed to send a whole request body, counted from the end of its "
                  "head; then 408 (0 = never).", non_negative_float),
        parameter("keepalive-timeout", 15.0,
                  "Close a connection idle between requests after this many seconds "
                  "(0 = never).", non_negative_float),
        parameter("max-pipeline", 32, "Requests read ahead of their responses on one "
                  "connection.", positive_int),
    ]


def make_factory(options, reactor=None) -> HttpFactory:
    return HttpFactory(
        reactor,
        max_request_line=options["max-request-line"],
        max_header_bytes=options["max-header-bytes"],
        max_headers=options["max-headers"],
        max_body=options["max-body"],
        header_timeout=options["header-timeout"],
        body_timeout=options["body-timeout"],
        keepalive_timeout=options["keepalive-timeout"],
        max_pipeline=options["max-pipeline"],
        access_log=not options["no-access-log"],
        **limit_arguments(options),
    )


def make_service(options, reactor=None) -> service.IService:
    return ListeningService("http", options["listen"], make_factory(options, reactor),
                            reactor=reactor)
