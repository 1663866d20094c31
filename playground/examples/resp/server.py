"""``twistd -n tcpplay resp``: a small in-memory Redis-protocol (RESP2/RESP3) server.

A thin Twisted adapter around ``playground.examples.resp.engine.Engine``: each connection feeds its bytes to
a ``playground.codec.parser.RespParser``, runs the commands, and writes all the replies produced by one
``dataReceived`` in one ``write``, up to ``REPLY_SLICE`` bytes: the read's other requests wait,
unread input too, until the client has read them (or, if the transport took them, the next
reactor turn). Pub/sub messages go to the subscribers' transports; a
subscriber that does not read is dropped once its backlog passes a bound. Requests are framed as
redis-server frames them (``RespParser(redis_requests=True)``): bad input (a bulk over
``--max-bulk``, a count over ``INT_MAX``, an inline line over 64 KiB, garbage) gets Redis's
``-ERR Protocol error: ...`` and the connection is closed. Try ``redis-cli -p 6380 ping`` or
``redis-benchmark -p 6380 -q`` (its stock run: every test).

``RespFactory(password=None, ..., reactor=None)`` is usable on its own (e.g. behind a proxy on an
internal port); ``RespService`` bundles its listening port and the periodic expiry sweep.
"""

from __future__ import annotations

import os
import random

from twisted.application import service
from twisted.internet import protocol, task
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python import usage
from zope.interface import implementer

from playground.codec.parser import RespParser
from playground.codec.values import Inline, ProtocolError
from playground.common import tlsnames
from playground.common.addresstext import address_text
from playground.common.limits import LimitedFactory
from playground.common.listening import ListeningService
from playground.common.options import (
    ServerOptions,
    byte_size,
    limit_arguments,
    non_negative_float,
    non_negative_int,
    parameter,
)
from playground.examples.resp.engine import Engine
from playground.examples.resp.replies import Close, Deliver, Reply, encode_reply

DEFAULT_MAX_BULK = 512 * 1024 * 1024  # Redis's proto-max-bulk-len
DEFAULT_MAX_INLINE = 64 * 1024  # Redis's PROTO_INLINE_MAX_SIZE
DEFAULT_MAX_QUERY = 1024 * 1024 * 1024  # Redis's client-query-buffer-limit
DEFAULT_PUBSUB_BACKLOG = 32 * 1024 * 1024  # Redis's pubsub output buffer hard limit
DEFAULT_SWEEP_INTERVAL = 0.1  # Redis's hz 10
# Reply bytes one pass over a read's requests makes: past it, the rest of the read's requests
# wait until the client has read the replies (its transport drained). Without it, one 64 KiB
# read of 7,000 pipelined GETs of a 1 MB value made 7 GB of replies before any flow control
# (three such clients got the server killed by the OOM killer at 24 GB).
REPLY_SLICE = 1 << 20
UNAUTH_MAX_BULK = 16 * 1024  # what Redis lets a client send before it has authenticated
UNAUTH_MAX_ARGS = 10

_TYPE_CHARS = ((bytes, "$"), (int, ":"), (list, "*"))


def protocol_error_text(error: ProtocolError, max_bulk: int = DEFAULT_MAX_BULK) -> str:
    """Redis's wording for a request the parser refused (after ``-ERR Protocol error: ``).

    The parser reads requests as ``processMultibulkBuffer`` and ``processInlineBuffer`` do
    (``redis_requests``); a bulk within ``max_bulk`` refused by the parser's lower bound was
    refused because the client has not authenticated, as is an aggregate over its bound.
    """
    message = error.message
    if message.startswith("inline line longer"):
        text = "too big inline request"
    elif message.startswith("array header longer"):
        text = "too big mbulk count string"
    elif message.startswith("line longer"):
        text = "too big bulk count string"
    elif message.startswith("unbalanced quotes"):
        text = "unbalanced quotes in request"
    elif message.startswith("bulk length"):  # "bulk length N exceeds the limit M"
        big = int(message.split()[2]) > max_bulk
        text = "invalid bulk length" if big else "unauthenticated bulk length"
    elif "bulk length" in message:
        text = "invalid bulk length"
    elif message.startswith("bad aggregate length"):
        text = "invalid multibulk length"
    elif message.startswith("aggregate length"):  # over max_count: only before AUTH
        text = "unauthenticated multibulk length"
    else:
        text = message
    return text


