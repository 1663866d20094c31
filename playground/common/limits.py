"""Connection limits for every listening factory: total and per-peer caps, refused count.

Twisted's ``policies.LimitConnectionsByPeer`` is broken on Python 3 and wrapping factories hide
``IHalfCloseableProtocol``, so limits are enforced in our own ``buildProtocol``: a connection over
a limit gets a ``Refusal`` protocol that writes an optional protocol-specific message (e.g. Redis's
``-ERR max number of clients reached``) and closes at once. The log says the first refusal
since a connection was admitted, then every thousandth (``refusal_worth_logging``), not one line
per refused connection.

An HTTP site (``CappedSite``: the web view, the toxiproxy API, the metrics) also bounds how long
a connection may hold its slot without being served (``Deadlines``): a cap alone is no defence
against a client that opens connections and trickles its request heads a byte every few seconds
(Slowloris), since Twisted's only timer is an idle timeout that every byte resets.
"""

from __future__ import annotations

from collections import Counter

import attrs
from twisted.internet import protocol
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.web import http, server

from playground.common.addresstext import address_text
from playground.common.defaultreactor import default_reactor
from playground.common.twistedprivate import (
    direct_write_supported,
    head_fields,
    head_size,
    pending_write_bytes,
)


class ConnectionLimits:
    """Counts open connections, overall and by peer host; decides admission."""

    def __init__(self, max_connections: int = 0, max_per_peer: int = 0):
        self.max_connections = max_connections  # 0 = unlimited
        self.max_per_peer = max_per_peer
        self.open = 0
        self.total = 0
        self.refused = 0
        self.refused_in_a_row = 0  # since the last admission
        self._by_peer: Counter[str] = Counter()

    def admit(self, peer: str) -> str | None:
        """Reserve a slot for ``peer``; return None when admitted, else the reason for refusal."""
        if self.max_connections and self.open >= self.max_connections:
            return self._refuse(f"max-connections ({self.max_connections}) reached")
        if self.max_per_peer and self._by_peer[peer] >= self.max_per_peer:
            return self._refuse(
                f"max-connections-per-peer ({self.max_per_peer}) reached for {peer}")
        self.refused_in_a_row = 0
        self.open += 1
        self.total += 1
        self._by_peer[peer] += 1
        return None

    def _refuse(self, reason: str) -> str:
        self.refused += 1
        self.refused_in_a_row += 1
        return reason

    def refusal_worth_logging(self) -> bool:
        """Whether the refusal just made gets a log line: the first since a connection was
        admitted, then every thousandth (a client retrying at once, or thousands of short
        connections, would otherwise log one line per connection)."""
        return self.refused_in_a_row == 1 or not self.refused % 1000

    def release(self, peer: str) -> None:
        self.open -= 1
        self._by_peer[peer] -= 1
        if self._by_peer[peer] <= 0:
            del self._by_peer[peer]


def peer_host(addr) -> str:
    return getattr(addr, "host", None) or getattr(addr, "name", None) or str(addr)


class Refusal(protocol.Protocol):
    """Writes a goodbye message (if any) and closes: what an over-limit client gets."""

    def __init__(self, message: bytes = b""):
        self.message = message

    def connectionMade(self):
        if self.message:
            self.transport.write(self.message)
        self.transport.loseConnection()


class LimitedFactory(protocol.Factory):
    """A factory that enforces ``ConnectionLimits`` before building its protocol.

    Protocols built here must call ``self.factory.connectionClosed(self)`` from
    ``connectionLost`` (``release`` is keyed by the peer host stored on the protocol).
    """

    log = Logger()
    noisy = False
    log_connections = True  # one log line per connection open/close (the demo turns it off)
    refusal_message = b""
    service_name = "server"

    def __init__(self, max_connections: int = 0, max_per_peer: int = 0, reactor=None):
        self.reactor = default_reactor(reactor)
        self.limits = ConnectionLimits(max_connections, max_per_peer)

    def buildProtocol(self, addr):
        host = peer_host(addr)
        reason = self.limits.admit(host)
        if reason is not None:
            if self.limits.refusal_worth_logging():
                self.log.warn(
                    "{service} refused {peer}: {reason} (refused so far: {refused})",
                    service=self.service_name,
                    peer=address_text(addr),
                    reason=reason,
                    refused=self.limits.refused,
                )
            p = Refusal(self.refusal_message)
            p.factory = self
            return p
        p = super().buildProtocol(addr)
        p.peer_host = host
        p.peer = address_text(addr)
        return p

    def connectionClosed(self, proto) -> None:
        self.limits.release(proto.peer_host)


