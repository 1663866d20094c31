"""Every use of Twisted's private API in ``playground``, in one module.

Nothing else in the package reads an underscore name of a Twisted object or module, or the
internals of ``twisted.internet.tcp`` connections; code that needs one calls a function here.
``tests/common/test_twistedprivate.py`` holds each item below to its contract on real
``tcp.Server`` and ``tcp.Client`` connections and real reactors, so a Twisted release that
renames or changes one fails the tests, not a deployment. Checked against Twisted 24.3.0, 25.5.0,
26.4.0 and 26.10.0 (the contract tests and the proxy's pass on each); ``pyproject.toml`` pins
Twisted to that range (``>=24.3,<27``): raise the bound once they pass on a newer release.

What is used, and why:

* **Direct write** (``direct_write_supported``, ``direct_write``; the proxy's forwarding and the
  HTTP example server's responses). ``transport.write`` queues the bytes and asks the reactor to
  watch for writability; the send happens on a later reactor turn, costing two epoll changes and
  a turn per chunk. When nothing is queued, sending at once is what would happen next anyway,
  minus that cost. It reads, on ``twisted.internet.tcp.Server`` / ``Client`` (matched by exact
  type; TLS wraps the socket, so a transport with ``TLS`` set or providing ``ISSLTransport`` is
  never written to directly):

  - ``connected``, ``disconnecting`` (public attributes of ``FileDescriptor``, outside
    ``ITransport``), ``_writeDisconnecting`` (set by ``loseWriteConnection``) and ``_aborting``
    (set by ``abortConnection``): the send happens only on a connection open both ways from our
    side, as ``FileDescriptor.write`` would send it;
  - ``dataBuffer``, ``offset``, ``_tempDataLen``: ``FileDescriptor``'s write buffer, which must be
    empty (else the bytes would overtake queued ones);
  - ``writeSomeData(data)``: ``tcp.Connection``'s one ``send`` (an int, the bytes the kernel took,
    or an exception when the connection is lost).

  Whatever is not sent at once goes to ``transport.write``, which refuses, queues, and pauses a
  registered producer exactly as it always does.
* **Bytes queued** (``pending_write_bytes``; the HTTP example server's send and linger
  deadlines, ``limits.BoundedChannel``'s idle deadline): ``len(dataBuffer) - offset +
  _tempDataLen``.
* **Producer paused** (``producer_paused``; the proxy's observer backlog): ``producerPaused``,
  ``FileDescriptor``'s flag that it paused its registered streaming producer (its buffer is full;
  it resumes the producer when it drains).
* **Endpoint strings** (``endpoint_args``, ``check_server_endpoint``; ``playground.common.addresses``):
  ``endpoints._parse`` splits a description into positional and ``key=value`` parameters,
  unescaped, the way ``clientFromString`` reads it; ``endpoints._parseServer(desc, None)`` runs
  ``serverFromString``'s parser for a description without listening (a type a plugin parses, it
  only finds the plugin: one of Twisted's own, ``tls:``, ``tcp6:``, is then run with no
  reactor). Used to check what users type and to read a user's ``tcp:``/``tls:`` string once; a target built from ``PORT`` or
  ``HOST:PORT`` is never re-read (see ``addresses.Target``).
* **A TLS listener's contexts** (``prepare_tls_contexts``; ``addresses.server_endpoint``):
  ``SSL4ServerEndpoint._sslContextFactory``, the ``CertificateOptions`` ``serverFromString``
  built from an ``ssl:`` string, whose (cached) context gets tcpplay's ALPN answer at once.
  For a ``tls:`` string (Twisted 26's SNI endpoint, ``twisted.protocols._sni``: an OpenSSL
  context per certificate name of its directory, each with Twisted's ALPN answer, out of
  reach), its ``TLSServerEndpoint.connectionCreator`` (an ``SNIConnectionCreator``) is wrapped
  by one whose connections start on the creator's ``defaultContext`` (as its own do) and prepare
  each context they are given (``Connection.set_context``, which Twisted's server name callback
  calls to switch to the name's context) once, so tcpplay's ALPN answer reaches every one.
* **The log of Twisted's TLS name check** (``quiet_no_subject_alt_name``;
  ``tlsnames.NameCheckedEndpoint``): ``twisted.internet._sslverify._log``, the module's
  ``Logger``, whose public ``observer`` is wrapped to drop one event: service-identity's
  ``CertificateError`` (a certificate without any subjectAltName), which Twisted's check logs
  as a critical traceback (``while verifying certificate``) and lets through. ``tlsnames``
  refuses such a certificate and says why in one line; the traceback before that line read as
  a crash. Any other event of that logger passes.
* **A TLS transport's half-close** (``close_writing``; the proxy's half-close, the chat
  server's polite close): ``TLSMemoryBIOProtocol`` has no ``loseWriteConnection`` of its own;
  ``ProtocolWrapper.__getattr__`` hands the call to the TCP connection beneath, whose FIN ends
  the stream without a close_notify (a truncation, to a TLS peer). On TLS the whole close is
  used instead (``limits.BoundedChannel`` makes the same choice for its channel).
* **Reactor state** (``reactor_stopped``, ``forget_exit_signal``; shutdown and the console sink):
  ``ReactorBase._stopped`` (true from ``reactor.stop()`` on, and before ``run()``), and
  ``_exitSignal`` (the signal that stopped the reactor, which ``twistd`` raises again after
  shutdown).
* **Request head counters** (``head_size``, ``head_fields``; ``limits.BoundedChannel``, the
  web view's, toxiproxy API's and metrics' channel): ``HTTPChannel._receivedHeaderSize`` (the
  bytes of the request head's lines so far, request line included) and
  ``_receivedHeaderCount`` (the header fields stored so far), both reset when a request is
  complete (``allContentReceived``). The channel asks them before Twisted's own checks of
  ``totalHeadersSize`` and ``maxHeaders`` would answer a bare 400, to answer 431 instead,
  rather than keeping counts of its own beside Twisted's. A release without them reads 0:
  Twisted's own checks (and their 400) then apply.

Not here: what Twisted documents as public on ``FileDescriptor``, such as ``bufferSize`` (the
chat server sets it; the contract tests read it).
"""