def command_args(value) -> list[bytes] | str | None:
    """The arguments of one request; None to skip it (``*0``, ``*-1``); a str: protocol error."""
    if isinstance(value, Inline):
        return list(value.args)
    if value is None or value == []:
        return None
    if isinstance(value, list):
        for item in value:
            if item is None:
                return "invalid bulk length"  # $-1: Redis takes no null in a request
            if not isinstance(item, bytes):
                got = next((c for t, c in _TYPE_CHARS if isinstance(item, t)), "?")
                return f"expected '$', got '{got}'"
        return value
    return "expected '*'"


@implementer(IPushProducer, IHalfCloseableProtocol)
class RespProtocol(protocol.Protocol, TimeoutMixin):
    """One client connection: bytes in, commands through the engine, replies out."""

    log = Logger()

    def __init__(self):
        self.bytes_in = 0
        self.bytes_out = 0
        self.commands = 0
        self.close_reason = None
        self.opened = 0.0
        self.closing = False
        self.paused = False
        self.backlog = 0  # bytes queued for this client while its transport is full
        self.pending = 0  # bytes received that are not yet a complete request
        self.held = None  # the parsed requests (an iterator) a pass over REPLY_SLICE left
        self._held_call = None
        self.session = None
        self.parser = None
        self.authenticated = False

    # -- connection lifecycle
    def connectionMade(self):
        f = self.factory
        self.callLater = f.reactor.callLater  # TimeoutMixin's clock is the injected reactor
        now = f.reactor.seconds()
        self.opened = now
        self.parser = RespParser(max_bulk=f.max_bulk, max_inline=f.max_inline, max_depth=8,
                                 inline=True, redis_requests=True)
        self.session = f.engine.connect(now, peer=self.peer,
                                        local=address_text(self.transport.getHost()))
        self._authenticated(self.session.authenticated)
        f.clients[self.session.id] = self
        # We are the transport's producer: a client that does not read stops being read from
        # (its write buffer stays bounded), and pub/sub traffic to it is counted (see deliver).
        self.transport.registerProducer(self, True)
        self.setTimeout(f.idle_timeout or None)
        if f.log_connections:
            self.log.info("resp open {peer} id={id}", peer=self.peer, id=self.session.id)

    def _authenticated(self, yes: bool) -> None:
        """Until it authenticates, a client may only send small requests (as with Redis).

        The parser applies the bound as it reads; requests pipelined in the same read as the
        AUTH that lifts it were already held to it.
        """
        self.authenticated = yes
        self.parser.max_bulk = self.factory.max_bulk if yes else min(
            UNAUTH_MAX_BULK, self.factory.max_bulk)
        self.parser.max_count = None if yes else UNAUTH_MAX_ARGS

    def connectionLost(self, reason):
        self.setTimeout(None)
        self.closing = True
        self.held = None
        if self._held_call is not None and self._held_call.active():
            self._held_call.cancel()
        f = self.factory
        if self.session is not None:
            f.engine.disconnect(self.session)
            f.clients.pop(self.session.id, None)
        if self.close_reason is None:
            self.close_reason = tlsnames.client_close_reason(reason, self.transport)
        if f.log_connections:
            self._log_close(f)
        f.connectionClosed(self)

    def _log_close(self, f):
        self.log.info(
            "resp close {peer} id={id} in={bytes_in} out={bytes_out} commands={commands} "
            "duration={duration:.3f}s reason={reason}",
            peer=self.peer,
            id=self.session.id if self.session else 0,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            commands=self.commands,
            duration=f.reactor.seconds() - self.opened,
            reason=self.close_reason,
        )

    def _close(self, reason: str, abort: bool = False) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_reason = reason
        self.setTimeout(None)
        self.transport.unregisterProducer()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def readConnectionLost(self):
        # Like redis-server: answer what was read, then close (nc -N, shutdown(SHUT_WR) clients
        # still get every reply; without this the FIN would drop the queued replies).
        self._close("client finished sending (half-close)")

    def writeConnectionLost(self):
        self._close("client stopped reading", abort=True)

    def timeoutConnection(self):
        if self.session.subscriptions:  # like Redis, subscribers are never idle-closed
            self.resetTimeout()
            return
        self._close(f"idle timeout ({self.factory.idle_timeout:g}s)", abort=True)

    # -- IPushProducer: the transport tells us when its write buffer is full or drained
    def pauseProducing(self):
        self.paused = True
        self.transport.pauseProducing()

    def resumeProducing(self):
        self.paused = False
        self.backlog = 0
        if self.held is not None:
            self._run_held()  # reading resumes once they are done
        elif not self.closing:
            self.transport.resumeProducing()

    def stopProducing(self):
        pass

    # -- requests
    def dataReceived(self, data):
        if self.closing:
            return
        self.resetTimeout()
        n = len(data)
        self.bytes_in += n
        self.pending += n
        self._run(iter(self.parser.feed_sized(data)))

    def _run_held(self) -> None:
        if self._held_call is not None and self._held_call.active():
            self._held_call.cancel()  # the transport drained first
        self._held_call = None
        if self.paused:  # the transport filled meanwhile: its resumeProducing calls again
            return
        held, self.held = self.held, None
        if held is None or self.closing:
            return
        self._run(held)
        if self.held is None and not self.paused and not self.closing:
            self.transport.resumeProducing()

    def _run(self, items) -> None:
        """Run the parsed requests ``items`` (an iterator), writing their replies in one
        ``write``; stop after ``REPLY_SLICE`` bytes of replies and hold the rest (``held``: the
        iterator, where it stopped), not reading meanwhile: they run when the transport has
        drained, or on a later reactor turn."""
        f = self.factory
        engine = f.engine
        session = self.session
        now = f.reactor.seconds()
        out: list[bytes] = []
        made = 0
        others: dict[RespProtocol, list[bytes]] = {}
        close = None
        for value, size in items:
            if isinstance(value, ProtocolError):  # the parser's last item: reply and close
                problem = protocol_error_text(value, f.max_bulk)
                detail = f"{value.message} at offset {value.offset}"
            else:
                self.pending -= size
                args = command_args(value)
                if args is None:
                    continue
                problem = detail = args if isinstance(args, str) else None
                if problem is None and not self.authenticated and type(value) is list:
                    # (Checked here too: requests parsed before a RESET in the same read.)
                    if len(args) > UNAUTH_MAX_ARGS:
                        problem = detail = "unauthenticated multibulk length"
                    elif any(len(arg) > UNAUTH_MAX_BULK for arg in args):
                        problem = detail = "unauthenticated bulk length"
            if problem is not None:
                out.append(b"-ERR Protocol error: %s\r\n" % problem.encode("utf-8", "replace"))
                close = f"protocol error: {detail}"
                break
            self.commands += 1
            for effect in engine.execute(session, args, now):
                if type(effect) is Reply:
                    reply = encode_reply(effect.value, session.protocol)
                    made += len(reply)
                    out.append(reply)
                elif type(effect) is Deliver:
                    target = f.clients.get(effect.session_id)
                    if target is self:
                        out.append(encode_reply(effect.value, session.protocol))
                    elif target is not None and not target.closing:
                        others.setdefault(target, []).append(
                            encode_reply(effect.value, target.session.protocol))
                elif type(effect) is Close:
                    close = f"client sent {effect.reason}"
            if session.authenticated is not self.authenticated:
                self._authenticated(session.authenticated)
            if close:
                break
            if made >= REPLY_SLICE:  # the rest waits (none may be left: that pass runs none)
                self.held = items
                break
        if close is None and self.pending > f.max_query:
            close = f"query buffer over {f.max_query} bytes"
        if out:
            reply = b"".join(out)
            self.bytes_out += len(reply)
            self.transport.write(reply)
        for target, chunks in others.items():
            target.deliver(b"".join(chunks))
        if close:
            self.held = None
            self._close(close)
        elif self.held is not None:
            self.transport.pauseProducing()  # read no more until the held requests have run
            if not self.paused:  # the write did not fill the transport: go on next turn
                self._held_call = f.reactor.callLater(0, self._run_held)

    def deliver(self, data: bytes) -> None:
        """Write pub/sub traffic from another client; drop a subscriber that stopped reading."""
        if self.closing:
            return
        if self.paused:
            self.backlog += len(data)
            if self.backlog > self.factory.pubsub_backlog:
                self._close(f"pub/sub backlog over {self.factory.pubsub_backlog} bytes",
                            abort=True)
                return
        self.bytes_out += len(data)
        self.transport.write(data)


