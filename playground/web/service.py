"""``--web ADDR``: the service that serves the web view (its options: ``playground.web.options``).

``WebService`` owns the capture, the sink the decoder chain feeds
(``sink.WebSink``) and the listening site (``site.make_site``); it logs
``web view: open http://HOST:PORT/`` (``https://`` on ``ssl:`` or ``tls:``; with ``?token=``
when one is needed) once listening.
The proxies it may act on (``POST /api/connections/{id}/close``) are added to ``proxies``: any
object with ``close_pair(pair_id, how, by) -> bool`` (the splice's ``ProxyFactory``; in a
decoder child, ``decoderworker.ProxyCloser``, which asks the proxy). In a decoder child
(``opts["web-fd"]``) it serves on the listening socket the proxy bound and handed over.
"""

from __future__ import annotations

import os
import socket

from twisted.application import service
from twisted.logger import Logger

from playground.common.addresses import listen_parts
from playground.common.addresstext import address_text
from playground.common.defaultreactor import default_reactor
from playground.common.listening import ListeningService
from playground.web.capture import MIB, Capture
from playground.web.sink import WebSink
from playground.web.site import make_site


class _WebListening(ListeningService):
    def __init__(self, web: WebService, *args, **kw):
        super().__init__(*args, **kw)
        self.web = web

    def _announce(self):
        super()._announce()
        self.web.announce()


class _AdoptedListening(service.Service):
    """The site on a listening socket the proxy bound and handed over (``fd``, of socket family
    ``family``: ``"AF_INET"``, ``"AF_INET6"`` or ``"AF_UNIX"``): how a decoder child
    (``playground.proxy.decoderprocess``) serves the view. The proxy reports a failed bind, as
    it does its own ``--listen``'s; this service logs the view's address once serving. The
    socket stays the proxy's: at the stop this service only stops accepting; the proxy closes
    it (and removes a UNIX socket's file and lock, which a close here would have unlinked under
    the proxy) once this process has exited."""

    def __init__(self, web: WebService, fd: int, family: str, factory, reactor=None):
        self.web = web
        self.fd = fd
        self.family = getattr(socket, family)
        self.factory = factory
        self.reactor = reactor
        self.port = None

    def startService(self):
        super().startService()
        self.reactor = default_reactor(self.reactor)
        os.set_blocking(self.fd, False)
        self.port = self.reactor.adoptStreamPort(self.fd, self.family, self.factory)
        os.close(self.fd)  # the port has its own copy
        self.web.announce()

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            port.stopReading()


class WebService(service.MultiService):
    """The capture, its sink and the site on ``opts["web"]``; ``proxies``: whose pairs it closes."""

    log = Logger()

    def url(self) -> str:
        """Where the started view is browsed: its bound address (a wildcard one reached on
        loopback), with the token when one is needed."""
        host = self.listening.port.getHost()
        where = address_text(host)
        if getattr(host, "host", "") in ("0.0.0.0", "::"):
            where = where.replace(host.host, "127.0.0.1" if host.host == "0.0.0.0" else "[::1]", 1)
        return f"{self.scheme}://{where}/" + (f"?token={self.token}" if self.token else "")

    def announce(self) -> None:
        """The line that says where to browse, once serving."""
        self.log.info("web view: open {url}", url=self.url())

    def __init__(self, opts, reactor=None, max_value: int = 200):
        super().__init__()
        self.token = opts.get("web-token")
        web = opts.get("web")  # TLS is never a decoder child's (decoding.web_in_child)
        self.scheme = "https" if web and listen_parts(web)[0] in ("ssl", "tls") else "http"
        self.capture = Capture(max_connections=opts.get("web-connections", 1000),
                               max_bytes=opts.get("web-memory", 64) * MIB)
        self.sink = WebSink(self.capture, max_value=max_value)
        self.proxies: list = []
        self.site = make_site(self.capture, token=self.token, reactor=reactor,
                              describe=self.sink.rows, close=self.close_pair,
                              latency=self.sink.latency, peek=self.sink.peek,
                              exchange_row=self.sink.exchange_row)
        if opts.get("web-fd") is not None:  # in a decoder child: the proxy's socket, adopted
            self.listening = _AdoptedListening(self, opts["web-fd"], opts["web-family"],
                                               self.site, reactor=reactor)
        else:
            self.listening = _WebListening(self, "web", opts["web"], self.site, flag="--web",
                                           reactor=reactor)
        self.listening.setServiceParent(self)

    def close_pair(self, pair_id: int, how: str) -> bool:
        """Close open pair ``pair_id`` with ``fin`` or ``rst``; False if no proxy has it open."""
        return any(proxy.close_pair(pair_id, how, by="web view") for proxy in self.proxies)

    def stopService(self):
        self.site.feed.stop()
        return super().stopService()