from __future__ import annotations

import weakref

from OpenSSL import SSL
from twisted.internet import endpoints, tcp
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, ISSLTransport
from zope.interface import implementer

try:
    from twisted.protocols._sni import TLSServerEndpoint as _SNIServerEndpoint
except ImportError:  # Twisted before 26 has no tls: server endpoint
    _SNIServerEndpoint = None

_PLAIN_TCP = (tcp.Server, tcp.Client)

# What direct_write reads on a transport (see the module docstring): a Twisted release without
# one of them makes direct_write_supported() false (plain writes: correct, a little slower) and
# the contract tests fail.
_WRITE_STATE = ("connected", "disconnecting", "_writeDisconnecting", "_aborting", "dataBuffer",
                "offset", "_tempDataLen", "writeSomeData")


def direct_write_supported(transport) -> bool:
    """Whether ``direct_write`` may send on ``transport``: a plain (not TLS) TCP connection of
    ``twisted.internet.tcp`` with every attribute it reads. Checked once per connection."""
    return (type(transport) in _PLAIN_TCP and not getattr(transport, "TLS", False)
            and not ISSLTransport.providedBy(transport)
            and all(hasattr(transport, name) for name in _WRITE_STATE))


def direct_write(transport, data: bytes) -> None:
    """``transport.write(data)`` for a transport ``direct_write_supported`` accepts, sending at
    once when the connection is open both ways from our side and nothing is queued."""
    t = transport
    if (t.connected and not t.disconnecting and not t._writeDisconnecting and not t._aborting
            and not t.dataBuffer and not t._tempDataLen):
        sent = t.writeSomeData(data)
        if sent == len(data):
            return
        if type(sent) is int:
            data = data[sent:]
    t.write(data)


