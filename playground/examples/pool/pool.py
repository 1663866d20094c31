"""The Twisted side of the connection pool: :class:`ConnectionPool` carries out what
``playground.examples.pool.core.PoolCore`` decides.

``acquire()`` returns a Deferred firing with a connected
:class:`~playground.examples.pool.respclient.RespClientProtocol` (cancel it to stop waiting);
``release(client)`` gives it back once every reply is read (a client released with requests
still unanswered is closed instead: their replies would reach the next user). ``execute(*args)``
does all three. ``close()`` drains the pool and fires when every connection is closed.
:class:`Unpooled` is the baseline with the same methods: a new connection per ``acquire``,
closed at ``release``.

Connects go through the endpoint given (``clientFromString``); the health check is a ``PING``
answered ``+PONG``; timeouts are one ``callLater`` on the injected reactor at the core's next
deadline, so tests drive the pool with ``MemoryReactorClock.advance()``.

A connection that ends while requests are in flight fails them with ``RequestLost`` (sent, so
the server may or may not have run them) and is forgotten; the next waiter gets another. A
request that gets no reply within ``request_timeout`` seconds (None: no limit) fails with
``RequestTimeout``, and its connection is aborted and forgotten (the core decides; the client
tells it of each request and reply): a late reply never reaches the next user, and the pool
opens another connection for the waiters. A timed-out request is not sent again.
``execute(..., idempotent=True)`` sends a lost request once more on a fresh connection; a
request that must not run twice (``INCR``, ``LPUSH``) is left to its caller. ``acquire`` fails
with :class:`AcquireTimeout`, :class:`PoolClosed`, :class:`PoolFull` or :class:`ConnectFailed`.
"""

from __future__ import annotations

from collections import deque

from twisted.internet import defer, endpoints
from twisted.logger import Logger

from playground.codec.values import Simple
from playground.common.defaultreactor import default_reactor
from playground.examples.pool import core as poolcore
from playground.examples.pool.respclient import ConnectionClosed, RequestLost, RespClientProtocol

PONG = Simple(b"PONG")


class PoolError(Exception):
    """No connection for this acquire."""


class AcquireTimeout(PoolError):
    """No connection became free within the acquire timeout."""


class PoolClosed(PoolError):
    """The pool is draining or closed."""


class PoolFull(PoolError):
    """Too many callers were already waiting."""


class ConnectFailed(PoolError):
    """The connection opened for this caller failed (refused, unreachable, too slow)."""


_ERRORS = {poolcore.TIMEOUT: AcquireTimeout, poolcore.CLOSED: PoolClosed,
           poolcore.QUEUE_FULL: PoolFull, poolcore.CONNECT_FAILED: ConnectFailed}


class _Executes:
    """``execute`` on top of ``acquire`` and ``release``."""

    @defer.inlineCallbacks
    def execute(self, *args, idempotent: bool = False):
        """Acquire, send one command, release: a Deferred of the reply. A request lost with
        its connection is sent again once on another connection when ``idempotent``; one that
        could not be sent (the connection ended as it was handed out) is, always; one that
        timed out (``RequestTimeout``) never: its time is spent."""
        for attempt in range(2):
            client = yield self.acquire()
            try:
                reply = yield client.request(*args)
            except RequestLost:
                if attempt or not idempotent:
                    raise
                continue
            except ConnectionClosed:  # not sent: safe to send elsewhere
                if attempt:
                    raise
                continue
            finally:
                self.release(client)
            return reply


