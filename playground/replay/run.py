"""Sending recorded requests to a target over Twisted, one connection per recorded connection.

:class:`Session` replays one connection: it connects to the target (a client endpoint string,
``playground.common.addresses``), sends the requests of ``compare.plan`` one by one (send, wait
for the reply, send the next) or, ``pipelined``, as they were recorded, keeping the recorded
gaps divided by ``speed`` (``None``: no waiting at all), and decodes what comes back as it comes
(``compare.Live``), so it knows when a reply is complete. A reply that does not come within
``timeout`` seconds of the last request sent or reply completed (or a connection that is not up
within it) ends the session with the connection aborted: bytes that complete no reply do not
extend the wait, so a target streaming pushes or an endless body cannot hold the replay. The
replies of all sessions share a ``ReplyBudget`` (each is kept whole for the comparison): past
it, a session ends with the connection aborted. A
reply that is not the protocol (an SSH banner to an HTTP request) ends the session at once,
the decoder's reason its error. Work per reactor turn is bounded: at most ``SLICE_REQUESTS``
requests or ``SLICE_BYTES`` bytes are written before the session yields to the reactor.

:func:`replay` runs several sessions, at most ``concurrency`` at once, each starting at its
recorded offset from the first (divided by ``speed``). A target that cannot be reached (refused,
no such host, no answer) before any session connected ends the replay at once: the sessions not
started are not (no ten thousand refusals, nor the recorded minutes between them), and every
result carries the reason in ``unreachable``. ``Session.interrupt`` ends a session early (the
replay stopping) with what it saw so far.
"""

from __future__ import annotations

import os
from functools import partial

import attrs
from twisted.internet import defer, error, protocol, task

from playground.common import tlsnames
from playground.common.addresses import client_endpoint
from playground.common.defaultreactor import default_reactor
from playground.common.twistedprivate import direct_write, direct_write_supported
from playground.replay.compare import Decoded, Live
from playground.replay.reassembly import C2S, S2C

SLICE_REQUESTS = 256
SLICE_BYTES = 64 * 1024


@attrs.frozen
class Replayed:
    """What a session saw: the replies decoded, and how it ended when that was not normally."""

    number: int
    decoded: Decoded
    error: str | None = None
    sent: int = 0  # requests written
    seconds: float = 0.0
    unreachable: str | None = None  # why the target could not be reached (error says so too)
    interrupted: bool = False  # the replay stopped before the session ended (Ctrl-C, SIGTERM)


@attrs.define
class ReplyBudget:
    """The reply bytes every session of a replay may still receive: each keeps its replies
    whole until the comparison, so a target answering with 100 MB values would grow the replay
    by as much (``--max-bytes``, the capture's bound, bounds them too)."""

    limit: int
    left: int = attrs.field()

    @left.default
    def _all(self) -> int:
        return self.limit


class _ReplayProtocol(protocol.Protocol):
    def __init__(self, session: Session):
        self.session = session

    def connectionMade(self):
        self.session.connected(self)

    def dataReceived(self, data: bytes):
        self.session.received(data)

    def connectionLost(self, reason):
        self.session.lost(reason)


