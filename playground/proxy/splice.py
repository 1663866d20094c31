"""The splicing proxy: accept a client, connect to the target, forward every byte both ways.

Modelled on ``twisted.protocols.portforward`` (pause the client until the upstream is connected,
register each transport as the other's streaming producer) plus what it lacks: half-close in both
directions (``IHalfCloseableProtocol``), connect and idle timeouts, resets passed on as aborts,
a TLS leg's failed handshake closed as ``tls-failed`` (OpenSSL's reason logged and recorded; a
``tls:`` target's certificate must name its host: ``playground.common.tlsnames``; a ``tls:``
target's handshake must end within the connect timeout, a TLS client's within the handshake
timeout),
connection limits, pair ids, byte counts, one structured log line on open and on close, graceful
drain on shutdown, and the observer hook the decoder chain uses (see ``playground.proxy.observer``).

Forwarding never waits for observers: bytes are written to the other side first; the observer is
told on a later reactor turn, in bounded slices (``ProxyFactory.flush_observer``): at most
``OBSERVER_SLICE`` bytes or ``OBSERVER_TURN`` seconds per turn, in pieces of at most
``OBSERVER_PIECE``, then a yield (``callLater(0)``) so other clients' reads and writes go first.
Memory stays bounded by pausing, not by decoding faster: a side that fills the queue (more than
``SIDE_BACKLOG`` bytes of its own, or more than a piece while the whole queue is past
``OBSERVER_BACKLOG``) is paused (``pauseProducing`` on its transport: TCP pushes back on that
client or server, and only on it) until the queue has drained to half; past twice that bound
(clients connecting again and again, each adding a pair's open and close) new clients wait in
the listening socket's backlog. Nothing is dropped.
With no observer, ``dataReceived`` is the plain forwarder: a write and a byte count.

Fault injection (``toxics``, a ``playground.faults.model.ToxicSet``): a direction with byte toxics
gets a ``playground.faults.toxics.Pipeline`` and the toxic side class, which feeds the pipeline
and carries out its actions (writes on timers of the factory's reactor, the FIN after delayed
bytes, pause/resume of the reading side, a close or reset naming the toxic); its observer sees the
bytes as the receiver gets them. A direction without toxics keeps the plain classes and pays
nothing. Toxics added, changed or removed apply to open pairs from their next bytes.

Protocol-aware faults (``resp`` and ``http`` toxics): a pair that starts while one exists gets a
``playground.faults.respfaults.RespFaults`` core (``resp``; it wins when both types exist) or a
``playground.faults.httpfaults.HttpFaults`` core (``http``) and the faulted side classes on both
legs (the core needs both directions: it matches replies to commands, responses to requests); a
pair without keeps its classes.
The observer sees what the client sent (a command the fault kept from the server included) and
what the client received (an injected reply as server bytes), so the decoded view and the pcap
show the exchange the client had; each fault acting is one log line naming it and the pair.
Bytes a fault injected or held back reach an observer with ``faulted`` through it (with the
fault's name), so the exchanges they complete are marked in the sinks.
Protocol-aware toxics added later apply to pairs started after them (a core cannot start
mid-stream); changed or removed ones reach open pairs (a removed one lets go of what it holds:
the core's ``forget``). A pair with a core takes no byte toxics
(nor toxics of the other protocol).

A target that leads back to the proxy's own listener (a name or a LAN address of this host that
``--target``'s check cannot see: ``addresses.target_is_listen``) is found at the upstream's
connect: its peer is the listener's address (``ProxyFactory.leads_back``; only when the target's
port is the listener's, so other pairs pay nothing). That pair is closed at once (``how``
``self-loop``), and so is the connection it made, at its accept (its peer is remembered in
``ProxyFactory.looped``) or at once if it was accepted already, so it connects no further: one
pair, not a chain of them until ``--max-connections``. One log line per process says so.

Zero-copy: a pair of a factory with no observer and no toxics (``toxics`` None) whose legs are
both plain TCP moves its bytes with ``splice(2)`` (``playground.proxy.zerocopy``), chosen when
the upstream connects (such a pair to an IP literal is connected by ``zerocopy.Connector``, not
``connectTCP``). A pair with an observer, no toxics and both legs plain TCP forwards by copy in
the same dispatcher (``zerocopy.start_copy``): the observer is told after each write as above
(``observe_data``), and its backpressure stops the reads of the leg (``Splicer.hold``), not the
transport's. ``zero_copy=False`` (``--no-zero-copy``) keeps every pair on the paths above.
"""

from __future__ import annotations

import itertools
import random

from OpenSSL import SSL
from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IHalfCloseableProtocol, IHandshakeListener, ISSLTransport
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python import usage
from zope.interface import implementer

from playground.common import addresses, shutdown, tlsnames, twistedprivate
from playground.common.addresses import Target
from playground.common.addresstext import address_text, format_address
from playground.common.limits import LimitedFactory
from playground.common.twistedprivate import direct_write
from playground.faults.httpfaults import HttpFaults
from playground.faults.model import UPSTREAM
from playground.faults.respfaults import (
    FinToClient,
    FinToServer,
    Note,
    RespFaults,
    ToClient,
    ToServer,
)
from playground.faults.toxics import (
    BYTE_TYPES,
    Abort,
    Close,
    CloseWrite,
    Pause,
    Pipeline,
    Resume,
    Wait,
    Write,
)
from playground.proxy import zerocopy
from playground.proxy.observer import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Endpoint, PairInfo

CLIENT = "client"
SERVER = "server"