_site_log = Logger(namespace="playground.common.limits.CappedSite")  # Site.log is the access log


class BoundedRequest(server.Request):
    """A request that keeps at most ``max_body`` bytes of its body; the rest is counted in
    ``received`` and dropped (twisted.web would keep it all, in a temporary file past 100 kB,
    before any resource could look at the token or the length)."""

    max_body = 64 * 1024
    received = 0

    def handleContentChunk(self, data):
        self.received += len(data)
        if self.received <= self.max_body:
            super().handleContentChunk(data)
        elif self.received - len(data) < self.max_body:
            super().handleContentChunk(data[:self.max_body - self.received + len(data)])


def _refusal(status: int, reason: bytes, text: bytes, head: bool) -> bytes:
    """A refusal's answer: its head, and ``text`` unless it answers a HEAD request (``head``:
    a response to HEAD carries no body, RFC 9110 9.3.2)."""
    return (b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, reason, len(text), b"" if head else text))


_URI_TOO_LONG = (414, b"URI Too Long", b"request line too long\n")
_HEADERS_TOO_LARGE = (431, b"Request Header Fields Too Large", b"request header fields too large\n")


MAX_PER_TURN = 8  # pipelined requests one connection gets answered per reactor turn
LINGER = 2.0  # seconds a refused client's further bytes are read and dropped, then a reset


@attrs.frozen
class Deadlines:
    """How long an HTTP connection may take over each part of a request, in seconds (0: no
    bound), each counted from a fixed point, not reset by the bytes that trickle in:

    * ``idle``: waiting for a request's first byte, on a new connection or after a response
      (keep-alive); then the connection is closed without a word (nginx's ``keepalive_timeout``).
      It begins as the response is written, maybe before the client has taken it all: at the
      deadline, a client that took some of it since gets another, one that took none is reset;
    * ``head``: from a request's first byte (or, for one that came pipelined behind the previous
      one, from that one's end) to the end of its head; then 408 (nginx's
      ``client_header_timeout``, Apache's ``RequestReadTimeout header=``);
    * ``body``: from the end of a head to the end of its body, however steadily the bytes come
      (a body is at most ``BoundedRequest.max_body``: 64 KiB in 30 s is 2 KiB a second); then
      408.

    No deadline runs while a request is being answered: a response, an event stream (the web
    view's ``/api/events``) included, is the site's to bound."""

    idle: float = 15.0
    head: float = 10.0
    body: float = 30.0