class ConnectionPool(_Executes):
    """A bounded pool of RESP connections to one endpoint (settings as ``PoolCore``'s)."""

    log = Logger()

    def __init__(self, endpoint, max_size: int = 8, acquire_timeout: float = 5.0,
                 check_after: float | None = 5.0, idle_timeout: float | None = 60.0,
                 max_lifetime: float | None = None, connect_timeout: float = 5.0,
                 max_waiters: int = 10_000, request_timeout: float | None = 5.0, reactor=None):
        self.endpoint = endpoint
        self.reactor = default_reactor(reactor)
        self.core = poolcore.PoolCore(
            max_size, acquire_timeout=acquire_timeout, check_after=check_after,
            idle_timeout=idle_timeout, max_lifetime=max_lifetime,
            connect_timeout=connect_timeout, max_waiters=max_waiters,
            request_timeout=request_timeout)
        self.connections_made = 0  # TCP connections established, ever
        self.checks = 0  # health checks sent
        self._waiters: dict[int, defer.Deferred] = {}
        self._clients: dict[int, RespClientProtocol] = {}  # connected, not yet lost
        self._ids: dict[RespClientProtocol, int] = {}
        self._connecting: dict[int, defer.Deferred] = {}
        self._queue: deque = deque()
        self._running = False
        self._timer = None
        self._closed_waiters: list[defer.Deferred] = []

    # --- the API --------------------------------------------------------------------------------

    def acquire(self) -> defer.Deferred:
        """A Deferred firing with a connected client; cancelling it gives up the place in line."""
        cell: list[int] = []
        d = defer.Deferred(lambda _: self._cancel(cell[0]))
        waiter, actions = self.core.acquire(self.reactor.seconds())
        cell.append(waiter)
        self._waiters[waiter] = d
        self._run(actions)
        return d

    def release(self, client: RespClientProtocol) -> None:
        """Give ``client`` back. One with unanswered requests is closed instead."""
        conn = self._ids.get(client)
        if conn is None:
            return  # lost while in use: already forgotten
        if client.pending:
            self.log.warn("pool: connection {conn} released with {n} request(s) unanswered: "
                          "closed", conn=conn, n=client.pending)
            self.discard(client)
            return
        self._run(self.core.release(conn, self.reactor.seconds()))

    def discard(self, client: RespClientProtocol) -> None:
        """The caller found ``client`` broken: close it; the pool forgets it."""
        conn = self._ids.get(client)
        if conn is not None:
            self._run(self.core.fail(conn, self.reactor.seconds(), "discarded"))
        if client.transport is not None:
            client.transport.abortConnection()

    def close(self) -> defer.Deferred:
        """Drain: fail the waiters, close idle connections now and the others when they are
        released. Fires once every connection is closed."""
        d = defer.Deferred()
        self._closed_waiters.append(d)
        self._run(self.core.drain(self.reactor.seconds()))
        return d

    @property
    def open_connections(self) -> int:
        return len(self._clients) + len(self._connecting)

    # --- carrying out the core's actions --------------------------------------------------------

    def _run(self, actions) -> None:
        """Carry out actions in order; actions that a callback causes (a waiter's callback
        releasing at once) are queued behind them, never run in the middle of them."""
        self._queue.extend(actions)
        if self._running:
            return
        self._running = True
        try:
            while self._queue:
                action = self._queue.popleft()
                getattr(self, "_do_" + type(action).__name__)(action)
        finally:
            self._running = False
        self._schedule()
        self._maybe_closed()

    def _do_Connect(self, action: poolcore.Connect) -> None:
        conn = action.conn
        client = RespClientProtocol(on_lost=self._lost, on_sent=self._sent,
                                    on_answered=self._answered)
        d = endpoints.connectProtocol(self.endpoint, client)
        # before the callbacks, which may run at once; a Close while connecting cancels it
        self._connecting[conn] = d

        def made(_):
            self._connecting.pop(conn, None)
            self.connections_made += 1
            self._ids[client] = conn
            self._clients[conn] = client
            self._run(self.core.connected(conn, self.reactor.seconds()))

        def failed(f):
            self._connecting.pop(conn, None)
            if not f.check(defer.CancelledError):
                self.log.debug("pool: connect failed: {why}", why=f.getErrorMessage())
            self._run(self.core.fail(conn, self.reactor.seconds(), f.getErrorMessage()))

        d.addCallbacks(made, failed)

    def _do_Check(self, action: poolcore.Check) -> None:
        conn = action.conn
        client = self._clients[conn]
        self.checks += 1

        def answered(reply):
            if reply == PONG:
                self._run(self.core.checked(conn, self.reactor.seconds()))
            else:
                self.discard(client)

        def lost(f):
            self.discard(client)  # the core already heard of it from on_lost, or hears now

        client.request("PING").addCallbacks(answered, lost)

    def _do_HandOut(self, action: poolcore.HandOut) -> None:
        self._waiters.pop(action.waiter).callback(self._clients[action.conn])

    def _do_Close(self, action: poolcore.Close) -> None:
        conn = action.conn
        connecting = self._connecting.pop(conn, None)
        if connecting is not None:
            connecting.cancel()
            return
        client = self._clients.get(conn)
        if client is None:
            return
        if action.reason == poolcore.REQUEST_TIMEOUT:
            client.time_out(self.core.request_timeout)  # fails its requests, aborts
        elif action.reason in (poolcore.TIMEOUT, poolcore.UNANSWERED):
            client.transport.abortConnection()  # a check that hangs; replies nobody will read
        else:
            client.transport.loseConnection()

    def _do_FailWaiter(self, action: poolcore.FailWaiter) -> None:
        d = self._waiters.pop(action.waiter)
        text = action.reason + (f": {action.detail}" if action.detail else "")
        d.errback(_ERRORS[action.reason](text))

    def _lost(self, client: RespClientProtocol, why: str) -> None:
        conn = self._ids.pop(client, None)
        if conn is None:
            return
        self._clients.pop(conn, None)
        self._run(self.core.fail(conn, self.reactor.seconds(), why))

    def _sent(self, client: RespClientProtocol) -> None:
        conn = self._ids.get(client)
        if conn is None:
            return
        now = self.reactor.seconds()
        self.core.sent(conn, now)
        timeout = self.core.request_timeout
        timer = self._timer
        if timeout is not None and not (
                timer is not None and timer.active() and timer.getTime() <= now + timeout):
            self._schedule()  # else the timer due first still is: the new deadline is later

    def _answered(self, client: RespClientProtocol) -> None:
        conn = self._ids.get(client)
        if conn is not None:  # the deadline moves later: the timer due earlier is kept
            self.core.answered(conn, self.reactor.seconds())

    def _cancel(self, waiter: int) -> None:
        if self._waiters.pop(waiter, None) is not None:
            self._run(self.core.cancel(waiter, self.reactor.seconds()))

    def _schedule(self) -> None:
        """One timer at the core's next deadline. A timer due earlier is kept (its tick finds
        nothing to do and schedules the next), so the release of a busy connection, which
        moves its idle deadline, costs no cancel and new call."""
        deadline = self.core.next_deadline()
        if self._timer is not None and self._timer.active():
            if deadline is not None and self._timer.getTime() <= deadline:
                return
            self._timer.cancel()
        self._timer = None
        if deadline is not None:
            delay = max(0.0, deadline - self.reactor.seconds())
            self._timer = self.reactor.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._run(self.core.tick(self.reactor.seconds()))

    def _maybe_closed(self) -> None:
        if self._closed_waiters and self.core.drained and not self._clients and (
                not self._connecting):
            waiters, self._closed_waiters = self._closed_waiters, []
            for d in waiters:
                d.callback(None)