class Session:
    """One recorded connection replayed; ``start()`` returns a Deferred firing a
    :class:`Replayed`. See the module docstring."""

    def __init__(self, number: int, protocol_name: str, requests: list, target: str,
                 speed: float | None = 1.0, pipelined: bool = False, timeout: float = 10.0,
                 reactor=None, budget: ReplyBudget | None = None):
        self.number = number
        self.requests = requests
        self.target = target
        self.speed = speed
        self.pipelined = pipelined
        self.timeout = timeout
        self.reactor = default_reactor(reactor)
        self.budget = budget
        self.live = Live(protocol_name, locate=False)
        self.done: defer.Deferred = defer.Deferred()
        self._proto: _ReplayProtocol | None = None
        self._write = None  # the transport's write, or the direct write where it applies
        self._next = 0  # index of the next request to send
        self._expected = 0  # replies the requests sent so far ask for
        self._replies = 0
        self._timer = None
        self._send_call = None
        self._error: str | None = None
        self._unreachable: str | None = None
        self._interrupted = False
        self.reached = False  # connected to the target
        self._started = 0.0
        self._closing = False
        self._connecting: defer.Deferred | None = None
        first = requests[0].sent_at if requests else 0.0
        self._offsets = [max(0.0, r.sent_at - first) for r in requests]

    # -- the connection -----------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        self._started = self.reactor.seconds()
        factory = protocol.Factory.forProtocol(lambda: _ReplayProtocol(self))
        self._connecting = client_endpoint(self.reactor, self.target).connect(factory)
        self._arm()
        self._connecting.addErrback(self._connect_failed)
        return self.done

    def _connect_failed(self, failure) -> None:
        if failure.check(defer.CancelledError, error.ConnectingCancelledError):
            self._unreachable = f"no connection within {self.timeout:g} s"
            self._finish(self._unreachable)
        else:
            self._unreachable = connect_reason(failure)
            self._finish(f"cannot connect: {self._unreachable}")

    def not_started(self, why: str) -> defer.Deferred:
        """End the session unstarted: the target could not be reached (``why``)."""
        self._started = self.reactor.seconds()  # no time taken
        self._unreachable = why
        self._finish(f"not replayed: {why}")
        return self.done

    def interrupt(self) -> None:
        """End the session now, the replay stopping (Ctrl-C, SIGTERM): what it saw so far is
        its result, ``interrupted``."""
        if self.done.called:
            return
        if self._connecting is None:
            self._started = self.reactor.seconds()  # never started: no time taken
        self._interrupted = True
        self._closing = True
        self._finish(f"interrupted after {self._next} of {len(self.requests)} requests")
        if self._proto is not None:
            self._proto.transport.abortConnection()
        elif self._connecting is not None:
            self._connecting.cancel()

    def connected(self, proto: _ReplayProtocol) -> None:
        self.reached = True
        self._proto = proto
        transport = proto.transport
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)  # the requests keep their own segmentation
        if direct_write_supported(transport):  # one request, one send: no reactor turn between
            self._write = partial(direct_write, transport)
        else:
            self._write = transport.write
        self._started = self.reactor.seconds()
        self._send()

    def received(self, data: bytes) -> None:
        budget = self.budget
        if budget is not None and not self._closing:
            budget.left -= len(data)
            if budget.left < 0:
                self._stop(f"the replies passed --max-bytes ({budget.limit} bytes in all): not "
                           f"read further")
                return
        replies = self.live.feed(S2C, data, self.reactor.seconds())
        if self.live.problem is not None and not self._closing:  # no reply can follow
            self._stop(self.live.problem)
            return
        if replies:  # bytes that complete no reply (pushes, an endless body) do not count
            self._replies += replies
            self._arm()
        if self._replies >= self._expected and self._send_call is None:
            self._send()

    def _stop(self, error: str) -> None:
        self._error = error
        self._closing = True
        self._proto.transport.abortConnection()

    def lost(self, reason) -> None:
        transport, self._proto = getattr(self._proto, "transport", None), None
        self._replies += self.live.server_done(self.reactor.seconds())
        if self._error is None and not self._closing and (
                self._next < len(self.requests) or self._replies < self._expected):
            why = tlsnames.lost_reason(reason, transport)
            self._error = (f"the server closed the connection after {self._next} of "
                           f"{len(self.requests)} requests ({why})")
        self._finish(self._error)

    # -- sending ------------------------------------------------------------------------------
    def _send(self) -> None:
        self._send_call = None
        proto = self._proto
        if proto is None or self._closing:
            return
        now = self.reactor.seconds()
        written = count = 0
        while self._next < len(self.requests):
            if not self.pipelined and self._replies < self._expected:
                return  # waiting for a reply
            if self.speed is not None:
                due = self._started + self._offsets[self._next] / self.speed
                if due > now + 0.0005:
                    self._send_call = self.reactor.callLater(due - now, self._send)
                    return
            if count >= SLICE_REQUESTS or written >= SLICE_BYTES:
                self._send_call = self.reactor.callLater(0, self._send)
                return
            req = self.requests[self._next]
            self._next += 1
            self._write(req.data)
            self.live.feed(C2S, req.data, now)
            written += len(req.data)
            count += 1
            if req.expects_reply:
                self._expected += 1
                self._arm()
        if self._replies >= self._expected:
            self._close()

    def _arm(self) -> None:
        """(Re)start the reply timeout."""
        if self._timer is not None and self._timer.active():
            self._timer.reset(self.timeout)
        else:
            self._timer = self.reactor.callLater(self.timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self._proto is None and not self._closing:
            self._connecting.cancel()  # the errback ends the session
            return
        if self._replies < self._expected:
            self._error = (f"no reply within {self.timeout:g} s "
                           f"({self._expected - self._replies} awaited)")
            if self._proto is not None:
                self._closing = True
                self._proto.transport.abortConnection()

    def _close(self) -> None:
        self._closing = True
        if self._proto is not None:
            self._proto.transport.loseConnection()

    def _finish(self, error: str | None) -> None:
        if self.done.called:
            return
        for call in (self._timer, self._send_call):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._send_call = None
        now = self.reactor.seconds()
        decoded = self.live.finish(now)
        self.done.callback(Replayed(self.number, decoded, error, self._next,
                                    now - self._started, self._unreachable, self._interrupted))


def connect_reason(failure) -> str:
    """Why a connect failed, as the system says it (``Connection refused``, not Twisted's
    ``Connection was refused by other side: 111: Connection refused.``)."""
    code = getattr(failure.value, "osError", None)
    if isinstance(code, int):
        return os.strerror(code)
    return failure.getErrorMessage().rstrip(".")


def replay(sessions: list, starts: list, speed: float | None, concurrency: int,
           reactor=None) -> defer.Deferred:
    """Run ``sessions`` (with their recorded start times ``starts``), at most ``concurrency``
    at once; fires with their :class:`Replayed` results in order."""
    reactor = default_reactor(reactor)
    gate = defer.DeferredSemaphore(max(1, concurrency))
    first = min(starts) if starts else 0.0
    began = reactor.seconds()
    unreachable: list[str] = []  # why the target cannot be reached: no session starts then
    waits: set = set()  # sessions waiting for their recorded start

    def start(session: Session) -> defer.Deferred:
        if unreachable:
            return session.not_started(unreachable[0])
        return session.start().addCallback(seen)

    def seen(result: Replayed) -> Replayed:
        if result.unreachable and not unreachable and not any(s.reached for s in sessions):
            unreachable.append(result.unreachable)
            for wait in list(waits):
                wait.cancel()  # start now, to end at once
        return result

    def run(session: Session, delay: float) -> defer.Deferred:
        due = began + delay - reactor.seconds()
        if due <= 0 or unreachable:
            return start(session)
        wait = task.deferLater(reactor, due, lambda: None)
        waits.add(wait)
        wait.addErrback(lambda f: f.trap(defer.CancelledError))
        wait.addBoth(lambda _: waits.discard(wait))
        return wait.addCallback(lambda _: start(session))

    runs = []
    for session, at in zip(sessions, starts, strict=True):
        delay = 0.0 if speed is None else max(0.0, (at - first) / speed)
        runs.append(gate.run(run, session, delay))
    return defer.gatherResults(runs, consumeErrors=True)
