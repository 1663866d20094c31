"""The ``proxy`` subcommand: its options (``Options``, with the decoding options of
``playground.proxy.decoding``), the target's client endpoint, and the service that holds the sinks
and the listener and drains the pairs on shutdown (``ProxyService``, ``make_service``)."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.python import usage

from playground.common import addresses
from playground.common.listening import ListeningService
from playground.common.options import ServerOptions, non_negative_float, parameter
from playground.faults import apioptions
from playground.faults.model import ToxicSet
from playground.proxy import decoding
from playground.proxy.splice import ProxyFactory


class ProxyService(service.MultiService):
    """Sinks, then the listener. On stop: stop listening, drain open pairs, abort the rest, and
    only then stop the sinks (so they flush what the drained pairs produced)."""

    def __init__(self, listening: ListeningService, factory: ProxyFactory, drain_timeout: float,
                 sinks=()):
        super().__init__()
        self.listening = listening
        self.factory = factory
        self.drain_timeout = drain_timeout
        self.sinks = list(sinks)
        self.command_stats = None  # the CommandStats its StatsSink fills (metrics.attach reads it)
        self.api = None  # --api: the toxiproxy API's listener and its registry (_serve_api)
        self.registry = None
        for sink in self.sinks:  # started before the listener: open before the first pair
            sink.setServiceParent(self)
        listening.setServiceParent(self)

    def stopService(self):
        service.Service.stopService(self)
        d = defer.maybeDeferred(self.listening.stopService)
        if self.api is not None:
            d.addCallback(lambda _: self.api.stopService())
            d.addCallback(lambda _: self.registry.stopService())
        d.addCallback(lambda _: self.factory.drain(self.drain_timeout))
        d.addCallback(lambda _: self.factory.flush_observer(everything=True))  # sinks get all
        d.addCallback(lambda _: defer.DeferredList(
            [defer.maybeDeferred(s.stopService) for s in reversed(self.sinks)]))
        return d


class Options(ServerOptions):
    synopsis = "--listen ADDR --target ADDR [options]"
    longdesc = (
        "Sit between a client and its server, forward every byte unchanged both ways, and show what "
        "crosses. Example: twistd -n tcpplay proxy --listen 6479 --target 6379, then "
        "redis-cli -p 6479 ping."
    )
    default_listen = "6479"
    default_max_connections = 10000
    optParameters = [
        ["target", "t", None,
         "Where to connect: PORT (on 127.0.0.1), HOST:PORT, or a Twisted client endpoint string "
         "(tcp:host=H:port=P, unix:path=P, tls:host=H:port=P: the hostname is verified)."],
        ["target-ca", None, None,
         "PEM file of the CA that signs a tls: target's certificate (without it, the system's CAs)."],
        parameter("connect-timeout", 5.0,
         "Seconds to wait for the target to accept; 0: no timeout of tcpplay's own (the "
         "system's applies, or a target endpoint string's timeout=, 30 unless given).",
         non_negative_float),
        parameter("drain-timeout", 10.0,
         "On SIGTERM/SIGINT, seconds open pairs may finish before they are aborted (a second "
         "Ctrl-C aborts them at once).",
         non_negative_float),
    ]

    optParameters = optParameters + decoding.OPT_PARAMETERS
    optParameters += apioptions.api_parameters(None) + [apioptions.NAME_PARAMETER]
    optFlags = decoding.OPT_FLAGS
    opt_verbose = decoding.opt_verbose  # counted: -vv
    opt_v = decoding.opt_verbose

    def postOptions(self):
        super().postOptions()
        decoding.check_options(self)
        apioptions.check_options(self)
        if not self["target"]:
            raise usage.UsageError(f"--target is required ({addresses.TARGET_EXAMPLE})")
        self.target = addresses.client_target(self["target"], "--target")  # read once
        self["target"] = self.target.desc
        if self["target-ca"]:
            if self.target.kind != "tls":
                raise usage.UsageError("--target-ca only applies to a tls: --target")
            try:
                open(self["target-ca"], "rb").close()
            except OSError as e:
                raise usage.UsageError(f"--target-ca: cannot read {self['target-ca']}: {e.strerror}")


def daemonized(options) -> bool:
    """Whether these options were given to twistd without ``-n`` (a daemon: stdout is gone)."""
    parent = getattr(options, "parent", None)
    while parent is not None:
        if "nodaemon" in parent:
            return not parent["nodaemon"]
        parent = getattr(parent, "parent", None)
    return False


def make_service(options, reactor=None) -> service.IService:
    from playground.daemon import metrics
    from playground.sinks import statssink

    stats = statssink.StatsSink() if metrics.wanted(options) else None
    sinks, observer = decoding.build(options, reactor, stats=stats)
    factory = ProxyFactory(
        options.target,
        observer=observer,
        connect_timeout=options["connect-timeout"],
        idle_timeout=options["idle-timeout"],
        max_connections=options["max-connections"],
        max_per_peer=options["max-connections-per-peer"],
        reactor=reactor,
        target_ca=options["target-ca"],
        toxics=ToxicSet() if options.get("api") else None,
    )
    # One view of a pair: the console's own open/close lines, or these log lines when there is
    # no console (--quiet, --json -, --decode none) or when the log is a daemon's file.
    from playground.sinks.console import ConsoleSink

    factory.log_connections = daemonized(options) or not any(
        isinstance(s, ConsoleSink) for s in sinks)
    for sink in sinks:
        if hasattr(sink, "proxies"):  # the web view (--web): it may close this proxy's pairs
            sink.proxies.append(factory)
    listening = ListeningService("proxy", options["listen"], factory, reactor=reactor)
    proxy = ProxyService(listening, factory, options["drain-timeout"], sinks)
    if stats is not None:
        proxy.command_stats = stats.stats
    if options.get("api"):
        _serve_api(proxy, options, reactor)
    return proxy


def _serve_api(proxy: ProxyService, options, reactor) -> None:
    """``--api``: toxiproxy's API with this proxy in it as ``--name`` (its toxics set at runtime;
    more proxies may be created through it, sharing this one's sinks)."""
    from playground.faults.api import ApiListening
    from playground.faults.registry import Registry, address_text

    registry = Registry(observer=proxy.factory.observer, reactor=reactor,
                        connect_timeout=options["connect-timeout"],
                        drain_timeout=options["drain-timeout"],
                        log_connections=proxy.factory.log_connections, ids=proxy.factory.ids)
    target = options.target
    upstream = address_text(target.host, target.port) if target.kind == "tcp" else target.desc
    registry.adopt(options["name"], proxy.factory, proxy.listening, upstream)
    api = ApiListening(registry, options["api"], token=options["api-token"], reactor=reactor)
    registry.setServiceParent(proxy)
    api.setServiceParent(proxy)
    proxy.api = api
    proxy.registry = registry