def pending_write_bytes(transport) -> int:
    """Bytes written to a transport ``direct_write_supported`` accepts and not yet sent."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def producer_paused(transport) -> bool:
    """Whether ``transport`` paused its registered streaming producer (its buffer is full)."""
    return getattr(transport, "producerPaused", False)


def endpoint_args(desc: str) -> tuple[list[str], dict[str, str]]:
    """An endpoint description as ``clientFromString`` reads it: the positional parameters (the
    endpoint type first) and the ``key=value`` ones, unescaped."""
    return endpoints._parse(desc)


def check_server_endpoint(desc: str) -> None:
    """Raise what ``serverFromString`` would raise for ``desc``, without listening (files an
    ``ssl:`` description names are read, the directory a ``tls:`` one names). A type parsed by
    a plugin of Twisted's own (``tls:``, ``tcp6:``, ``systemd:``) is built with no reactor, as
    its parser only reads the string; another plugin's type is only looked up."""
    parser, args, kw = endpoints._parseServer(desc, None)
    if not isinstance(parser, str) and type(parser).__module__.startswith("twisted."):
        parser.parseStreamServer(None, *args, **kw)


def prepare_tls_contexts(endpoint, prepare) -> bool:
    """Have ``prepare(context)`` called on each OpenSSL context the handshakes of a TLS server
    endpoint (``serverFromString``'s) use, before they use it: an ``ssl:`` one's (cached: at
    once), a ``tls:`` one's (a context per certificate name: once each, the default one a
    connection starts on and the one Twisted's server name callback switches it to). False
    (nothing done) for another kind."""
    if isinstance(endpoint, endpoints.SSL4ServerEndpoint):
        prepare(endpoint._sslContextFactory.getContext())
        return True
    if _SNIServerEndpoint is None or not isinstance(endpoint, _SNIServerEndpoint):
        return False
    endpoint.connectionCreator = _PreparingCreator(endpoint.connectionCreator, prepare)
    return True


def quiet_no_subject_alt_name() -> None:
    """Drop Twisted's critical traceback for a certificate without any subjectAltName (see
    the module docstring); idempotent."""
    from service_identity import CertificateError
    from twisted.internet import _sslverify

    log = _sslverify._log
    observer = log.observer
    if getattr(observer, "drops_certificate_error", False):
        return

    def observe(event):
        failure = event.get("log_failure")
        if failure is not None and failure.check(CertificateError) and (
                event.get("log_format") == "while verifying certificate"):
            return
        observer(event)

    observe.drops_certificate_error = True
    log.observer = observe


def close_writing(transport) -> None:
    """Send a FIN after what is queued, reads going on; on TLS, which has no half-close of its
    own, its close_notify (a whole close: TLS reads on until the peer's)."""
    if ISSLTransport.providedBy(transport):
        transport.loseConnection()
    else:
        transport.loseWriteConnection()


@implementer(IOpenSSLServerConnectionCreator)
class _PreparingCreator:
    """An ``SNIConnectionCreator`` whose connections prepare each context they are given."""

    def __init__(self, creator, prepare):
        self._creator = creator
        self._prepare = prepare
        self._prepared = weakref.WeakSet()

    def _prepare_once(self, context) -> None:
        if context not in self._prepared:
            self._prepare(context)
            self._prepared.add(context)

    def serverConnectionForTLS(self, tls):
        return _PreparingConnection(self._creator.defaultContext, self._prepare_once)


class _PreparingConnection(SSL.Connection):
    """An OpenSSL connection that prepares its first context and each one it switches to."""

    def __init__(self, context, prepare):
        prepare(context)
        super().__init__(context)
        self._tcpplay_prepare = prepare

    def set_context(self, context) -> None:
        self._tcpplay_prepare(context)
        super().set_context(context)


def reactor_stopped(reactor) -> bool:
    """Whether ``reactor.stop()`` was called (also true before ``run()``; false for a reactor
    without the flag, such as ``MemoryReactorClock``)."""
    return getattr(reactor, "_stopped", False)


def forget_exit_signal(reactor, signals) -> bool:
    """When one of ``signals`` stopped ``reactor``, forget it, so ``twistd`` does not raise it
    again after shutdown (exit status -N); return whether it did."""
    if getattr(reactor, "_exitSignal", None) in signals:
        reactor._exitSignal = None
        return True
    return False


def head_size(channel) -> int:
    """The bytes of the request head an ``HTTPChannel`` has read so far (its lines, the request
    line included, without their line ends); 0 between requests."""
    return getattr(channel, "_receivedHeaderSize", 0)


def head_fields(channel) -> int:
    """The header fields of the request head an ``HTTPChannel`` has stored so far; 0 between
    requests."""
    return getattr(channel, "_receivedHeaderCount", 0)