class RespFactory(LimitedFactory):
    """Builds ``RespProtocol``s sharing one ``Engine`` (the keyspace and pub/sub registry)."""

    protocol = RespProtocol
    service_name = "resp"
    refusal_message = b"-ERR max number of clients reached\r\n"

    def __init__(self, password: str | bytes | None = None, max_bulk: int = DEFAULT_MAX_BULK,
                 max_inline: int = DEFAULT_MAX_INLINE, max_query: int = DEFAULT_MAX_QUERY,
                 idle_timeout: float = 0.0, max_connections: int = 0, max_per_peer: int = 0,
                 pubsub_backlog: int = DEFAULT_PUBSUB_BACKLOG, reactor=None,
                 engine: Engine | None = None):
        super().__init__(max_connections, max_per_peer, reactor)
        config = {
            b"maxclients": str(max_connections).encode(),
            b"timeout": b"%d" % idle_timeout,
            b"proto-max-bulk-len": str(max_bulk).encode(),
        }
        if engine is None:
            engine = Engine(password=password, config=config,
                            rng=random.Random(os.urandom(16)))  # SPOP, SRANDMEMBER
        self.engine = engine
        self.max_bulk = max_bulk
        self.max_inline = max_inline
        self.max_query = max_query
        self.idle_timeout = idle_timeout
        self.pubsub_backlog = pubsub_backlog
        self.clients: dict[int, RespProtocol] = {}

    def sweep(self) -> int:
        """Expire keys whose time is up (called periodically by ``ExpirySweep``)."""
        return self.engine.sweep(self.reactor.seconds())


