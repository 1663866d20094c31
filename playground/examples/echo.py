"""Echo example: every byte a client sends comes back; half-close aware, with limits and timeouts.

``printf 'hi\\n' | nc -N 127.0.0.1 7000`` sends, shuts down its write side, and still gets every
byte back before the server closes (``IHalfCloseableProtocol.readConnectionLost``).
"""

from __future__ import annotations

from twisted.application import service
from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from zope.interface import implementer

from playground.common import tlsnames
from playground.common.limits import LimitedFactory
from playground.common.listening import ListeningService
from playground.common.options import ServerOptions, limit_arguments


@implementer(IHalfCloseableProtocol)
class EchoProtocol(protocol.Protocol, TimeoutMixin):
    log = Logger()

    def __init__(self):
        self.bytes_in = 0
        self.bytes_out = 0
        self.close_reason = None
        self.opened = 0.0
        self._producing = False

    def connectionMade(self):
        f = self.factory
        self.callLater = f.reactor.callLater  # TimeoutMixin's clock is the injected reactor
        self.opened = f.reactor.seconds()
        # The transport is its own producer: when the client does not read, the write buffer
        # fills, Twisted pauses reading from it, and memory stays bounded.
        self.transport.registerProducer(self.transport, True)
        self._producing = True
        self.setTimeout(f.idle_timeout or None)
        self.log.info("echo open {peer}", peer=self.peer)

    def dataReceived(self, data):
        self.resetTimeout()
        n = len(data)
        self.bytes_in += n
        self.transport.write(data)
        self.bytes_out += n

    def readConnectionLost(self):
        # The client is done sending: everything it sent is already queued; close after it drains.
        # The idle timer keeps running (nothing resets it now), so a client that half-closes and
        # then never reads is still cut off instead of holding its unsent echo forever.
        self.close_reason = self.close_reason or "client finished sending (half-close)"
        self._stop_producing()
        self.transport.loseConnection()

    def writeConnectionLost(self):
        self.close_reason = self.close_reason or "client stopped reading"
        self._stop_producing()
        self.transport.loseConnection()

    def _stop_producing(self):
        # loseConnection waits for a registered producer; unregister once (a second
        # unregisterProducer is an error on some transports).
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()

    def timeoutConnection(self):
        self.close_reason = f"idle timeout ({self.factory.idle_timeout:g}s)"
        self.transport.abortConnection()

    def connectionLost(self, reason):
        self.setTimeout(None)
        if self.close_reason is None:
            self.close_reason = tlsnames.client_close_reason(reason, self.transport)
        self.log.info(
            "echo close {peer} in={bytes_in} out={bytes_out} duration={duration:.3f}s reason={reason}",
            peer=self.peer,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            duration=self.factory.reactor.seconds() - self.opened,
            reason=self.close_reason,
        )
        self.factory.connectionClosed(self)


class EchoFactory(LimitedFactory):
    protocol = EchoProtocol
    service_name = "echo"

    def __init__(self, idle_timeout: float = 0.0, max_connections: int = 0, max_per_peer: int = 0,
                 reactor=None):
        super().__init__(max_connections, max_per_peer, reactor)
        self.idle_timeout = idle_timeout


class Options(ServerOptions):
    synopsis = "[options]"
    longdesc = "Echo every byte back to the sender. Try: printf 'hi\\n' | nc -N 127.0.0.1 7000"
    default_listen = "7000"


def make_service(options, reactor=None) -> service.IService:
    factory = EchoFactory(reactor=reactor, **limit_arguments(options))
    return ListeningService("echo", options["listen"], factory, reactor=reactor)