class BoundedChannel(http.HTTPChannel):
    """``HTTPChannel`` that answers a request line over ``MAX_LENGTH`` bytes with 414, and a
    header line over it, a head over ``totalHeadersSize`` bytes or one with more than
    ``maxHeaders`` fields with 431 (Twisted closes without a word on the first, answers a bare
    400 on the others), and at most ``MAX_PER_TURN`` pipelined requests in a row: then the next
    is taken on a later reactor turn (Twisted answers a pipeline in one go otherwise, each
    request inside the previous one's completion: 2,000 pipelined GET /proxies of the toxiproxy
    API kept another client's request waiting 1.9 s). Nor is the next pipelined request taken
    while the transport's write buffer is full (the transport paused the channel): only once it
    drained (Twisted pauses reading then, but answers what it has read already: 200 pipelined
    requests of a 1.4 MB answer each, in one 12 KB write from a client that read nothing, made
    the web view's process hold 300 MB of answers). A ``Content-Length`` over the request's
    ``max_body`` is answered 413 as soon as the head is read, not once that many bytes came (a
    client declaring 10**20 held its connection, unanswered, for as long as it sent).

    A refusal answers a HEAD request with its head alone (RFC 9110 9.3.2). It is a lingering
    close: the answer, then a FIN (on TLS, its close_notify), then what the client still sends
    read and dropped for ``LINGER`` seconds (closing with its bytes unread would reset the
    connection, and the reset can destroy the answer before the client reads it).

    The head is measured with Twisted's own counters (``twistedprivate.head_size``: the bytes of
    the head's lines so far, request line included; ``head_fields``: its fields so far; both
    reset when a request is complete), asked before Twisted's own checks would answer 400: no
    second count to keep in step with them. They are private names of Twisted's: their contract
    is tested in ``tests/common/test_twistedprivate.py``, and ``tests/common/test_limits.py``
    drives a real site over each bound.

    What the connection waits for is timed by ``deadlines`` (``Deadlines``; its site's): one
    timer, for the part of a request being waited for (``_waiting_for``: ``"idle"``, ``"head"``
    or ``"body"``; None while a request is answered), set when that part begins. Past it, a
    408 refusal (a head or a body), or a close (idle). What a client has taken of its answer is
    what ``twistedprivate.pending_write_bytes`` says is left; on TLS it is not known, and the
    idle close waits ``LINGER`` for it. A connection already closing when a head's or a body's
    deadline passes (after Twisted's own 400) is reset."""

    deadlines = Deadlines()
    _in_a_row = 0
    _lost = False
    _linger = None
    _head_request = False  # the request being read began "HEAD ": its refusal has no body
    _waiting_for = None
    _deadline = None  # the DelayedCall ending the wait for _waiting_for
    _unsent_then = 0  # answer bytes not yet sent when the idle wait began
    _backed_up = False  # the transport paused the channel: its write buffer is full
    _held = None  # the request done while backed up: the next is taken once it drains

    def connectionMade(self):
        super().connectionMade()
        self._wait_for("idle")

    def dataReceived(self, data):
        # a request come while the last is held is not read yet: the idle deadline goes on
        if self._waiting_for == "idle" and self._held is None:
            self._wait_for("head")
        super().dataReceived(data)

    def pauseProducing(self):
        self._backed_up = True
        super().pauseProducing()

    def resumeProducing(self):
        self._backed_up = False
        super().resumeProducing()
        held, self._held = self._held, None
        if held is not None:  # the client took the answer: no idle wait, the next is taken
            self._in_a_row = 0
            self._wait_for(None)
            self.callLater(0, self._request_done_later, held)

    def requestDone(self, request):
        self._in_a_row += 1
        if self._backed_up:  # no next answer while the client has not taken this one
            self._hold(request)
        elif self._in_a_row < MAX_PER_TURN:
            self._next_request(request)
        else:
            self._in_a_row = 0
            self.callLater(0, self._request_done_later, request)

    def _request_done_later(self, request):
        if not self._lost and self.requests and self.requests[0] is request:
            if self._backed_up:
                self._hold(request)
            else:
                self._next_request(request)

    def _hold(self, request):
        # the client has not taken the last answer: the next waits for it, and the idle
        # deadline says whether it takes any (one that takes none of it is reset)
        self._held = request
        self._wait_for("idle")

    def _next_request(self, request):
        # Twisted feeds what came pipelined behind the request to dataReceived from here: the
        # next head's deadline counts from now
        self._wait_for("idle")
        super().requestDone(request)

    def allContentReceived(self):
        self._wait_for(None)
        self._head_request = False  # the next request's line says (a refusal before it: not)
        super().allContentReceived()

    def connectionLost(self, reason):
        self._lost = True
        self._wait_for(None)
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        super().connectionLost(reason)

    def allHeadersReceived(self):
        max_body = self.requests[-1].max_body
        if self.length is not None and self.length > max_body:
            self._refuse((413, b"Content Too Large", b"request body over %d bytes\n" % max_body))
            return
        if self.length != 0:  # a Content-Length, or chunked (None)
            self._wait_for("body")
        super().allHeadersReceived()

    def _wait_for(self, what: str | None) -> None:
        self._waiting_for = what
        if what == "idle":
            self._unsent_then = self._unsent() or 0
        seconds = getattr(self.deadlines, what) if what is not None else 0
        deadline = self._deadline
        if deadline is not None and deadline.active():
            if seconds:
                deadline.reset(seconds)
                return
            deadline.cancel()
        self._deadline = self.callLater(seconds, self._too_late) if seconds else None

    def _unsent(self) -> int | None:
        """Bytes of answers written and not yet sent (None: not known, on TLS)."""
        t = self.transport
        return pending_write_bytes(t) if direct_write_supported(t) else None

    def _too_late(self) -> None:
        what = self._waiting_for
        self._waiting_for = self._deadline = None
        closing = getattr(self.transport, "disconnecting", False)
        if what == "idle":
            unsent = self._unsent()
            if unsent and unsent < self._unsent_then:  # still taking its answer, slowly
                self._wait_for("idle")
            elif unsent:  # took none of it for a whole idle deadline
                self.transport.abortConnection()
            else:  # nothing left to send, or (TLS) not known: LINGER for it
                self.loseConnection()
                self._linger = self.callLater(LINGER, self.transport.abortConnection)
        elif closing:
            self.transport.abortConnection()
        else:
            self._refuse((408, b"Request Timeout", b"request %s not complete within %gs\n"
                          % (what.encode(), getattr(self.deadlines, what))))

    def lineReceived(self, line):
        if not head_size(self):  # the request line (or a blank line before one)
            self._head_request = line.startswith(b"HEAD ")
        if head_size(self) + len(line) > self.totalHeadersSize:
            self._refuse(_HEADERS_TOO_LARGE)
            return
        super().lineReceived(line)

    def headerReceived(self, line):
        # Twisted counts a field once it is stored and answers 400 past ``maxHeaders``
        if head_fields(self) >= self.maxHeaders:
            self._refuse(_HEADERS_TOO_LARGE)
            return False
        return super().headerReceived(line)

    def lineLengthExceeded(self, line):
        # a request line adds its bytes to the head's count: none yet, it is the request line
        if head_size(self):
            self._refuse(_HEADERS_TOO_LARGE)
        else:
            self._head_request = line.startswith(b"HEAD ")
            self._refuse(_URI_TOO_LONG)

    def _refuse(self, refusal: tuple[int, bytes, bytes]) -> None:
        """Answer ``refusal`` (status, reason phrase, text) and close, lingering."""
        # nothing more is parsed (the rest of this read included), nothing more is timed
        self._wait_for(None)
        self.lineReceived = self.rawDataReceived = self.dataReceived = lambda *args: None
        self.transport.write(_refusal(*refusal, self._head_request))
        if ISSLTransport.providedBy(self.transport) or not hasattr(self.transport,
                                                                   "loseWriteConnection"):
            # no half-close: TLS's close (close_notify after the answer) reads on until the
            # client's. A TLS transport hands loseWriteConnection to the TCP one beneath it,
            # whose FIN ends the stream without close_notify: a truncation, to a TLS client
            self.loseConnection()
        else:
            self.transport.loseWriteConnection()
        self._linger = self.callLater(LINGER, self.transport.abortConnection)


