"""Chat-line server for telnet and nc: the Twisted adapter around ``playground.examples.chat.core``.

``twistd -n tcpplay chat`` listens on 127.0.0.1:7001; try ``nc 127.0.0.1 7001`` or
``telnet 127.0.0.1 7001`` from two terminals, or ``tcpplay-chat 7001 --nick alice``. Each
connection gets an id; its bytes go to the core with the reactor's time, and the core's outputs
(lines to send, connections to close) are carried out here. The protocol is described in
``docs/chat-protocol.md``.

Send queues: what a client does not read waits in its transport (up to ``TRANSPORT_BUFFER``, then
the transport pauses us) and then in the connection's own send queue. Queued bytes count against a
per-client cap (``--max-sendq``) and against one budget for the whole server (``--send-budget``):
a client over its cap, or the one with the longest queue when the budget is full, is dropped
("SendQ exceeded", as IRC servers do), so memory stays bounded however many clients stop reading.
"""

from __future__ import annotations

from collections import deque
from itertools import count

from twisted.application import service
from twisted.internet import defer, protocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python import usage
from zope.interface import implementer

from playground.common import shutdown, tlsnames, twistedprivate
from playground.common.limits import LimitedFactory
from playground.common.listening import ListeningService
from playground.common.options import (
    ServerOptions,
    byte_size,
    limit_arguments,
    non_negative_float,
    non_negative_int,
    parameter,
    positive_int,
)
from playground.examples.chat.core import ChatServer, Close, Send, SendRaw, room_name

DEFAULT_MAX_SENDQ = 1 << 20  # bytes queued for one client that does not read
DEFAULT_SEND_BUDGET = 64 << 20  # bytes queued for all of them together
# What a connection's transport holds before it pauses us (Twisted's default is 64 KiB); the
# rest waits in the counted send queue. The part of the memory outside the budget is this much
# per connection.
TRANSPORT_BUFFER = 16 << 10


@implementer(IPushProducer)
class _WriteWatch:
    """Registered with the transport to learn when its write buffer is full (a slow reader) and
    when it has drained (``on_drain``)."""

    def __init__(self, on_drain):
        self.paused = False
        self._on_drain = on_drain

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self._on_drain()

    def stopProducing(self):
        self.paused = False