class ExpirySweep(service.Service):
    """Runs ``factory.sweep`` every ``interval`` seconds on the injected reactor's clock."""

    log = Logger()

    def __init__(self, factory: RespFactory, interval: float = DEFAULT_SWEEP_INTERVAL):
        self.factory = factory
        self.interval = interval
        self._loop = None

    def startService(self):
        super().startService()
        self._loop = task.LoopingCall(self.factory.sweep)
        self._loop.clock = self.factory.reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("expiry sweep failed", f))

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None


class RespService(service.MultiService):
    """A ``RespFactory`` listening on an endpoint string, with its expiry sweep."""

    def __init__(self, factory: RespFactory, listen: str, label: str = "resp",
                 sweep_interval: float = DEFAULT_SWEEP_INTERVAL, reactor=None):
        super().__init__()
        self.factory = factory
        self.listening = ListeningService(label, listen, factory, reactor=reactor)
        self.listening.setServiceParent(self)
        if sweep_interval > 0:
            ExpirySweep(factory, sweep_interval).setServiceParent(self)


def _password(flag: str, value) -> str:
    if not value:
        raise usage.UsageError(f"{flag}: the password must not be empty")
    return value


class Options(ServerOptions):
    synopsis = "[options]"
    longdesc = (
        "A small in-memory Redis-protocol server (RESP2 and RESP3): strings, lists, hashes, "
        "sets, sorted sets, expiry, pub/sub, MULTI/EXEC. Try: redis-cli -p 6380 set greeting hello"
    )
    default_listen = "6380"
    shown_defaults = {"max-bulk": "512m", "max-inline": "64k", "max-query": "1g"}
    optParameters = [
        parameter("requirepass", None, "Clients must AUTH (or HELLO ... AUTH default PASSWORD) "
                  "with this password.", _password),
        parameter("max-bulk", DEFAULT_MAX_BULK,
                  "Longest bulk string a request may carry, in bytes (k/m/g suffixes).",
                  byte_size),
        parameter("max-inline", DEFAULT_MAX_INLINE,
                  "Longest inline command line, in bytes (k/m/g suffixes).", byte_size),
        parameter("max-query", DEFAULT_MAX_QUERY,
                  "Most bytes of one unfinished request held per client (k/m/g suffixes).",
                  byte_size),
        parameter("sweep-interval", DEFAULT_SWEEP_INTERVAL,
                  "Seconds between expiry sweeps (0 = expire lazily only).", non_negative_float),
    ]

    def opt_max_clients(self, value):
        """Redis's name for --max-connections: refuse clients beyond this many (0 = unlimited)."""
        self["max-connections"] = non_negative_int("--max-clients", value)


def make_service(options, reactor=None) -> service.IService:
    factory = RespFactory(
        password=options["requirepass"],
        max_bulk=options["max-bulk"],
        max_inline=options["max-inline"],
        max_query=options["max-query"],
        reactor=reactor,
        **limit_arguments(options),
    )
    return RespService(factory, options["listen"], sweep_interval=options["sweep-interval"],
                       reactor=reactor)
