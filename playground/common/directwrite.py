"""Send on a plain TCP transport at once when nothing is queued in it.

``transport.write`` queues the bytes and asks the reactor to watch for writability; the send
happens on a later reactor turn, costing two epoll changes and a turn per chunk. When the
transport's buffer is empty, sending right away is what would happen next anyway, minus that
cost; what the kernel does not take is queued with ``write`` as usual, so ordering, producers
(backpressure) and errors are handled by Twisted exactly as before.

Only for ``twisted.internet.tcp`` connections (not TLS, whose transport wraps the socket).
"""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.interfaces import ISSLTransport

_PLAIN_TCP = (tcp.Server, tcp.Client)


def supported(transport) -> bool:
    return (type(transport) in _PLAIN_TCP and not getattr(transport, "TLS", False)
            and not ISSLTransport.providedBy(transport))


def write(transport, data: bytes) -> None:
    """Like ``transport.write(data)`` for a transport where ``supported()`` is true."""
    t = transport
    if not t.dataBuffer and not t._tempDataLen and not t.disconnecting and not t._aborting:
        sent = t.writeSomeData(data)
        if sent == len(data):
            return
        if type(sent) is int:
            data = data[sent:]
    t.write(data)
