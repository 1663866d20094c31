"""A small RESP client protocol: ``request(*args)`` sends one command and returns a Deferred of
its reply; requests may be pipelined (replies come in order).

Commands are written with ``playground.codec.encoder.encode_command`` and replies read with
``playground.codec.parser.RespParser`` (bounded by ``max_bulk``). An error reply fails the
request's Deferred with :class:`ReplyError` (the connection stays usable). When the connection
ends, or the server shuts down its write half, every request still waiting fails with
:class:`RequestLost`: it was sent, and the server may or may not have run it, so only the caller
can tell whether sending it again is safe (the pool's ``execute(..., idempotent=True)`` does so
once). A request made after that fails at once with :class:`ConnectionClosed` (it was not sent).
A reply the client cannot read, or one nobody asked for, aborts the connection.

The client keeps no clock: its owner, told of each request sent (``on_sent``) and each reply
read (``on_answered``), calls ``time_out(seconds)`` when a reply is overdue. The oldest request
then fails with :class:`RequestTimeout`, the others with ``RequestLost``, and the connection is
aborted, so a late reply is never read as the answer to another request.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet import defer, protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from zope.interface import implementer

from playground.codec.encoder import encode_command
from playground.codec.parser import RespParser
from playground.codec.values import Error, ProtocolError
from playground.common import tlsnames

DEFAULT_MAX_BULK = 64 * 1024 * 1024  # the largest reply string the client reads


class ReplyError(Exception):
    """The server answered with an error (``-ERR ...``); ``value`` is the ``Error``."""

    def __init__(self, value: Error):
        super().__init__(value.value.decode("utf-8", "replace"))
        self.value = value


class RequestLost(Exception):
    """The connection ended after the request was sent and before its reply came: the server
    may or may not have run it."""


class RequestTimeout(Exception):
    """No reply within the request timeout; the connection was closed (the server may or may
    not have run the request)."""


class ConnectionClosed(Exception):
    """The connection was already closed: the request was not sent."""


def _command_name(args: tuple) -> str:
    first = args[0] if args else b""
    return (first.decode("utf-8", "replace") if isinstance(first, bytes) else str(first)).upper()


@implementer(IHalfCloseableProtocol)
class RespClientProtocol(protocol.Protocol):
    """One connection to a RESP server. ``on_lost(client, why)`` is called once when it ends;
    ``on_sent(client)`` after each request is written, ``on_answered(client)`` as each reply is
    read, before its Deferred fires."""

    def __init__(self, on_lost: Callable[[RespClientProtocol, str], None] | None = None,
                 max_bulk: int = DEFAULT_MAX_BULK,
                 on_sent: Callable[[RespClientProtocol], None] | None = None,
                 on_answered: Callable[[RespClientProtocol], None] | None = None):
        self.on_lost = on_lost
        self.on_sent = on_sent
        self.on_answered = on_answered
        self._parser = RespParser(max_bulk=max_bulk)
        self._pending: deque[tuple[defer.Deferred, str]] = deque()
        self.ended = False
        self.why = ""

    @property
    def pending(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._pending)

    def request(self, *args) -> defer.Deferred:
        """Send one command (bytes, str, int or float arguments); a Deferred of its reply."""
        if not self.connected or self.ended:  # connected: set by makeConnection
            return defer.fail(ConnectionClosed(f"{_command_name(args)} not sent: "
                                               f"{self.why or 'not connected'}"))
        d = defer.Deferred()
        self._pending.append((d, _command_name(args)))
        self.transport.write(encode_command(*args))
        if self.on_sent is not None:
            self.on_sent(self)
        return d

    def time_out(self, seconds: float) -> None:
        """The oldest request got no reply within ``seconds``: fail it with
        :class:`RequestTimeout` (those behind it with ``RequestLost``) and abort the
        connection."""
        if self.ended:
            return
        name = self._pending[0][1] if self._pending else "the request"
        self._end(f"{name} got no reply within the {seconds:g}s request timeout",
                  RequestTimeout(f"{name} got no reply within {seconds:g}s (the request "
                                 "timeout): its connection was closed"))
        if self.transport is not None:
            self.transport.abortConnection()

    def dataReceived(self, data: bytes):
        if self.ended:
            return  # timed out or given up: a late reply is nobody's
        for value in self._parser.feed(data):
            if isinstance(value, ProtocolError):
                self._end(f"unreadable reply: {value.message}")
                self.transport.abortConnection()
                return
            if not self._pending:
                self._end("a reply nobody asked for")
                self.transport.abortConnection()
                return
            d, _ = self._pending.popleft()
            if self.on_answered is not None:
                self.on_answered(self)
            if isinstance(value, Error):
                d.errback(ReplyError(value))
            else:
                d.callback(value)

    def readConnectionLost(self):
        """The server shut down its write half: no reply will come; close our side too."""
        self._end("the server closed the connection")
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass  # we never half-close

    def connectionLost(self, reason=protocol.connectionDone):
        if reason.check(protocol.connectionDone.type):
            why = "the connection was closed"
        else:
            why = tlsnames.lost_reason(reason, self.transport)
        self._end(why)

    def _end(self, why: str, first: Exception | None = None) -> None:
        """Fail every request waiting (the oldest with ``first`` when given)."""
        if self.ended:
            return
        self.ended = True
        self.why = why
        pending, self._pending = self._pending, deque()
        if self.on_lost is not None:  # first, so a caller reacting to its error sees it gone
            self.on_lost(self, why)
        for d, name in pending:
            d.errback(first or RequestLost(f"{name} got no reply: {why}"))
            first = None