@implementer(IHalfCloseableProtocol)
class ChatProtocol(protocol.Protocol, TimeoutMixin):
    log = Logger()

    def __init__(self):
        self.conn_id = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.queued = 0  # bytes in the send queue (waiting for the transport to drain)
        self._sendq: deque[bytes] = deque()
        self.opened = 0.0
        self.close_reason: str | None = None
        self._watch = _WriteWatch(self._drain)
        self._grace = None
        self._registered = False
        self.on_lost = defer.Deferred()  # fires (with None) once the connection is gone

    def _now(self) -> float:
        return self.factory.reactor.seconds()

    def connectionMade(self):
        f = self.factory
        self.callLater = f.reactor.callLater  # TimeoutMixin's clock is the injected reactor
        self.opened = self._now()
        self.conn_id = f.register(self)
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = TRANSPORT_BUFFER
        self.transport.registerProducer(self._watch, True)
        self._registered = True
        self.setTimeout(f.idle_timeout or None)
        self.log.info("chat open {peer} conn={conn}", peer=self.peer, conn=self.conn_id)
        f.dispatch(f.core.connect(self.conn_id, self.opened))

    def dataReceived(self, data):
        if self.close_reason is not None:
            return  # closing: what the client still sends is read and dropped (see close_politely)
        self.resetTimeout()
        self.bytes_in += len(data)
        f = self.factory
        f.dispatch(f.core.feed(self.conn_id, data, f.reactor.seconds()))

    def readConnectionLost(self):
        if self.close_reason is not None:  # we were closing: the client is done too
            self.transport.loseConnection()
            return
        # nc -N / shutdown(SHUT_WR): the last unfinished line counts, then we say goodbye.
        f = self.factory
        f.dispatch(f.core.eof(self.conn_id, self._now()))

    def writeConnectionLost(self):
        if self.close_reason is not None:
            return  # our own FIN went out (close_politely): wait for the client's
        self.close_politely("client stopped reading")

    def timeoutConnection(self):
        f = self.factory
        seconds = f"{f.idle_timeout:g}"
        f.dispatch(
            f.core.close(self.conn_id, "idle-timeout", f"no input for {seconds}s; closing",
                         f"idle timeout ({seconds}s)", self._now())
        )

    # -- what the core asks for --

    def write_bytes(self, data: bytes) -> None:
        if self.transport is None or self.close_reason is not None:
            return
        self.bytes_out += len(data)
        if not self._watch.paused and not self._sendq:
            self.transport.write(data)
            return
        f = self.factory
        n = len(data)
        if not self._sendq:
            f.queues.add(self)
        self._sendq.append(data)
        self.queued += n
        f.queued += n
        if self.queued > f.max_sendq:
            self.drop(f"SendQ exceeded ({self.queued} bytes queued, limit {f.max_sendq})")
        elif f.queued > f.send_budget:
            f.over_budget()

    def _drain(self) -> None:
        """The transport sent all it held: hand it queued lines until it is full again."""
        sendq = self._sendq
        if not sendq or self.close_reason is not None:
            return
        f = self.factory
        write = self.transport.write
        watch = self._watch
        while sendq and not watch.paused:
            data = sendq.popleft()
            self.queued -= len(data)
            f.queued -= len(data)
            write(data)
        if not sendq:
            f.queues.discard(self)

    def _forget_queue(self) -> None:
        if self._sendq:
            self.factory.queued -= self.queued
            self.factory.queues.discard(self)
            self._sendq.clear()
            self.queued = 0

    def drop(self, reason: str) -> None:
        """Drop a client that does not read: its queue is freed now, the connection aborted."""
        if self.close_reason is not None:
            return
        self._forget_queue()
        self.close_reason = reason
        self.log.info("chat {peer} conn={conn}: {reason}", peer=self.peer, conn=self.conn_id,
                      reason=reason)
        self.transport.abortConnection()

    def close_politely(self, reason: str) -> None:
        """Send what was written, then FIN (on TLS, close_notify); keep reading (and dropping)
        until the client closes too, or abort after ``close_grace`` seconds. Closing at once with
        unread input (the rest of an over-long line, a flood) would send a reset that can
        destroy our last error line before the client reads it."""
        if self.close_reason is not None:
            return
        if self._sendq:  # the transport holds it from here, until close_grace at most
            self.transport.write(b"".join(self._sendq))
            self._forget_queue()
        self.close_reason = reason
        self.setTimeout(None)
        self._unregister()
        twistedprivate.close_writing(self.transport)  # on TLS, its close_notify
        self._grace = self.factory.reactor.callLater(
            self.factory.close_grace, self.transport.abortConnection
        )

    def _unregister(self):
        if self._registered:
            self._registered = False
            self.transport.unregisterProducer()

    def connectionLost(self, reason):
        self.setTimeout(None)
        self._unregister()
        self._forget_queue()
        if self._grace is not None and self._grace.active():
            self._grace.cancel()
        f = self.factory
        now = self._now()
        nick = f.core.nick(self.conn_id)  # asked before disconnect, which forgets it
        lines = f.core.lines_received(self.conn_id)
        if self.close_reason is None:
            self.close_reason = tlsnames.client_close_reason(reason, self.transport)
        f.unregister(self)
        f.dispatch(f.core.disconnect(self.conn_id, now, self.close_reason))
        self.log.info(
            "chat close {peer} conn={conn} nick={nick} lines={lines} in={bytes_in} out={bytes_out} "
            "duration={duration:.3f}s reason={reason}",
            peer=self.peer, conn=self.conn_id, nick=nick or "-", lines=lines,
            bytes_in=self.bytes_in, bytes_out=self.bytes_out, duration=now - self.opened,
            reason=self.close_reason,
        )
        f.connectionClosed(self)
        self.on_lost.callback(None)


class ChatFactory(LimitedFactory):
    protocol = ChatProtocol
    service_name = "chat"
    refusal_message = b"! server-full too many connections; try again later\r\n"
    close_grace = 5.0  # seconds a closing connection gets to flush before it is aborted

    def __init__(self, core: ChatServer | None = None, idle_timeout: float = 0.0,
                 max_connections: int = 0, max_per_peer: int = 0, reactor=None,
                 max_sendq: int = DEFAULT_MAX_SENDQ, send_budget: int = DEFAULT_SEND_BUDGET):
        super().__init__(max_connections, max_per_peer, reactor)
        self.core = core if core is not None else ChatServer()
        self.idle_timeout = idle_timeout
        self.max_sendq = max_sendq
        self.send_budget = send_budget
        self.queued = 0  # bytes in all send queues
        self.queues: set[ChatProtocol] = set()  # the connections with a non-empty send queue
        self.protocols: dict[int, ChatProtocol] = {}
        self._ids = count(1)

    def register(self, proto: ChatProtocol) -> int:
        conn = next(self._ids)
        self.protocols[conn] = proto
        return conn

    def unregister(self, proto: ChatProtocol) -> None:
        self.protocols.pop(proto.conn_id, None)

    def over_budget(self) -> None:
        """The send budget is full: drop the clients with the longest queues until it is not."""
        while self.queued > self.send_budget and self.queues:
            worst = max(self.queues, key=lambda p: p.queued)
            worst.drop(f"SendQ exceeded ({worst.queued} bytes queued, server send budget "
                       f"{self.send_budget} full)")

    def dispatch(self, outputs) -> None:
        line = data = None
        for out in outputs:
            proto = self.protocols.get(out.conn)
            if proto is None:
                continue
            if isinstance(out, Send):
                if out.line is not line:  # a room's line is encoded once, its bytes shared
                    line = out.line
                    data = line.encode("utf-8") + b"\r\n"
                proto.write_bytes(data)
            elif isinstance(out, SendRaw):
                proto.write_bytes(out.data)
            elif isinstance(out, Close):
                proto.close_politely(out.reason)

    def shutdown(self, timeout: float | None = None) -> defer.Deferred:
        """Tell every client the server is stopping, close them politely, and fire once all
        are gone: those still there after ``timeout`` seconds (``--drain-timeout``; default
        ``close_grace``), or at a second SIGINT/SIGTERM, are aborted."""
        if timeout is not None:
            self.close_grace = timeout  # the polite closes below are aborted after it
        now = self.reactor.seconds()
        protos = list(self.protocols.values())
        for proto in protos:
            self.dispatch(self.core.close(proto.conn_id, "shutdown", "the server is stopping",
                                          "server shutdown", now))
        waiting = [p for p in protos if not p.on_lost.called]
        d = defer.DeferredList([p.on_lost for p in waiting])
        if not waiting:
            return d

        def abort():
            for p in waiting:
                if not p.on_lost.called:
                    p.transport.abortConnection()

        release = shutdown.during_drain(abort, self.reactor)
        self.log.info("chat closing {n} connection(s) for up to {timeout:g}s{hint}",
                      n=len(waiting), timeout=self.close_grace, hint=shutdown.hint())

        def done(result):
            release()
            return result

        return d.addBoth(done)


