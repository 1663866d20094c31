"""The HTTP side of ``tcpplay-pool --http``: the same comparison with Twisted's own pool,
``twisted.web.client.HTTPConnectionPool``, used as it is.

:class:`HttpClients` sends request ``i`` (``POST /post`` with a 16-byte body for even ``i``,
``GET /get`` for odd ones: the example HTTP responder's endpoints) through an ``Agent`` whose
connections all go to the one ``--target`` endpoint and are counted there. ``pool_size`` is
the pool's ``maxPersistentPerHost`` and ``idle_timeout`` its ``cachedConnectionTimeout``;
``pooled=False`` is ``HTTPConnectionPool(persistent=False)``: a connection per request.

Twisted's pool differs from the RESP pool in one way worth seeing: it bounds the connections it
*keeps*, not those it *opens*. With more requests in flight than ``maxPersistentPerHost``, the
extra ones get connections of their own, closed when their response is read. Like the RESP
pool, it sends again (``retryAutomatically``) an idempotent request without a body lost on a
cached connection that the server had closed.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.web.client import Agent, HTTPConnectionPool, readBody
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IBodyProducer
from zope.interface import implementer

from playground.common.defaultreactor import default_reactor

BODY = b"tcpplay-pool-val"  # 16 bytes, as the RESP workload's value


class HttpStatusError(Exception):
    """The response was not a 2xx."""


@implementer(IBodyProducer)
class _Body:
    """A short request body, written at once."""

    def __init__(self, data: bytes):
        self.data = data
        self.length = len(data)

    def startProducing(self, consumer):
        consumer.write(self.data)
        return defer.succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class _CountingEndpoint:
    """The target endpoint, counting the connections it makes."""

    def __init__(self, endpoint, counter: list[int]):
        self._endpoint = endpoint
        self._counter = counter

    def connect(self, factory):
        def made(proto):
            self._counter[0] += 1
            return proto

        return self._endpoint.connect(factory).addCallback(made)


@implementer(IAgentEndpointFactory)
class _OneTarget:
    def __init__(self, endpoint, counter: list[int]):
        self._endpoint = _CountingEndpoint(endpoint, counter)

    def endpointForURI(self, uri):
        return self._endpoint


class HttpClients:
    """An ``Agent`` over ``HTTPConnectionPool`` to one endpoint; ``host`` goes in the URLs
    (the ``Host`` header)."""

    def __init__(self, endpoint, host: str, pool_size: int = 8, pooled: bool = True,
                 idle_timeout: float = 60.0, reactor=None):
        self.reactor = default_reactor(reactor)
        self.pool = HTTPConnectionPool(self.reactor, persistent=pooled)
        self.pool.maxPersistentPerHost = pool_size
        self.pool.cachedConnectionTimeout = idle_timeout
        self._counter = [0]
        self.agent = Agent.usingEndpointFactory(self.reactor, _OneTarget(endpoint, self._counter),
                                                pool=self.pool)
        self.base = f"http://{host}".encode()

    @property
    def connections_made(self) -> int:
        return self._counter[0]

    @defer.inlineCallbacks
    def request(self, i: int):
        """Request ``i``; a Deferred of the response body."""
        if i % 2:
            d = self.agent.request(b"GET", self.base + b"/get")
        else:
            d = self.agent.request(b"POST", self.base + b"/post",
                                   Headers({b"Content-Type": [b"application/octet-stream"]}),
                                   _Body(BODY))
        response = yield d
        body = yield readBody(response)
        if not 200 <= response.code < 300:
            raise HttpStatusError(f"{response.code} {response.phrase.decode('latin-1')}")
        return body

    def close(self) -> defer.Deferred:
        """Close the cached connections."""
        return self.pool.closeCachedConnections()
