"""A TLS server's certificate held to the host a client connects to, for every ``tls:`` client
of tcpplay: the proxy's target leg, the chat and pool clients, the replay.

Twisted's ``tls:`` endpoint checks the name too, but service-identity (from 24.1) says "no
subjectAltName at all" with a ``CertificateError``, which Twisted's check (catching
``VerificationError``) logs and lets through: such a certificate, signed by a trusted CA,
passed for any host. ``NameCheckedEndpoint`` wraps a TLS client endpoint so that each
connection is checked again when its handshake completes (``hostname_refused``, with
service-identity's public API): a certificate that does not name the host fails the connection
as a failed verification does (``NotForHost``, an ``OpenSSL.SSL.Error`` saying why, to the
application's ``connectionLost``), before any byte of the application's reaches the server.

OpenSSL says a failed verification as ``certificate verify failed`` alone, whatever failed;
``verify_error`` reads why (``certificate has expired``, ``self-signed certificate``) from the
connection, as curl and ``openssl s_client`` say it; ``handshake_reason`` puts the two together
(and says when the peer spoke no TLS at all), for the proxy's log and close records, and
``lost_reason`` for the clients (chat, pool, replay) and the chat server, which said OpenSSL's
error list's repr (``[('SSL routines', '', 'certificate verify failed')]``) and nothing of
what to do.
"""

from __future__ import annotations

import ipaddress

from OpenSSL import SSL
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from twisted.internet import protocol
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IHandshakeListener,
    ILoggingContext,
    IStreamClientEndpoint,
)
from twisted.python import failure
from zope.interface import alsoProvides, implementer

from playground.common import twistedprivate


def hostname_refused(certificate, host: str) -> str | None:
    """Why ``certificate`` (pyOpenSSL's, or None) is not one for ``host`` (a name or an IP
    address), or None when it is."""
    if certificate is None:
        return "the server sent no certificate"
    cert = certificate.to_cryptography()
    try:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            verify_certificate_hostname(cert, host)
        else:
            verify_certificate_ip_address(cert, host)
    except (VerificationError, CertificateError) as e:
        return f"certificate not for {host}: {e}"
    return None


def verify_error(transport) -> str | None:
    """Why OpenSSL's verification of the peer's certificate failed on ``transport`` (a TLS
    transport whose ``getHandle`` is its ``OpenSSL.SSL.Connection``, still open or being
    lost): OpenSSL's text for ``SSL_get_verify_result``, or None when it passed or cannot be
    read. pyOpenSSL has no public call for it: its bindings (``OpenSSL._util``) are read, and
    any change there is a None, the reason said without it."""
    try:
        from OpenSSL._util import ffi, lib

        code = lib.SSL_get_verify_result(transport.getHandle()._ssl)
        if code == 0:  # X509_V_OK
            return None
        return ffi.string(lib.X509_verify_cert_error_string(code)).decode("ascii", "replace")
    except Exception:
        return None


_VERIFY_FAILED = "certificate verify failed"
# What OpenSSL says of a peer whose first bytes are no TLS record (RESP, HTTP, ...).
_NOT_TLS = frozenset({"wrong version number", "http request", "https proxy request",
                      "packet length too long", "unknown protocol"})
# What a client whose verification failed can do: its tls: string is Twisted's.
_TRUST_HINT = ("(a private CA or a self-signed certificate: add trustRoots=DIR, a directory of its "
               "PEM files, to the tls: string)")


def handshake_reason(value: SSL.Error, transport, role: str) -> str:
    """OpenSSL's reasons in a failed handshake with ``role`` (client or server), on
    ``transport`` (its error list's last fields, e.g. ``certificate verify failed``, with why
    verification failed: ``certificate has expired``, ``verify_error``; a reason that means the
    peer spoke no TLS says so), not the list's repr."""
    errors = value.args[0] if value.args and isinstance(value.args[0], list) else ()
    reasons = [e[-1] for e in errors if isinstance(e, tuple) and e and e[-1]]
    if _VERIFY_FAILED in reasons and (why := verify_error(transport)) is not None:
        reasons[reasons.index(_VERIFY_FAILED)] = f"{_VERIFY_FAILED}: {why}"
    for i, reason in enumerate(reasons):
        if reason in _NOT_TLS:
            reasons[i] = f"{reason} (not TLS: plain text from the {role}?)"
            break
    return "; ".join(reasons) or str(value) or "handshake failed"