def _endpoint(addr) -> Endpoint:
    host = getattr(addr, "host", None)
    if host is not None:
        return Endpoint(host, addr.port)
    name = getattr(addr, "name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return Endpoint(name or "", 0)  # a unix socket; "": one without a name


_said: set[str] = set()  # what was said once per process (the self-loop)

_SELF_LOOP = ("proxy: the target {target} is this proxy's own listen address {listen} (a pair's "
              "connect reached {peer}): closing; fix --target")

# The open and close lines, one each per pair.
_OPEN = "proxy #{pair} open {client} -> {target}"
_CLOSE = ("proxy #{pair} close {client} c2s={bytes_c2s} s2c={bytes_s2c} "
          "duration={duration:.3f}s first={closed_by} how={how}")


def _log_formatted(log: Logger, text_format: str, **fields) -> None:
    """``log.info(text_format, **fields)``, with the text formatted once here (``str.format``)
    and given as the event's ``log_format`` (its braces doubled): an observer formatting the
    event (twistd's runs ``string.Formatter``, in Python: 70 us for the close line with its
    fields, 21 us formatted) has no field left to look up. The fields stay in the event."""
    text = text_format.format(**fields)
    log.info(text.replace("{", "{{").replace("}", "}}"), **fields)


def _tune(transport) -> None:
    """TCP_NODELAY keeps the client's own segmentation (matters for request/response latency)."""
    try:
        transport.setTcpNoDelay(True)
    except Exception:
        pass  # unix sockets and TLS wrappers of them have no Nagle to switch off


def _how(reason) -> str:
    value = reason.value if reason is not None else None  # isinstance: Failure.check's answer
    if value is None or isinstance(value, error.ConnectionDone):
        return "fin"
    if isinstance(value, error.ConnectionAborted):
        return "abort"
    if isinstance(value, error.ConnectionLost):
        return "reset"
    if isinstance(value, SSL.Error):
        return "tls-failed"  # its reason: tlsnames.handshake_reason
    return reason.getErrorMessage()


class _KeepsTcpReason:
    """Mixed into a TLS leg's transport (Twisted's ``TLSMemoryBIOProtocol`` or its subclass,
    ``_keep_tcp_reason``): keeps the reason its TCP connection ended (``tcp_reason``), which
    Twisted's ``connectionLost`` replaces with ``ConnectionLost`` for any end without a
    close_notify, a FIN and a reset alike."""

    tcp_reason = None

    def connectionLost(self, reason):
        self.tcp_reason = reason
        super().connectionLost(reason)


_KEEPING: dict[type, type] = {}  # a TLS transport class -> it with _KeepsTcpReason


def _keep_tcp_reason(transport) -> None:
    """Give a TLS transport (not another kind) ``_KeepsTcpReason``, by ``__class__``."""
    cls = type(transport)
    if not issubclass(cls, TLSMemoryBIOProtocol) or issubclass(cls, _KeepsTcpReason):
        return
    keeping = _KEEPING.get(cls)
    if keeping is None:
        keeping = _KEEPING[cls] = type(cls.__name__, (_KeepsTcpReason, cls), {})
    transport.__class__ = keeping


_NO_CLOSE_NOTIFY = "TCP closed without a TLS close_notify"


@implementer(IHalfCloseableProtocol, IHandshakeListener)
class _Side(protocol.Protocol):
    """One leg of a pair. ``other`` is the opposite leg's transport once both exist."""

    pair: Pair
    role: str
    direction: str  # the direction of the bytes this side receives
    pipeline: Pipeline | None = None  # the toxics on the bytes this side receives
    toxic_call = None  # the pending call of the pipeline's next tick
    handshake_call = None  # a TLS leg's: the pending deadline of its handshake

    def handshakeCompleted(self):
        call, self.handshake_call = self.handshake_call, None
        if call is not None and call.active():
            call.cancel()

    def makeConnection(self, transport):
        _keep_tcp_reason(transport)
        super().makeConnection(transport)

    def _forward(self, data):  # the plain forwarder: a write and a byte count
        self.other.write(data)
        self.nbytes += len(data)

    dataReceived = _forward

    def readConnectionLost(self):
        self.pair.read_done(self.role)

    def writeConnectionLost(self):
        self.pair.write_done(self.role)

    def connectionLost(self, reason):
        self.pair.side_lost(self.role, reason)


class ClientSide(_Side):
    log = Logger()
    role = CLIENT
    direction = CLIENT_TO_SERVER

    def __init__(self):
        self.nbytes = 0
        self.queued = 0  # bytes read but not yet handed to the observer
        self.other = None

    def connectionMade(self):
        self.pair = Pair(self.factory, self)
        self.pair.start()


class ServerSide(_Side):
    role = SERVER
    direction = SERVER_TO_CLIENT

    def __init__(self, pair: Pair):
        self.pair = pair
        self.nbytes = 0
        self.queued = 0
        self.other = pair.client.transport

    def connectionMade(self):
        self.pair.upstream_connected(self)


# The forwarding variants. A side takes its variant by ``__class__`` assignment once the pair is
# connected (no per-instance bound methods, no extra memory per pair):
#   direct:   the other leg is plain TCP, so send at once when its buffer is empty
#             (twistedprivate.direct_write);
#   observed: after forwarding, tell the observer (the decoder chain).
class _Direct:
    def _forward(self, data):
        self.nbytes += len(data)
        direct_write(self.other, data)

    dataReceived = _forward


class _Observed:
    def dataReceived(self, data):
        pair = self.pair
        now = pair.reactor.seconds()  # read now: the write may let the peer run (and answer)
        self._forward(data)
        pair.factory.observe_data(self, data, now)


class DirectClientSide(_Direct, ClientSide):
    pass


class DirectServerSide(_Direct, ServerSide):
    pass


class ObservedClientSide(_Observed, ClientSide):
    unobserved = ClientSide


class ObservedServerSide(_Observed, ServerSide):
    unobserved = ServerSide


class ObservedDirectClientSide(_Observed, DirectClientSide):
    unobserved = DirectClientSide


class ObservedDirectServerSide(_Observed, DirectServerSide):
    unobserved = DirectServerSide


# With toxics: the bytes go through the side's pipeline (Pair.toxic_actions writes them); an
# observed toxic side tells the observer what it writes, so decoders and the pcap see what the
# receiver gets, when it gets it.
class _Toxic:
    observed = False
    direct = False  # the other leg takes twistedprivate.direct_write

    def _forward(self, data):
        self.nbytes += len(data)
        pipeline = self.pipeline
        self.pair.toxic_actions(self, pipeline.feed(data, self.pair.reactor.seconds()))
        if pipeline.paused:  # the peer's producer registration may have resumed us
            self.transport.pauseProducing()

    dataReceived = _forward


class ToxicClientSide(_Toxic, ClientSide):
    pass


class ToxicServerSide(_Toxic, ServerSide):
    pass


class ObservedToxicClientSide(ToxicClientSide):
    observed = True
    unobserved = ToxicClientSide


class ObservedToxicServerSide(ToxicServerSide):
    observed = True
    unobserved = ToxicServerSide


# With protocol-aware faults: both legs feed the pair's core (Pair.fault_actions carries out what
# it says). Observed, the client leg tells the observer what the client sent; what the client
# receives is told as it is written (fault_actions).
# The role and the observer are chosen by the class, not tested per chunk.
class _Faulted:
    observed = False


class FaultedClientSide(_Faulted, ClientSide):
    def _forward(self, data):
        self.nbytes += len(data)
        pair = self.pair
        pair.fault_actions(pair.faults.client_data(data, pair.reactor.seconds()))

    dataReceived = _forward


class FaultedServerSide(_Faulted, ServerSide):
    def _forward(self, data):
        self.nbytes += len(data)
        pair = self.pair
        pair.fault_actions(pair.faults.server_data(data, pair.reactor.seconds()))

    dataReceived = _forward


class ObservedFaultedClientSide(FaultedClientSide):
    observed = True
    unobserved = FaultedClientSide

    def _forward(self, data):
        self.nbytes += len(data)
        pair = self.pair
        now = pair.reactor.seconds()
        pair.factory.observe_data(self, data, now)
        pair.fault_actions(pair.faults.client_data(data, now))

    dataReceived = _forward


class ObservedFaultedServerSide(FaultedServerSide):
    observed = True
    unobserved = FaultedServerSide


_FAULTED_VARIANTS = {  # (role, observed) -> class
    (CLIENT, False): FaultedClientSide, (CLIENT, True): ObservedFaultedClientSide,
    (SERVER, False): FaultedServerSide, (SERVER, True): ObservedFaultedServerSide,
}

_TOXIC_VARIANTS = {  # (role, observed) -> class
    (CLIENT, False): ToxicClientSide, (CLIENT, True): ObservedToxicClientSide,
    (SERVER, False): ToxicServerSide, (SERVER, True): ObservedToxicServerSide,
}

_VARIANTS = {  # (role, direct, observed) -> class
    (CLIENT, False, False): ClientSide, (CLIENT, True, False): DirectClientSide,
    (CLIENT, False, True): ObservedClientSide, (CLIENT, True, True): ObservedDirectClientSide,
    (SERVER, False, False): ServerSide, (SERVER, True, False): DirectServerSide,
    (SERVER, False, True): ObservedServerSide, (SERVER, True, True): ObservedDirectServerSide,
}
_BIT = {CLIENT: 1, SERVER: 2}


class _UpstreamFactory(protocol.ClientFactory):
    """Builds the upstream leg; with ``connectTCP`` also reports a failed connect."""

    noisy = False

    def __init__(self, pair: Pair):
        self.pair = pair

    def buildProtocol(self, addr):
        p = ServerSide(self.pair)
        p.factory = self
        return p

    def clientConnectionFailed(self, connector, reason):
        self.pair._connect_failed(reason)


class Pair:
    """The state of one client/upstream pair: which halves are closed, timers, the summary.

    Slotted and small: thousands of idle pairs cost little more than their sockets.
    """

    __slots__ = ("factory", "reactor", "client", "server", "id", "opened", "info", "connecting",
                 "closed_first", "read_closed", "lost", "finished", "_idle_call", "_idle_mark",
                 "_idle_checks", "toxic_names", "faults", "fault_call", "splicer", "close_reason")
    log = Logger()

    def __init__(self, factory: ProxyFactory, client: ClientSide):
        self.factory = factory
        self.reactor = factory.reactor
        self.client = client
        self.server: ServerSide | None = None
        self.id = factory.next_id()
        self.opened = self.reactor.seconds()
        self.info: PairInfo | None = None
        self.connecting = None  # a Deferred (endpoints), an IConnector (plain TCP) or a
        # zerocopy.Connector (plain TCP to an IP literal, spliced)
        self.closed_first: tuple[str, str] | None = None  # (who, how)
        self.close_reason = ""  # why the proxy closed it, said in the close record (a connect's
        # error)
        self.read_closed = 0  # bits (_BIT) of the roles that sent FIN
        self.lost = 0  # bits of the roles whose connection is gone
        self.finished = False
        self._idle_call = None
        self._idle_mark = -1
        self._idle_checks = 0
        self.toxic_names: set[str] | None = None  # the toxics logged as acting on this pair
        self.faults: RespFaults | HttpFaults | None = None  # the protocol-aware core, if any
        self.fault_call = None  # the pending call of the core's next tick
        self.splicer: zerocopy.Splicer | None = None  # set when the pair splices zero-copy

    # -- set-up ---------------------------------------------------------------
    def start(self):
        f = self.factory
        client = self.client
        client.transport.pauseProducing()  # read nothing until the upstream is up
        _tune(client.transport)
        f.pairs[self.id] = self
        # A TLS client that never completes its handshake (silent, or stopped half-way) would
        # hold its slot of --max-connections for ever: no bytes of its are forwarded to count idle.
        self._handshake_deadline(client, f.handshake_timeout, "--handshake-timeout")
        if f.log_connections:
            _log_formatted(self.log, _OPEN, pair=self.id, client=client.peer,
                           target=f.target_desc)
        if f.looped and client.peer in f.looped:  # our own connect to our listener: no further
            f.looped.discard(client.peer)
            self._own_connection()
            return
        # --connect-timeout: seconds, or 0 for none of ours (see ProxyFactory), on both paths.
        if f.target is not None and f.target.plain_tcp:
            # A pair that will splice, to an IP literal: connected in the splice's own epoll,
            # the socket never a Twisted transport (playground.proxy.zerocopy.Connector).
            connector = (zerocopy.connector(self.client.transport, f.target_family)
                         if f.target_family is not None and f.splices() else None)
            if connector is not None:
                self.connecting = connector
                connector.connect(f.target.host, f.target.port, _UpstreamFactory(self),
                                  f.connect_timeout)
                return
            # Plain TCP: connect like portforward does, with no endpoint wrapper protocol
            # between the transport and us (one call less per chunk, less memory per pair).
            self.connecting = self.reactor.connectTCP(
                f.target.host, f.target.port, _UpstreamFactory(self),
                timeout=f.connect_timeout or None,
            )
            return
        d = f.target_endpoint.connect(_UpstreamFactory(self))
        if f.connect_timeout:
            d.addTimeout(f.connect_timeout, self.reactor)
        self.connecting = d
        d.addErrback(self._connect_failed)

    def _connect_failed(self, reason):
        self.connecting = None
        if self.finished or self.lost & 1:
            return None
        f = self.factory
        if self.closed_first == ("proxy", "self-loop"):  # closed as our own connection
            return None
        if self.closed_first is not None:  # the proxy stopped it (abort: shutdown): no failure of
            # the target's; the close says the proxy's how, as an open pair's would
            self.close_reason = "stopped while connecting"
            self._observe_unreached()
            self.client.transport.loseConnection()
            return None
        # Our timeout: on an endpoint, addTimeout cancels it (endpoints cancel with
        # ConnectingCancelledError, which addTimeout passes on as is); on plain TCP, connectTCP's
        # timeout is a TimeoutError. On an endpoint, a TimeoutError is the endpoint's own.
        ours = (defer.TimeoutError, defer.CancelledError, error.ConnectingCancelledError)
        if f.target is not None and f.target.plain_tcp:
            ours += (error.TimeoutError,)
        if f.connect_timeout and reason.check(*ours):
            why = f"no answer within --connect-timeout {f.connect_timeout:g}s"
        elif reason.check(error.TimeoutError):
            why = "no answer within the target endpoint's own timeout= (30s unless given)"
        else:
            why = reason.getErrorMessage()
        f.connect_failures += 1
        self.log.warn(
            "proxy #{pair} cannot reach {target}: {why}; closing {client}",
            pair=self.id, target=f.target_desc, why=why.rstrip("."), client=self.client.peer,
        )
        self.closed_first = (SERVER, "connect-failed")
        self.close_reason = why
        self._observe_unreached()
        self.client.transport.loseConnection()
        return None

    def _observe_unreached(self):
        """The observer sees the attempt: opened at the accept, never connected (no
        ``server``), closed next with how and why (``_finish``)."""
        f = self.factory
        if f.observer is not None and self.info is None:
            ct = self.client.transport
            self.info = PairInfo(id=self.id, client=_endpoint(ct.getPeer()),
                                 listen=_endpoint(ct.getHost()), target=f.target_desc)
            f.notify("pair_opened", self.info, self.opened)

    def upstream_connected(self, server: ServerSide):
        self.connecting = None
        self.server = server
        if self.lost & 1:  # the client went away while we were connecting
            server.transport.abortConnection()
            return
        ct, st = self.client.transport, server.transport
        f = self.factory
        if f.leads_back(st):
            self._to_itself(st)
            return
        # A TLS target's handshake is part of its connect (as curl's --connect-timeout counts it):
        # its endpoint connects at the TCP connect, and a server that never answers the
        # ClientHello would hold the pair (and the client's bytes) for ever.
        self._handshake_deadline(server, f.connect_timeout, "--connect-timeout")
        _tune(st)
        self.client.other = st
        observed = f.observer is not None
        if observed:
            self.info = PairInfo(
                id=self.id,
                client=_endpoint(ct.getPeer()),
                listen=_endpoint(ct.getHost()),
                target=f.target_desc,
                server=_endpoint(st.getPeer()),
                upstream_local=_endpoint(st.getHost()),
            )
            f.notify("pair_opened", self.info, self.reactor.seconds())
        if f.zero_copy and f.toxics is None:
            # None where it does not apply: the path below. Unobserved: splice(2); observed:
            # by copy in the same dispatcher, the observer told after each write.
            self.splicer = zerocopy.start_copy(self) if observed else zerocopy.start(self)
            if self.splicer is not None:
                if f.idle_timeout:
                    self._schedule_idle()
                return
        ct.registerProducer(st, True)  # a slow client slows the reads from the server
        st.registerProducer(ct, True)  # a slow server slows the reads from the client
        direct = twistedprivate.direct_write_supported
        self.client.__class__ = _VARIANTS[CLIENT, direct(st), observed]
        server.__class__ = _VARIANTS[SERVER, direct(ct), observed]
        if f.idle_timeout:
            self._schedule_idle()
        if f.toxics:
            types = {toxic.type for toxic in f.toxics}
            if "resp" in types or "http" in types:
                self._start_faults(observed, "resp" if "resp" in types else "http")
            for toxic in f.toxics:
                self.toxic_changed("added", toxic)
        ct.resumeProducing()

    # -- a target that leads back to this proxy ------------------------------------
    def _to_itself(self, st) -> None:
        """The upstream ``st`` just connected to this proxy's own listener: close this pair,
        and the pair its connection is (or becomes, at its accept) so it connects no further."""
        f = self.factory
        local, peer = st.getHost(), st.getPeer()
        keys = {format_address(local.host, local.port)}
        if ":" not in local.host:  # as a listener on :: sees it
            keys.add(format_address(f"::ffff:{local.host}", local.port))
        if len(f.looped) > 1024:  # connections never accepted (a full backlog): forget them
            f.looped.clear()
        f.looped.update(keys)
        for pair in list(f.pairs.values()):  # accepted already: it goes no further either
            if pair is not self and pair.client.peer in keys:
                f.looped.discard(pair.client.peer)
                pair._own_connection()
        if "self-loop" not in _said:
            _said.add("self-loop")
            self.log.error(_SELF_LOOP, target=f.target_desc,
                           listen=address_text(f.bound_address()), peer=address_text(peer))
        self.close_reason = "the target is this proxy's own listen address"
        self._observe_unreached()
        self.abort("self-loop")

    def _own_connection(self) -> None:
        """This pair's client is this proxy's own upstream connection (``_to_itself``): close
        it, and its connect if one is under way."""
        self.close_reason = "a connection of this proxy to its own listen address"
        self.abort("self-loop")

    # -- observers ------------------------------------------------------------
    def switch_to_plain(self):
        for side in (self.client, self.server):
            if side is not None:
                side.__class__ = getattr(side, "unobserved", side.__class__)

    # -- toxics ------------------------------------------------------------------
    def toxic_changed(self, event: str, toxic) -> None:
        """A toxic was added, updated or removed: the pipeline of its direction follows."""
        if self.faults is not None:
            kind = "resp" if type(self.faults) is RespFaults else "http"
            if toxic.type == kind and not self.finished:
                self._fault_changed(event, toxic)
            elif (toxic.type in BYTE_TYPES or toxic.type in ("resp", "http")) and (
                    event != "removed"):
                self.log.info("proxy #{pair} toxic {toxic} ({type}) does not act on this pair: "
                              "it has {kind} faults", pair=self.id, toxic=toxic.name,
                              type=toxic.type, kind=kind)
            return
        if toxic.type not in BYTE_TYPES or self.finished:
            return
        side = self.client if toxic.stream == UPSTREAM else self.server
        if side is None or self.lost & _BIT[side.role]:
            return
        pipeline = side.pipeline
        if event == "removed":
            if pipeline is not None:
                now = self.reactor.seconds()
                pipeline.remove(toxic.name, now)
                if not pipeline and not pipeline.done and not pipeline.paused:
                    self._untoxic(side)
                elif not pipeline.done:
                    self._toxic_wait(side, now)  # what it held may be due now
            return
        now = self.reactor.seconds()
        if pipeline is None:
            f = self.factory
            pipeline = Pipeline(random.Random(f.fault_random.getrandbits(64)), f.toxic_max_held)
        acts = pipeline.update(toxic, now) if event == "updated" else pipeline.add(toxic, now)
        if not acts:
            return
        if side.pipeline is None:
            side.pipeline = pipeline
            side.__class__ = _TOXIC_VARIANTS[side.role, hasattr(side, "unobserved")]
            side.direct = twistedprivate.direct_write_supported(side.other)
        if self.toxic_names is None:
            self.toxic_names = set()
        if toxic.name not in self.toxic_names:
            self.toxic_names.add(toxic.name)
            self.log.info("proxy #{pair} toxic {toxic} ({type}, {stream}) acts on this pair",
                          pair=self.id, toxic=toxic.name, type=toxic.type, stream=toxic.stream)
        self._toxic_wait(side, now)  # a cut due at once (reset_peer 0) on the next turn

    # -- protocol-aware faults ---------------------------------------------------------
    def _start_faults(self, observed: bool, kind: str) -> None:
        f = self.factory
        core = RespFaults if kind == "resp" else HttpFaults
        self.faults = core(random.Random(f.fault_random.getrandbits(64)))
        for side in (self.client, self.server):
            side.__class__ = _FAULTED_VARIANTS[side.role, observed]

    def _fault_changed(self, event: str, toxic) -> None:
        faults = self.faults
        if event == "removed":
            faults.remove(toxic.name)
            self.fault_actions(faults.forget(toxic.name, self.reactor.seconds()))
            return
        acts = faults.update(toxic) if event == "updated" else faults.add(toxic)
        if acts:
            self.log.info("proxy #{pair} fault {toxic} ({type}) acts on this pair",
                          pair=self.id, toxic=toxic.name, type=toxic.type)

    def fault_actions(self, actions) -> None:
        """Carry out what the pair's protocol-aware core says."""
        for action in actions:
            kind = type(action)
            if kind is ToServer:
                if not self.lost & 2:
                    self.server.transport.write(action.data)
            elif kind is ToClient:
                if not self.lost & 1:
                    now = self.reactor.seconds()  # before the write, as for a read
                    self.client.transport.write(action.data)
                    if self.server.observed:
                        toxic = action.injected or action.affected
                        if toxic is None:
                            self.factory.observe_data(self.server, action.data, now)
                        else:
                            self.factory.observe_faulted(self.server, action.data, toxic.name,
                                                         action.injected is not None, now)
            elif kind is Wait:
                self._fault_wait(action.at)
            elif kind is Note:
                if action.toxic is None:
                    self.log.info("proxy #{pair} {text}", pair=self.id, text=action.text)
                else:
                    self.log.info("fault {toxic} {text} on pair {pair}", toxic=action.toxic.name,
                                  text=action.text, pair=self.id)
            elif kind is FinToServer:
                self._pass_fin(CLIENT)
            elif kind is FinToClient:
                self._pass_fin(SERVER)
            elif kind is Close or kind is Abort:
                self._toxic_close(action)

    def _fault_wait(self, at: float) -> None:
        call = self.fault_call
        if call is not None and call.active():
            if call.getTime() <= at:
                return
            call.cancel()
        self.fault_call = self.reactor.callLater(max(0.0, at - self.reactor.seconds()),
                                                 self._fault_tick)

    def _fault_tick(self) -> None:
        self.fault_call = None
        if not self.finished and not self.lost & 1:
            self.fault_actions(self.faults.tick(self.reactor.seconds()))

    def _untoxic(self, side: _Side) -> None:
        """The last toxic of ``side``'s direction is gone and nothing is held: back to the plain
        side class (a FIN still to come is passed on as without toxics)."""
        if side.toxic_call is not None and side.toxic_call.active():
            side.toxic_call.cancel()
        side.toxic_call = None
        observed, direct = side.observed, side.direct
        del side.pipeline, side.direct
        side.__class__ = _VARIANTS[side.role, direct, observed]

    def toxic_actions(self, side: _Side, actions) -> None:
        """Carry out what ``side``'s pipeline says, towards ``side.other``."""
        for action in actions:
            kind = type(action)
            if kind is Write:
                now = self.reactor.seconds()  # before the write, as for a read
                if side.direct:
                    direct_write(side.other, action.data)
                else:
                    side.other.write(action.data)
                if side.observed:
                    self.factory.observe_data(side, action.data, now)
            elif kind is Wait:
                self._toxic_wait(side, action.at)
            elif kind is CloseWrite:
                self._pass_fin(side.role)
            elif kind is Pause:
                side.transport.pauseProducing()
            elif kind is Resume:
                if not twistedprivate.producer_paused(side.other):
                    side.transport.resumeProducing()
            elif kind is Close or kind is Abort:
                self._toxic_close(action)

    def _toxic_close(self, action) -> None:
        if self.lost == 3 or self.finished:
            return
        toxic = action.toxic
        self.log.info("proxy #{pair} toxic {toxic} ({type}, {stream}) closes the pair",
                      pair=self.id, toxic=toxic.name, type=toxic.type, stream=toxic.stream)
        self.close("fin" if type(action) is Close else "rst", f"toxic {toxic.name}")

    def _toxic_wait(self, side: _Side, at: float) -> None:
        call = side.toxic_call
        if call is not None and call.active():
            if call.getTime() <= at:
                return
            call.cancel()
        side.toxic_call = self.reactor.callLater(max(0.0, at - self.reactor.seconds()),
                                                 self._toxic_tick, side)

    def _toxic_tick(self, side: _Side) -> None:
        side.toxic_call = None
        if self.finished or self.lost & _BIT[self._other(side.role).role]:
            return
        pipeline = side.pipeline
        self.toxic_actions(side, pipeline.tick(self.reactor.seconds()))
        if not pipeline and not pipeline.done and not pipeline.paused and side.pipeline is pipeline:
            self._untoxic(side)  # its last toxic went while it held bytes: they are out now

    # -- half-close and close ---------------------------------------------------
    def _side(self, role):
        return self.client if role == CLIENT else self.server

    def _other(self, role):
        return self.server if role == CLIENT else self.client

    def read_done(self, role: str):
        """``role`` sent FIN: pass it on as a half-close (after what its toxics still hold);
        finish when both directions are done."""
        if self.closed_first is None:
            self.closed_first = (role, "fin")
        if self.faults is not None:
            now = self.reactor.seconds()
            faults = self.faults
            self.fault_actions(faults.client_eof(now) if role == CLIENT else faults.server_eof(now))
            return
        side = self._side(role)
        if side.pipeline is not None:
            self.toxic_actions(side, side.pipeline.eof(self.reactor.seconds()))
            return
        self._pass_fin(role)

    def _pass_fin(self, role: str):
        self.read_closed |= _BIT[role]
        other = self._other(role)
        side = self._side(role)
        if other is not None and not self.lost & _BIT[other.role]:
            other.transport.unregisterProducer()  # nothing more will come from `side`
            if self.lost & _BIT[role]:  # `side` is gone: its toxics held the close till now
                other.transport.loseConnection()
            else:  # on TLS its close_notify; replies still arrive
                twistedprivate.close_writing(other.transport)
            if self.info is not None:
                self.factory.notify("half_closed", self.id, side.direction, self.reactor.seconds())
        if self.read_closed == 3:
            self._close_both()

    def write_done(self, role: str):
        """Our write half towards ``role`` is closed (after loseWriteConnection)."""
        if self.read_closed & _BIT[role]:
            self._side(role).transport.loseConnection()

    def _close_both(self):
        for side in (self.client, self.server):
            if side is not None and not self.lost & _BIT[side.role]:
                side.transport.loseConnection()

    def side_lost(self, role: str, reason):
        self.lost |= _BIT[role]
        how = _how(reason)
        if self.closed_first is None:
            transport = self._side(role).transport
            if how == "tls-failed":
                self._tls_failed(role, tlsnames.handshake_reason(reason.value, transport, role))
            else:
                self.closed_first = (role, how)
                tcp_reason = getattr(transport, "tcp_reason", None)
                if how == "reset" and tcp_reason is not None and tcp_reason.check(
                        error.ConnectionDone):  # a FIN: still a reset, TLS cannot tell a
                    self.close_reason = _NO_CLOSE_NOTIFY  # truncation from it
        other = self._other(role)
        if role == CLIENT and self.connecting is not None:
            self._cancel_connect()
        if other is not None and not self.lost & _BIT[other.role]:
            side = self._side(role)
            try:
                side.transport.unregisterProducer()
            except Exception:
                pass
            if how == "fin" and self.faults is not None and role == SERVER:
                # replies the faults hold still reach the client: the FIN after them closes it
                self.fault_actions(self.faults.server_eof(self.reactor.seconds()))
            elif how == "fin" and side.pipeline is not None and not side.pipeline.done:
                # its toxics may still hold bytes: the FIN they pass on closes the other side
                self.toxic_actions(side, side.pipeline.eof(self.reactor.seconds()))
            elif how == "fin" and self.read_closed == 3:
                pass  # both ways done: the other side's close is under way already
            elif how == "fin":
                # A clean close: what we already queued for the other side still goes out.
                other.transport.loseConnection()
            else:
                other.transport.abortConnection()
        if self.lost == (3 if self.server is not None else 1):
            self._finish()

    def _tls_failed(self, role: str, why: str) -> None:
        """``role``'s TLS leg failed (``why``): the pair's close says so, and the log."""
        self.closed_first = (role, "tls-failed")
        self.close_reason = why
        self.log.warn("proxy #{pair} TLS handshake with the {side} failed: {why}; closing {client}",
                      pair=self.id, side=role, why=why, client=self.client.peer)

    # -- TLS handshake deadlines --------------------------------------------------
    def _handshake_deadline(self, side: _Side, timeout: float, flag: str) -> None:
        """A TLS leg (``side``) whose handshake has not completed ``timeout`` seconds (the
        option ``flag``'s) after the pair opened fails the pair (``tls-failed``); 0: no
        deadline."""
        if timeout and ISSLTransport.providedBy(side.transport):
            left = max(0.0, self.opened + timeout - self.reactor.seconds())
            side.handshake_call = self.reactor.callLater(left, self._handshake_late, side,
                                                         timeout, flag)

    def _handshake_late(self, side: _Side, timeout: float, flag: str) -> None:
        side.handshake_call = None
        if self.finished or self.lost & _BIT[side.role]:
            return
        if self.closed_first is None:
            self._tls_failed(side.role, f"no TLS handshake within {flag} {timeout:g}s")
        self.abort("tls-failed")

    def abort(self, how: str):
        if self.closed_first is None:
            self.closed_first = ("proxy", how)
        if self.splicer is not None:
            self.splicer.stop()
        for side in (self.client, self.server):
            if side is not None and not self.lost & _BIT[side.role]:
                side.transport.abortConnection()
        if self.connecting is not None:
            self._cancel_connect()

    def close(self, how: str, by: str) -> None:
        """Close both sides now, on request (the web view): ``fin`` gracefully (``loseConnection``:
        what is already queued still goes out, then FIN), ``rst`` by reset (SO_LINGER 0, then
        ``abortConnection``). The close record says ``by`` and ``fin`` / ``reset``.
        A pair still connecting closes its client; the connect is cancelled as when a client
        leaves."""
        if how not in ("fin", "rst"):
            raise ValueError(f"how: fin or rst, not {how!r}")
        self.closed_first = (by, "fin" if how == "fin" else "reset")
        self.log.info("proxy #{pair} closed by {by} ({how})", pair=self.id, by=by, how=how)
        if self.splicer is not None:
            kept = self.splicer.kept() if how == "fin" else ()
            self.splicer.stop()
            for transport, data in kept:  # a copy pair's bytes read, not yet taken: before FIN
                transport.write(data)
        for side in (self.client, self.server):
            if side is None or self.lost & _BIT[side.role]:
                continue
            transport = side.transport
            if how == "fin":
                transport.unregisterProducer()  # a paused producer would hold the close back
                transport.loseConnection()
            else:
                zerocopy.linger_zero(transport)
                transport.abortConnection()

    def _cancel_connect(self):
        connecting, self.connecting = self.connecting, None
        if isinstance(connecting, defer.Deferred):
            connecting.cancel()
        else:
            connecting.stopConnecting()

    def _finish(self):
        if self.finished:
            return
        self.finished = True
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        for side in (self.client, self.server):
            if side is None:
                continue
            for call in (side.toxic_call, side.handshake_call):
                if call is not None and call.active():
                    call.cancel()
        if self.fault_call is not None and self.fault_call.active():
            self.fault_call.cancel()
        f = self.factory
        f.pairs.pop(self.id, None)
        f.connectionClosed(self.client)
        now = self.reactor.seconds()
        who, how = self.closed_first or (CLIENT, "fin")
        summary = {
            "bytes_c2s": self.client.nbytes,
            "bytes_s2c": self.server.nbytes if self.server else 0,
            "duration": now - self.opened,
            "closed_by": who,
            "how": how,
        }
        if self.close_reason:
            summary["reason"] = self.close_reason
        f.bytes_c2s += summary["bytes_c2s"]
        f.bytes_s2c += summary["bytes_s2c"]
        if f.log_connections:
            _log_formatted(self.log, _CLOSE, pair=self.id, client=self.client.peer, **summary)
        if self.info is not None:
            f.notify("pair_closed", self.id, summary, now)
        f.pair_finished()

    # -- idle timeout -----------------------------------------------------------
    # Checked by polling the byte counters a few times per timeout, so the forwarding path
    # never touches a timer: idle is detected between 1x and 1.25x --idle-timeout.
    def _schedule_idle(self):
        self._idle_call = self.reactor.callLater(self.factory.idle_timeout / 4, self._check_idle)

    def _check_idle(self):
        mark = self.client.nbytes + (self.server.nbytes if self.server else 0)
        if mark != self._idle_mark:
            self._idle_mark = mark
            self._idle_checks = 0
        else:
            self._idle_checks += 1
            if self._idle_checks >= 4:
                self._idle_call = None
                self.log.info(
                    "proxy #{pair} idle for {timeout:g}s: closing", pair=self.id,
                    timeout=self.factory.idle_timeout,
                )
                self.abort("idle-timeout")
                return
        self._schedule_idle()


class ProxyFactory(LimitedFactory):
    """Accepts clients; each gets a ``Pair`` connected to ``target``.

    ``target`` is a ``Target`` (``addresses.client_target``), a ``--target`` string (read into
    one), or an ``IStreamClientEndpoint``. ``observer`` (optional) follows
    ``playground.proxy.observer.PairObserver``. ``connect_timeout``: seconds the target has to
    accept, on every kind of target (a ``tls:`` one's handshake included); 0 sets no timeout of
    ours (then what bounds a connect is the system's own, about two minutes on Linux, or an
    endpoint string's ``timeout=``, Twisted's default 30 s). ``handshake_timeout``: seconds a
    client of a TLS listener has to complete its handshake; 0: no bound.
    """

    protocol = ClientSide
    service_name = "proxy"
    log = Logger()

    def __init__(self, target, observer=None, connect_timeout: float = 5.0,
                 handshake_timeout: float = 10.0, idle_timeout: float = 0.0,
                 max_connections: int = 0, max_per_peer: int = 0,
                 reactor=None, target_ca: str | None = None, toxics=None,
                 fault_seed: int | None = None, zero_copy: bool = True):
        super().__init__(max_connections, max_per_peer, reactor)
        if isinstance(target, str):
            target = addresses.client_target(target)
        if isinstance(target, Target):
            self.target: Target | None = target
            self.target_desc = target.desc
            self.target_endpoint = _client_endpoint(self.reactor, target, target_ca)
            # an IP literal's family: its spliced pairs connect in zerocopy's epoll
            self.target_family = zerocopy.ip_family(target.host) if target.plain_tcp else None
        else:
            self.target_family = None
            self.target = None
            self.target_desc = repr(target)
            self.target_endpoint = target
        self.observer = observer
        attached = getattr(observer, "attached", None)  # an observer that wakes and detaches us
        if attached is not None:
            attached(self)
        # an observer whose calls only queue (a decoder process's pipe): told at once, while
        # nothing waits in our queue before it and it is not blocked
        self._at_once = getattr(observer, "takes_at_once", False)
        self._queued: list = []
        self._queued_bytes = 0
        self._head_off = 0  # bytes of the first queued chunk already handed over
        self._flush_call = None
        self._paused: dict = {}  # id(side) -> side, paused while the observer backlog drains
        self._accepts_held = None  # the listening port that stopped accepting (_hold_accepts)
        self.connect_timeout = connect_timeout
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.pairs: dict[int, Pair] = {}
        self.ids = itertools.count(1)  # pair ids; may be shared by several proxies
        self.connect_failures = 0
        self.bytes_c2s = 0
        self.bytes_s2c = 0
        self._drained: defer.Deferred | None = None
        self.toxics = toxics  # a ToxicSet: pairs started after a change see it, open ones too
        self.fault_random = random.Random(fault_seed)  # toxicity, jitter and slices, per pair
        self.toxic_max_held = 1024 * 1024  # bytes a pipeline holds before pausing its reader
        # A pair with no observer and no toxics (``toxics`` None: none can come) splices kernel
        # to kernel where it can (playground.proxy.zerocopy); False: always in Python.
        self.zero_copy = zero_copy
        if toxics is not None:
            toxics.listen(self._toxic_changed)
        # The ListeningService that listens with it (ProxyService sets it): a pair whose
        # upstream reached that listener is closed (leads_back); the address is read once per
        # listening port. looped: the peers (address texts) of such connections, not accepted
        # yet: closed at their accept.
        self.listening = None
        self._bound: tuple = (None, None)
        self.looped: set[str] = set()

    def bound_address(self):
        """The address its listener is bound to (``getHost``), or None when not listening."""
        port = self.listening.port if self.listening is not None else None
        if port is None:
            return None
        if self._bound[0] is not port:
            self._bound = (port, port.getHost())
        return self._bound[1]

    def leads_back(self, transport) -> bool:
        """Whether ``transport``, a pair's upstream leg just connected, reached this proxy's own
        listener (``addresses.leads_back``). Only asked of the socket when the target's port is
        the listener's (or unknown): other pairs pay a comparison."""
        if self.listening is None:
            return False
        bound = self.bound_address()
        port = getattr(bound, "port", None)
        target = self.target
        if not port or (target is not None and target.port is not None and target.port != port):
            return False
        try:
            peer, local = transport.getPeer(), transport.getHost()
        except Exception:  # a transport that cannot say: not a loop we can see
            return False
        if getattr(peer, "port", None) is None or getattr(local, "host", None) is None:
            return False  # a unix socket's
        return addresses.leads_back(bound.host, port, peer.host, peer.port, local.host)

    def splices(self) -> bool:
        """Whether its pairs splice kernel to kernel where their legs allow (zerocopy.start)."""
        return self.zero_copy and self.observer is None and self.toxics is None

    def startFactory(self):
        if self.splices():
            zerocopy.reserve_fds(self.limits.max_connections)  # six fds a pair, not two

    def _toxic_changed(self, event: str, toxic) -> None:
        for pair in list(self.pairs.values()):
            if pair.server is not None:  # still connecting: it reads the set once connected
                pair.toxic_changed(event, toxic)

    def next_id(self) -> int:
        return next(self.ids)

    # Observers are told on a later reactor turn, in slices: each turn hands over at most
    # OBSERVER_SLICE bytes (a chunk larger than OBSERVER_PIECE in pieces: decoders take any split)
    # and stops early once it has taken OBSERVER_TURN seconds (the reactor's clock), after at most
    # one slice of the observer's own held work (``held``/``work``, see ``chain.Chain.work``);
    # then it yields with callLater(0). Memory stays bounded by pausing the sides that fill the
    # queue (``_pause``): one with more than SIDE_BACKLOG bytes queued, and, once the whole queue
    # is past OBSERVER_BACKLOG, any with more than a piece queued (a client sending a PING now
    # and then is never paused for another's flood). A paused side is resumed when its own
    # queue and the whole queue are down to half their bounds. A pair's open, half-closes and
    # close count EVENT_COST each (what a queued event keeps alive: the pair, its sides); no
    # pause bounds those of clients that connect again and again, each sending a little, so past
    # twice OBSERVER_BACKLOG new clients wait in the listening socket's backlog (``_hold_accepts``)
    # until the queue is down to OBSERVER_BACKLOG (an observer that is behind: a decoder process
    # stopped or slow).
    OBSERVER_SLICE = 64 * 1024
    OBSERVER_PIECE = 4 * 1024
    OBSERVER_TURN = 0.005
    OBSERVER_BACKLOG = 4 * 1024 * 1024
    SIDE_BACKLOG = 1024 * 1024
    EVENT_COST = 1024

    def notify(self, method: str, *args):
        """Queue a pair's open, half-close or close for the observer (bytes: observe_data)."""
        observer = self.observer
        if observer is None:
            return
        if self._at_once and not self._queued and not observer.blocked:
            getattr(observer, method)(*args)  # it only queues: no turn of ours to wait for
            return
        self._queued.append((method, args))
        self._queued_bytes += self.EVENT_COST
        self._queued_more()

    def _queued_more(self):
        """Something was queued: past twice OBSERVER_BACKLOG new clients wait; a flush is due."""
        if self._queued_bytes > 2 * self.OBSERVER_BACKLOG:
            self._hold_accepts(True)
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush_observer)

    def observe_data(self, side: _Side, data: bytes, now: float):
        """Queue bytes ``side`` read (and forwarded) for the observer, dated ``now``: when they
        were read, taken before the write that forwarded them (a write to a loopback peer may
        let it run and answer first); pause ``side`` when it fills the queue (see
        OBSERVER_BACKLOG)."""
        observer = self.observer
        if observer is None:
            return
        pair = side.pair
        if self._at_once and not self._queued and not observer.blocked:
            observer.data(pair.id, side.direction, data, now)  # it only queues (takes_at_once)
            return
        n = len(data)
        self._queued.append(("data", (pair.id, side.direction, data, now, side)))
        self._queued_bytes += n
        side.queued += n
        if side.queued > self.SIDE_BACKLOG or (
                self._queued_bytes > self.OBSERVER_BACKLOG and side.queued > self.OBSERVER_PIECE):
            self._pause(side)
        self._queued_more()

    def observe_faulted(self, side: _Side, data: bytes, fault: str, injected: bool, now: float):
        """Queue bytes towards ``side``'s receiver that a fault named ``fault`` injected
        (``injected``) or held back, dated ``now`` (before the write, as ``observe_data``'s),
        for the observer's ``faulted``: whole, not counted against
        the backlog, so only up to a piece (an injected reply is short; held-back bytes past a
        piece go as data, unmarked, in pieces). An observer without ``faulted`` gets data."""
        observer = self.observer
        if observer is None:
            return
        if not hasattr(observer, "faulted") or len(data) > self.OBSERVER_PIECE:
            self.observe_data(side, data, now)
            return
        self.notify("faulted", side.pair.id, side.direction, data, now, fault, injected)

    def _pause(self, side: _Side):
        """Stop reading from ``side`` until the queue drains. The splice's own producer
        registration may resume it earlier (its peer's buffer drained): then its next read
        pauses it again, so the queue grows by a read at most. A pair forwarding by copy in the
        zero-copy dispatcher stops its leg's reads (``Splicer.hold``): they stay stopped until
        ``_resume_paused``, whatever the destination does."""
        pair = side.pair
        if pair.lost & _BIT[side.role]:
            return
        if pair.splicer is not None:  # a copy pair: its leg, never the reactor's reads
            pair.splicer.hold(side.role, True)
        else:
            side.transport.pauseProducing()
        self._paused[id(side)] = side

    def _hold_accepts(self, hold: bool) -> None:
        """Stop (``hold``) or start again accepting new clients on the listener, whose socket's
        backlog holds them meanwhile (see OBSERVER_BACKLOG). Started again only on the port it
        was stopped on, if that still listens."""
        port = self.listening.port if self.listening is not None else None
        if hold:
            if self._accepts_held is None and hasattr(port, "stopReading"):
                port.stopReading()
                self._accepts_held = port
                self.log.warn("proxy: {mib} MiB wait for the decoder (behind, or stopped): new "
                              "clients wait in the listen backlog until it catches up",
                              mib=self._queued_bytes >> 20)
            return
        held, self._accepts_held = self._accepts_held, None
        if held is not None and held is port:
            port.startReading()
            self.log.info("proxy: the decoder caught up: accepting new clients again")

    def _resume_paused(self, everyone: bool = False):
        if not everyone and self._queued_bytes > self.OBSERVER_BACKLOG // 2:
            return
        for key, side in list(self._paused.items()):
            if not everyone and side.queued > self.SIDE_BACKLOG // 2:
                continue
            del self._paused[key]
            pair = side.pair
            if pair.finished or pair.lost & _BIT[side.role]:
                continue
            if pair.splicer is not None:  # a copy pair: its leg reads again (unless stopped,
                pair.splicer.hold(side.role, False)  # or its destination has bytes to take)
                continue
            if twistedprivate.producer_paused(side.other):
                continue  # its peer's buffer is full: the peer resumes it when drained
            side.transport.resumeProducing()

    def flush_observer(self, everything: bool = False):
        """Hand queued events to the observer: one turn's slice, then yield (``callLater(0)``)
        while more is queued; ``everything``: all of it now (shutdown)."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        observer = self.observer
        if observer is None:
            self._queued, self._queued_bytes, self._head_off = [], 0, 0
            return
        if not everything and getattr(observer, "blocked", False):
            return  # it wakes us (wake_observer) when it takes more
        queued, self._queued = self._queued, []
        held = getattr(observer, "held", None)  # work the observer keeps for later turns
        budget = self.OBSERVER_SLICE
        piece = self.OBSERVER_PIECE
        spent = 0
        events = 0  # opens, half-closes and closes handed over (EVENT_COST each)
        i = 0
        off = self._head_off
        n = len(queued)
        method = None
        data = observer.data
        clock = self.reactor.seconds
        deadline = clock() + self.OBSERVER_TURN
        try:
            while True:
                if held and (observer.work() or clock() >= deadline) and not everything:
                    break  # one slice of held work per turn
                if i >= n:
                    if everything and held:
                        continue  # shutdown: the held work too
                    break
                if (spent >= budget or clock() >= deadline) and not everything:
                    break
                method, args = queued[i]
                if method == "data":
                    pair_id, direction, chunk, now, side = args
                    end = off + piece
                    if len(chunk) > end:  # a piece of it: each byte is copied once
                        part = chunk[off:end]
                        off = end
                    else:
                        part = chunk[off:] if off else chunk
                        off = 0
                        i += 1
                    side.queued -= len(part)
                    spent += len(part)
                    data(pair_id, direction, part, now)
                else:
                    i += 1
                    events += 1
                    getattr(observer, method)(*args)
        except Exception:
            self.log.failure("observer {observer!r} raised in {method}; detached, forwarding goes on",
                             observer=observer, method=method)
            self.detach_observer()
            return
        self._head_off = off  # 0 unless queued[i] was handed over in part
        if i < n:
            self._queued = queued[i:] + self._queued if self._queued else queued[i:]
        self._queued_bytes = max(0, self._queued_bytes - spent - events * self.EVENT_COST)
        if self._paused:
            self._resume_paused()
        if self._accepts_held is not None and self._queued_bytes <= self.OBSERVER_BACKLOG:
            self._hold_accepts(False)
        if (self._queued or held) and self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush_observer)

    def wake_observer(self):
        """The observer takes bytes again (it was ``blocked``): hand it what is queued."""
        if self.observer is not None and self._queued and self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self.flush_observer)

    def detach_observer(self):
        """Forward on without the observer (it raised, or its process is gone): what was queued
        for it is dropped, the pairs it paused read again, and every pair forwards plainly; the
        log says each pair's open and close, as the console view (gone with it) did."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        self.observer = None
        self._at_once = False
        self.log_connections = True
        self._queued, self._queued_bytes, self._head_off = [], 0, 0
        self._resume_paused(everyone=True)
        self._hold_accepts(False)
        for pair in self.pairs.values():
            pair.switch_to_plain()

    # -- graceful shutdown --------------------------------------------------------
    def drain(self, timeout: float) -> defer.Deferred:
        """Fire when every open pair has finished, aborting what remains after ``timeout``,
        or at once on a second SIGINT/SIGTERM (see ``playground.common.shutdown``)."""
        if not self.pairs:
            return defer.succeed(None)
        self._drained = defer.Deferred()
        d = self._drained

        def deadline():
            if self.pairs:
                self.log.warn("proxy drain time over: aborting {n} pair(s)", n=len(self.pairs))
                self.abort_all()

        def now():
            if self.pairs:
                self.log.info("proxy stopping now: aborting {n} pair(s)", n=len(self.pairs))
                self.abort_all()

        release = shutdown.during_drain(now, self.reactor)
        self.log.info("proxy draining {n} open pair(s) for up to {timeout:g}s{hint}",
                      n=len(self.pairs), timeout=timeout, hint=shutdown.hint())
        call = self.reactor.callLater(timeout, deadline)

        def done(result):
            release()
            if call.active():
                call.cancel()
            return result

        return d.addBoth(done)

    def close_pair(self, pair_id: int, how: str, by: str) -> bool:
        """Close open pair ``pair_id`` (``Pair.close``); False if there is no such open pair."""
        pair = self.pairs.get(pair_id)
        if pair is None or pair.finished:
            return False
        pair.close(how, by)
        return True

    def abort_all(self):
        for pair in list(self.pairs.values()):
            pair.abort("shutdown")

    def pair_finished(self):
        if self._drained is not None and not self.pairs:
            d, self._drained = self._drained, None
            d.callback(None)


def _client_endpoint(reactor, target: Target, target_ca: str | None):
    """``addresses.client_endpoint``, except that ``tls:`` with ``--target-ca`` trusts only that
    CA (its certificate held to the host all the same: ``tlsnames``)."""
    if target_ca and target.kind == "tls":
        from twisted.internet import endpoints, ssl

        try:
            with open(target_ca, "rb") as f:
                ca = ssl.Certificate.loadPEM(f.read())
        except Exception as e:
            raise usage.UsageError(f"--target-ca: cannot read {target_ca}: {e}")
        options = ssl.optionsForClientTLS(target.host, trustRoot=ca)
        tcp = endpoints.HostnameEndpoint(reactor, target.host, target.port)
        return tlsnames.NameCheckedEndpoint(endpoints.wrapClientTLS(options, tcp), target.host)
    return addresses.client_endpoint(reactor, target.desc, "--target")