class Unpooled(_Executes):
    """The baseline without a pool: ``acquire`` opens a new connection, ``release`` closes it.
    A request unanswered after ``request_timeout`` seconds fails and aborts its connection, as
    in the pool (a timer per request: each connection carries one)."""

    def __init__(self, endpoint, connect_timeout: float = 5.0,
                 request_timeout: float | None = 5.0, reactor=None):
        self.endpoint = endpoint
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.reactor = default_reactor(reactor)
        self.connections_made = 0
        self._open: set[RespClientProtocol] = set()
        self._timers: dict[RespClientProtocol, deque] = {}  # one per request in flight
        self._closed_waiters: list[defer.Deferred] = []

    def acquire(self) -> defer.Deferred:
        client = RespClientProtocol(on_lost=self._lost, on_sent=self._sent,
                                    on_answered=self._answered)
        d = endpoints.connectProtocol(self.endpoint, client)
        d.addTimeout(self.connect_timeout, self.reactor)

        def made(_):
            self.connections_made += 1
            self._open.add(client)
            return client

        def failed(f):
            raise ConnectFailed(f"{poolcore.CONNECT_FAILED}: {f.getErrorMessage()}")

        return d.addCallbacks(made, failed)

    def release(self, client: RespClientProtocol) -> None:
        if client in self._open:
            client.transport.loseConnection()

    def discard(self, client: RespClientProtocol) -> None:
        if client in self._open:
            client.transport.abortConnection()

    def close(self) -> defer.Deferred:
        """Fires once every connection is closed."""
        d = defer.Deferred()
        self._closed_waiters.append(d)
        self._maybe_closed()
        return d

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _sent(self, client: RespClientProtocol) -> None:
        if self.request_timeout is not None:
            timer = self.reactor.callLater(self.request_timeout, client.time_out,
                                           self.request_timeout)
            self._timers.setdefault(client, deque()).append(timer)

    def _answered(self, client: RespClientProtocol) -> None:
        timers = self._timers.get(client)
        if timers:
            timers.popleft().cancel()

    def _lost(self, client: RespClientProtocol, why: str) -> None:
        self._open.discard(client)
        for timer in self._timers.pop(client, ()):
            if timer.active():
                timer.cancel()
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        if self._closed_waiters and not self._open:
            waiters, self._closed_waiters = self._closed_waiters, []
            for d in waiters:
                d.callback(None)
