"""``tls:`` client endpoints (``addresses.client_endpoint``, which the chat and pool clients and
the replay use) hold the server's certificate to the host: real TLS servers on 127.0.0.1 signed
by a CA the endpoint trusts (``trustRoots=``), one naming the host and one naming it only in its
common name, without a subjectAltName (which Twisted alone let through)."""

from __future__ import annotations

import pytest
import pytest_twisted
from OpenSSL import SSL
from twisted.internet import defer, endpoints, protocol

from playground.common.addresses import client_endpoint
from tests.support.tls import TlsEchoServer, client_pki
from tests.support.waiting import wait_until

pytestmark = pytest.mark.real

MESSAGE = b"secret that must not reach a wrong server\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return client_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki):
    started: list[TlsEchoServer] = []

    def start(which: str) -> TlsEchoServer:
        started.append(TlsEchoServer(*pki[which]))
        return started[-1]

    yield start
    for server in started:
        server.close()


class _Sender(protocol.Protocol):
    """Sends ``MESSAGE`` at once (before the handshake is over) and closes once it is echoed."""

    def __init__(self):
        self.got = b""
        self.reason = None
        self.lost: defer.Deferred = defer.Deferred()

    def connectionMade(self):
        self.transport.write(MESSAGE)

    def dataReceived(self, data):
        self.got += data
        if self.got == MESSAGE:
            self.transport.loseConnection()

    def connectionLost(self, reason=protocol.connectionDone):
        self.reason = reason
        self.lost.callback(None)


def _connect(pki, server: TlsEchoServer) -> defer.Deferred:
    from twisted.internet import reactor

    desc = f"tls:host=127.0.0.1:port={server.port}:trustRoots={pki['ca'].dir}"
    sender = _Sender()
    d = endpoints.connectProtocol(client_endpoint(reactor, desc), sender)
    d.addCallback(lambda connected: connected.lost.addTimeout(10, reactor))
    d.addCallback(lambda _: (sender, sender.reason))
    return d


@pytest.mark.timeout(30)
@pytest_twisted.inlineCallbacks
def test_a_certificate_naming_the_host_passes(pki, tls_server):
    server = tls_server("named")
    sender, reason = yield _connect(pki, server)
    assert sender.got == MESSAGE, reason
    wait_until(lambda: server.received, 10, "the TLS server to see the close")
    assert server.received == [MESSAGE]


@pytest.mark.timeout(30)
@pytest_twisted.inlineCallbacks
def test_a_certificate_without_subject_alt_name_fails_before_a_byte_is_sent(pki, tls_server):
    """CN=127.0.0.1, signed by the trusted CA, no subjectAltName: not a certificate for any
    host (RFC 6125). Twisted's check logged service-identity's CertificateError and let the
    connection through: the message reached the server and came back."""
    server = tls_server("no-san")
    sender, reason = yield _connect(pki, server)
    assert sender.got == b""
    assert reason.check(SSL.Error), reason
    assert reason.getErrorMessage().startswith("certificate not for 127.0.0.1: "), reason
    assert "subjectAltName" in reason.getErrorMessage(), reason
    wait_until(lambda: server.received, 10, "the TLS server to see the close")
    assert server.received == [b""]