class ChatShutdown(service.Service):
    """On stop (SIGTERM), says goodbye to every client and holds shutdown until they are gone,
    so the goodbye line is flushed before the reactor drops the sockets."""

    def __init__(self, factory: ChatFactory, drain_timeout: float | None = None):
        self.factory = factory
        self.drain_timeout = drain_timeout

    def stopService(self):
        service.Service.stopService(self)
        return self.factory.shutdown(self.drain_timeout)


def _line_length(flag: str, value) -> int:
    number = non_negative_int(flag, value)
    if not 16 <= number <= 1 << 20:
        raise usage.UsageError(f"{flag}: must be 16-1048576 bytes, got {value!r}")
    return number


def _room(flag: str, value) -> str:
    room = room_name(value)
    if room is None:
        raise usage.UsageError(
            f"{flag}: {value!r} is not a room name (1-20 of A-Z a-z 0-9 _ -, e.g. #lobby)"
        )
    return room


class Options(ServerOptions):
    synopsis = "[options]"
    longdesc = (
        "A chat server for telnet and nc: nicks, rooms, private messages. Try two terminals "
        "with: nc 127.0.0.1 7001   (then /nick NAME, /help). Protocol: docs/chat-protocol.md"
    )
    default_listen = "7001"
    shown_defaults = {"max-sendq": "1m", "send-budget": "64m"}
    optParameters = [
        parameter("drain-timeout", 5.0,
                  "On SIGTERM/SIGINT, seconds clients get to leave after the goodbye line "
                  "before they are cut off (a second Ctrl-C cuts them off at once).",
                  non_negative_float),
        parameter("max-line", 1024,
                  "Longest accepted line in bytes (16-1048576); longer lines close the "
                  "connection with an error line.", _line_length),
        parameter("flood-rate", 5.0,
                  "Lines per second each connection may send on average (0 = no limit).",
                  non_negative_float),
        parameter("flood-burst", 20, "Lines a connection may send at once before the rate "
                  "applies.", positive_int),
        parameter("flood-strikes", 5, "Lines dropped for flooding before the connection is "
                  "closed.", positive_int),
        parameter("max-sendq", DEFAULT_MAX_SENDQ,
                  'Bytes queued for one client that does not read before it is dropped ("SendQ '
                  'exceeded"; k/m/g suffixes).', byte_size),
        parameter("send-budget", DEFAULT_SEND_BUDGET,
                  "Bytes queued for all clients together; when full, the client with the "
                  "longest queue is dropped (k/m/g suffixes).", byte_size),
        parameter("room", "#lobby", "The room a client joins once it has a nick.", _room),
    ]


def make_factory(options, reactor=None) -> ChatFactory:
    core = ChatServer(
        max_line=options["max-line"],
        flood_rate=options["flood-rate"],
        flood_burst=options["flood-burst"],
        flood_strikes=options["flood-strikes"],
        default_room=options["room"],
    )
    return ChatFactory(
        core,
        reactor=reactor,
        max_sendq=options["max-sendq"],
        send_budget=options["send-budget"],
        **limit_arguments(options),
    )


def make_service(options, reactor=None) -> service.IService:
    factory = make_factory(options, reactor)
    top = service.MultiService()
    # Children stop in reverse order: first stop listening, then see the clients out.
    ChatShutdown(factory, options["drain-timeout"]).setServiceParent(top)
    ListeningService("chat", options["listen"], factory, reactor=reactor).setServiceParent(top)
    return top