class CappedSite(server.Site):
    """A ``server.Site`` (the web view, the toxiproxy API, the metrics) that holds at most
    ``max_open`` connections at once: one over is closed at accept (``buildProtocol`` gives
    None), so idle clients cannot take every file descriptor the proxy needs (each one kept
    otherwise for as long as its deadlines allow). Its requests keep a bounded body
    (``BoundedRequest``); an over-long request line is a 414, an over-long head or one with too
    many fields a 431, and a connection waits for a request, its head and its body no longer than
    its ``deadlines`` (``BoundedChannel``; ``Deadlines``, read as each connection is accepted).
    Twisted's idle timeout (12 hours, reset by every byte) is off: the deadlines replace it.

    The counting is ``ConnectionLimits``' (``limits``, as a ``LimitedFactory``'s, with no bound
    per peer); ``max_open``, ``open_connections`` and ``refused`` are its figures by the site's
    names (``max_open`` 0: no bound)."""

    protocol = BoundedChannel
    requestFactory = BoundedRequest
    label = "web"

    def __init__(self, *args, max_open: int = 256, deadlines: Deadlines = Deadlines(),
                 **kwargs):
        kwargs.setdefault("timeout", None)
        super().__init__(*args, **kwargs)
        self.limits = ConnectionLimits(max_open)
        self.deadlines = deadlines

    @property
    def max_open(self) -> int:
        return self.limits.max_connections

    @max_open.setter
    def max_open(self, value: int) -> None:
        self.limits.max_connections = value

    @property
    def open_connections(self) -> int:
        return self.limits.open

    @property
    def refused(self) -> int:
        return self.limits.refused

    def buildProtocol(self, addr):
        host = peer_host(addr)
        if self.limits.admit(host) is not None:
            refused = self.limits.refused
            if self.limits.refusal_worth_logging():
                _site_log.warn("{label}: refused a connection from {peer}: {max} open already "
                              "(refused so far: {refused})", label=self.label,
                              peer=address_text(addr), max=self.max_open, refused=refused)
            return None
        p = super().buildProtocol(addr)
        if p is None:
            self.limits.release(host)
            return None
        p.deadlines = self.deadlines
        lost = p.connectionLost

        def connectionLost(reason):
            self.limits.release(host)
            lost(reason)

        p.connectionLost = connectionLost
        return p