def lost_reason(reason, transport, peer: str = "server") -> str:
    """Why a connection (``transport``, TLS or not) with ``peer`` (``server`` for a client's,
    ``client`` for a server's) ended, from ``connectionLost``'s ``reason``: a failed TLS
    handshake as ``handshake_reason`` says it, with what to do when a client did not trust the
    server's certificate; anything else as Twisted says it."""
    if not isinstance(reason.value, SSL.Error):
        return reason.getErrorMessage()
    why = handshake_reason(reason.value, transport, peer)
    why = f"TLS handshake with the {peer} failed: {why}"
    return f"{why} {_TRUST_HINT}" if peer == "server" and _VERIFY_FAILED in why else why


def client_close_reason(reason, transport) -> str:
    """A server's reason for its client's connection ending (the echo, RESP and chat servers'
    close lines): ``client closed`` for a clean end, else ``lost_reason``."""
    if reason.check(ConnectionDone):
        return "client closed"
    return lost_reason(reason, transport, "client")


class NotForHost(SSL.Error):
    """The server's certificate does not name the host: a failed handshake, an
    ``OpenSSL.SSL.Error`` in OpenSSL's shape (a list of ``(library, function, reason)``, as the
    proxy reads one), whose text is the reason rather than the list's repr."""

    def __str__(self):
        return self.args[0][0][2]


@implementer(IHandshakeListener)
class _NameCheck(protocol.Protocol):
    """Between a TLS connection and the application's protocol (``wrapped``, which gets the
    TLS transport itself): checks the certificate when the handshake completes, and otherwise
    passes each event on, as Twisted's endpoint wrapper protocol does."""

    def __init__(self, wrapped, host: str):
        self.wrapped = wrapped
        self.host = host
        if IHalfCloseableProtocol.providedBy(wrapped):
            alsoProvides(self, IHalfCloseableProtocol)

    def logPrefix(self):
        if ILoggingContext.providedBy(self.wrapped):
            return self.wrapped.logPrefix()
        return self.wrapped.__class__.__name__

    def connectionMade(self):
        self.wrapped.makeConnection(self.transport)

    def handshakeCompleted(self):
        why = hostname_refused(self.transport.getPeerCertificate(), self.host)
        if why is not None:
            self.transport.failVerification(failure.Failure(NotForHost([("", "", why)])))
        elif IHandshakeListener.providedBy(self.wrapped):
            self.wrapped.handshakeCompleted()

    def dataReceived(self, data):
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason=protocol.connectionDone):
        self.wrapped.connectionLost(reason)

    def readConnectionLost(self):
        self.wrapped.readConnectionLost()

    def writeConnectionLost(self):
        self.wrapped.writeConnectionLost()


class _NameCheckFactory(protocol.Factory):
    """Builds the application factory's protocols, each behind a ``_NameCheck``."""

    def __init__(self, factory, host: str):
        self.factory = factory
        self.host = host

    def logPrefix(self):
        return self.factory.logPrefix() if ILoggingContext.providedBy(self.factory) else (
            self.factory.__class__.__name__)

    def doStart(self):
        self.factory.doStart()

    def doStop(self):
        self.factory.doStop()

    def buildProtocol(self, addr):
        wrapped = self.factory.buildProtocol(addr)
        return None if wrapped is None else _NameCheck(wrapped, self.host)


@implementer(IStreamClientEndpoint)
class NameCheckedEndpoint:
    """``endpoint`` (a TLS client endpoint for ``host``) whose connections fail when the
    server's certificate does not name ``host`` (``hostname_refused``). ``connect`` fires with
    the application's protocol, as the wrapped endpoint's does."""

    def __init__(self, endpoint, host: str):
        self.endpoint = endpoint
        self.host = host
        twistedprivate.quiet_no_subject_alt_name()  # ours says it in one line

    def connect(self, protocolFactory):
        d = self.endpoint.connect(_NameCheckFactory(protocolFactory, self.host))
        return d.addCallback(lambda check: check.wrapped)
