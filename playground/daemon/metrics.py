"""Stats of running services: the ``--metrics`` HTTP endpoint and the ``--stats-interval`` log line.

``attach(svc, options, kind)`` finds the listening factories in a subcommand's service tree and
registers a ``ServiceSource`` for them: connection counts come from ``LimitedFactory.limits``,
bytes from the proxy's own counters (closed pairs, plus the open pairs' live counts summed at
scrape time) or, for the servers, from their protocols' ``bytes_in``/``bytes_out`` (tracked per
connection, never per chunk); decoded command stats come from a ``statssink.StatsSink``.
When ``options`` asks for ``--metrics ADDR`` or ``--stats-interval N``, ``attach`` wraps the
service with a ``MetricsService`` (``/metrics`` in the Prometheus text format, ``/metrics.json``)
and/or a ``StatsLogService`` (one summary line per service every N seconds).

The endpoint stays cheap under a flood: a page's body is rendered at most once per reactor turn
(every request of that turn gets the same bytes), a render redoes only the commands that saw
traffic since the last one (``stats``: summaries and Prometheus lines are kept while their
figures stay the same), and a connection gets at most
``MAX_PER_TURN`` pipelined requests answered per turn (``playground.common.limits``'s
``BoundedChannel``, as every ``CappedSite``: the rest wait for the next turn, and
Twisted stops reading from that connection meanwhile), so 1,000 pipelined GETs cost 125 short
turns, not one long one.

``serve`` shares one ``Registry`` between its services by setting ``options.stats_registry``
before calling a module's ``make_service``; ``attach`` then only registers (one endpoint and one
log timer serve them all). ``attach`` is idempotent per service object.
"""

from __future__ import annotations

import json
import time

from twisted.application import service
from twisted.internet import task
from twisted.logger import Logger
from twisted.web import resource, server

from playground.common.defaultreactor import default_reactor
from playground.common.limits import CappedSite, Refusal
from playground.common.listening import ListeningService
from playground.daemon import stats as S

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


def wanted(options) -> bool:
    """True when the options ask for stats (``--metrics``, ``--stats-interval``, or a parent's
    shared registry): then the proxy also collects decoded command stats."""
    return bool(_get(options, "metrics") or _get(options, "stats-interval")
                or getattr(options, "stats_registry", None) is not None)


def _get(options, key):
    try:
        return options[key]
    except KeyError:
        return None


class _BytesTracker:
    """Sums ``bytes_in``/``bytes_out`` of a server's connections: closed ones when they close,
    open ones when asked. Wraps the factory's ``buildProtocol``/``connectionClosed`` (once per
    connection; the data path is untouched)."""

    def __init__(self, factory):
        self.live: set = set()
        self.closed_in = 0
        self.closed_out = 0
        build, closed = factory.buildProtocol, factory.connectionClosed

        def buildProtocol(addr):
            p = build(addr)
            if p is not None and not isinstance(p, Refusal):
                self.live.add(p)
            return p

        def connectionClosed(proto):
            if proto in self.live:
                self.live.discard(proto)
                self.closed_in += getattr(proto, "bytes_in", 0)
                self.closed_out += getattr(proto, "bytes_out", 0)
            return closed(proto)

        factory.buildProtocol = buildProtocol
        factory.connectionClosed = connectionClosed

    def totals(self) -> tuple[int, int]:
        c2s, s2c = self.closed_in, self.closed_out
        for p in self.live:
            c2s += getattr(p, "bytes_in", 0)
            s2c += getattr(p, "bytes_out", 0)
        return c2s, s2c


class ServiceSource:
    """What one service reports: see the module docstring. ``snapshot()`` is a plain dict."""

    def __init__(self, name: str, kind: str, factories, commands=None):
        self.name = name
        self.kind = kind
        self.factories = list(factories)
        self.commands = commands  # a stats.CommandStats or None
        self._trackers = []
        self.byte_counts = False
        for f in self.factories:
            if hasattr(f, "bytes_c2s"):  # the proxy counts its own
                self.byte_counts = True
            elif _counts_bytes(f):
                self._trackers.append(_BytesTracker(f))
                self.byte_counts = True

    def snapshot(self) -> dict:
        open_ = total = refused = 0
        c2s = s2c = failures = 0
        proxy = False
        for f in self.factories:
            limits = f.limits
            open_ += limits.open
            total += limits.total
            refused += limits.refused
            if hasattr(f, "bytes_c2s"):
                proxy = True
                c2s += f.bytes_c2s
                s2c += f.bytes_s2c
                failures += getattr(f, "connect_failures", 0)
                for pair in list(f.pairs.values()):  # live: the open pairs' counts so far
                    c2s += pair.client.nbytes
                    if pair.server is not None:
                        s2c += pair.server.nbytes
        for t in self._trackers:
            a, b = t.totals()
            c2s += a
            s2c += b
        out = {"service": self.name, "kind": self.kind,
               "connections": {"open": open_, "total": total, "refused": refused}}
        if self.byte_counts:
            out["bytes"] = {"c2s": c2s, "s2c": s2c}
        if proxy:
            out["upstream_connect_failures"] = failures
        if self.commands is not None:
            out["commands"] = self.commands.snapshot()
        return out


def _counts_bytes(factory) -> bool:
    proto = getattr(factory, "protocol", None)
    if proto is None:
        return False
    try:
        probe = proto.__new__(proto)
        proto.__init__(probe)
    except Exception:
        return False
    return hasattr(probe, "bytes_in") and hasattr(probe, "bytes_out")


class Registry:
    """The sources one process reports, in registration order."""

    def __init__(self, start_time: float | None = None):
        self.sources: list[ServiceSource] = []
        self.start_time = time.time() if start_time is None else start_time

    def add(self, source: ServiceSource) -> ServiceSource:
        self.sources.append(source)
        return source

    def snapshots(self) -> list[dict]:
        return [s.snapshot() for s in self.sources]

    def prometheus(self) -> bytes:
        return S.prometheus_text(self.snapshots(), self.start_time).encode("utf-8")

    def json(self) -> bytes:
        body = {"start_time": self.start_time, "services": self.snapshots()}
        return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _factories(svc) -> list:
    """The listening factories in a service tree (``ListeningService.factory``)."""
    found = []
    stack = [svc]
    while stack:
        s = stack.pop()
        if isinstance(s, ListeningService):
            if hasattr(getattr(s, "factory", None), "limits"):
                found.append(s.factory)
        elif isinstance(s, service.MultiService):
            stack.extend(reversed(list(s)))
    return found


def attach(svc, options, kind: str, commands=None, reactor=None):
    """Register ``svc``'s stats; wrap it with the metrics endpoint / stats log when asked.

    ``commands`` is the ``CommandStats`` a ``StatsSink`` fills, if any (by default the
    service's own ``command_stats``: the proxy's). Returns the service to use in place of ``svc``
    (``svc`` itself when nothing is to be added). Called once per service, by whoever builds
    the service tree (``tap.makeService``, ``serve.make_service``).
    """
    if commands is None:
        commands = getattr(svc, "command_stats", None)
    shared = getattr(options, "stats_registry", None)
    if shared is None and not wanted(options):
        return svc
    name = getattr(options, "stats_name", None) or kind
    source = ServiceSource(name, kind, _factories(svc), commands)
    if shared is not None:
        shared.add(source)
        return svc
    registry = Registry()
    registry.add(source)
    top = wrap(svc, registry, _get(options, "metrics"), _get(options, "stats-interval") or 0,
               reactor)
    return top


def wrap(svc, registry: Registry, metrics: str | None, interval: float, reactor=None):
    """A MultiService: the metrics endpoint (if any), then ``svc``, then the stats log."""
    top = service.MultiService()
    if metrics:
        MetricsService(registry, metrics, reactor=reactor).setServiceParent(top)
    svc.setServiceParent(top)
    if interval:
        StatsLogService(registry, interval, reactor=reactor).setServiceParent(top)
    return top


# -- the endpoint ------------------------------------------------------------------------------


class _Page(resource.Resource):
    """A page whose body is rendered at most once per reactor turn."""

    isLeaf = True

    def __init__(self, render, content_type: bytes, reactor=None):
        super().__init__()
        self._render = render
        self.content_type = content_type
        self.reactor = reactor
        self._body: bytes | None = None
        self.renders = 0

    def render_GET(self, request):
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"cache-control", b"no-store")
        body = self._body
        if body is None:
            body = self._body = self._render()
            self.renders += 1
            self.reactor = default_reactor(self.reactor)
            self.reactor.callLater(0, self._forget)
        return body

    def _forget(self):
        self._body = None

    def render_HEAD(self, request):
        self.render_GET(request)
        return b""


class _Index(resource.Resource):
    """``/``: names the pages (the root's child ``b""``: twisted.web never renders the root)."""

    def render_GET(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return b"tcpplay metrics: /metrics (Prometheus text format), /metrics.json\n"


class MetricsSite(CappedSite):
    """No access-log line per scrape (a scraper polls every few seconds)."""

    label = "metrics"

    def log(self, request):
        pass


def site(registry: Registry, reactor=None) -> server.Site:
    root = resource.Resource()
    root.putChild(b"", _Index())
    root.putChild(b"metrics", _Page(registry.prometheus, CONTENT_TYPE, reactor))
    root.putChild(b"metrics.json", _Page(registry.json, b"application/json", reactor))
    s = MetricsSite(root, reactor=reactor) if reactor is not None else MetricsSite(root)
    s.noisy = False
    s.displayTracebacks = False
    return s


class MetricsService(service.MultiService):
    """Serves ``/metrics`` and ``/metrics.json`` on ``listen`` (an endpoint string or --listen
    form; a bare port is loopback only)."""

    def __init__(self, registry: Registry, listen: str, reactor=None):
        super().__init__()
        from playground.common.addresses import server_string

        self.registry = registry
        self.listening = ListeningService("metrics", server_string(str(listen), "--metrics"),
                                          site(registry, reactor), flag="--metrics",
                                          reactor=reactor)
        self.listening.setServiceParent(self)


class StatsLogService(service.Service):
    """Every ``interval`` seconds, one ``stats SERVICE: ...`` line per service in the log."""

    log = Logger()

    def __init__(self, registry: Registry, interval: float, reactor=None):
        self.registry = registry
        self.interval = interval
        self.reactor = reactor
        self._loop = None
        self._previous: dict[str, dict] = {}

    def startService(self):
        super().startService()
        self.reactor = default_reactor(self.reactor)
        self._loop = task.LoopingCall(self.report)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False).addErrback(
            lambda f: self.log.failure("stats log stopped", f))

    def report(self):
        for snap in self.registry.snapshots():
            name = snap["service"]
            self.log.info("stats {service}: {summary}", service=name,
                          summary=S.summary_line(snap, self._previous.get(name)), stats=snap)
            self._previous[name] = snap

    def stopService(self):
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
