"""The ``proxy`` subcommand: its options (``Options``, with the decoding options of
``playground.proxy.decoding`` and the repeatable ``--fault``), the target's client endpoint, and the
service that holds the sinks and the listener, drains the pairs on shutdown and stops listening
while a ``down`` toxic is in force (``ProxyService``, ``make_service``)."""

from __future__ import annotations

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from playground.common import addresses
from playground.common.listening import ListeningService
from playground.common.options import ServerOptions, non_negative_float, parameter
from playground.faults import apioptions
from playground.faults.model import FaultError, ToxicSet, parse_fault
from playground.faults.toxics import BYTE_TYPES
from playground.proxy import decoding
from playground.proxy.splice import ProxyFactory


class ProxyService(service.MultiService):
    """Sinks, then the listener. On stop: stop listening, drain open pairs, abort the rest, and
    only then stop the sinks (so they flush what the drained pairs produced).

    A ``down`` toxic in the factory's ``toxics`` closes the listening socket ``after`` ms (new
    clients are refused: ECONNREFUSED, not accepted and closed; open pairs go on) until it is
    removed, or for ``duration`` ms when that is not 0 (then it removes itself)."""

    log = Logger()

    def __init__(self, listening: ListeningService, factory: ProxyFactory, drain_timeout: float,
                 sinks=()):
        super().__init__()
        self.listening = listening
        self.factory = factory
        self.drain_timeout = drain_timeout
        self.sinks = list(sinks)
        factory.listening = listening  # its pairs see a target that leads back to it
        self.command_stats = None  # the CommandStats its StatsSink fills (metrics.attach reads it)
        self.api = None  # --api: the toxiproxy API's listener and its registry (_serve_api)
        self.registry = None
        self._down_calls: dict[str, list] = {}  # a down toxic's name -> its pending calls
        self._down: set[str] = set()  # the down toxics in force
        for sink in self.sinks:  # started before the listener: open before the first pair
            sink.setServiceParent(self)
        listening.setServiceParent(self)
        if factory.toxics is not None:
            factory.toxics.listen(self._toxic_changed)

    def startService(self):
        super().startService()
        for toxic in self.factory.toxics or ():
            self._toxic_changed("added", toxic)

    def _toxic_changed(self, event: str, toxic) -> None:
        if toxic.type != "down" or not self.running:
            return
        for call in self._down_calls.pop(toxic.name, ()):
            if call.active():
                call.cancel()
        if event == "removed":
            self._up(toxic)
            return
        reactor = self.factory.reactor
        after, duration = toxic.attributes["after"] / 1000, toxic.attributes["duration"] / 1000
        calls = [reactor.callLater(after, self._go_down, toxic)]
        if duration:
            calls.append(reactor.callLater(after + duration, self._expire, toxic))
        self._down_calls[toxic.name] = calls

    def _go_down(self, toxic) -> None:
        if not self._down and self.listening.port is not None:
            # Said once the socket is closed (a turn later), not before: a client that acts on
            # the line is refused, rather than accepted into the backlog and then reset.
            d = self.listening.stop_listening()
            d.addCallback(lambda _: self.log.info(
                "proxy down (toxic {toxic}): not listening, new clients are refused",
                toxic=toxic.name))
        self._down.add(toxic.name)

    def _up(self, toxic) -> None:
        self._down.discard(toxic.name)
        if not self._down and self.running and self.listening.port is None:
            self.listening.listen_again()  # a failure is logged; then it is not up again
            if self.listening.port is not None:
                self.log.info("proxy up again (toxic {toxic} gone)", toxic=toxic.name)

    def _expire(self, toxic) -> None:
        self._down_calls.pop(toxic.name, None)
        if self.factory.toxics.get(toxic.name) == toxic:
            self.factory.toxics.remove(toxic.name)  # tells _toxic_changed: up again

    def stopService(self):
        for calls in self._down_calls.values():
            for call in calls:
                if call.active():
                    call.cancel()
        self._down_calls.clear()
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
         "Seconds to wait for the target to accept (a tls: target's handshake included: one "
         "not done by then closes the pair tls-failed); 0: no timeout of tcpplay's own (the "
         "system's applies, or a target endpoint string's timeout=, 30 unless given).",
         non_negative_float),
        parameter("handshake-timeout", 10.0,
         "Seconds a client of an ssl:/tls: --listen has to complete its TLS handshake before "
         "it is closed (nginx's ssl_handshake_timeout); 0: none.",
         non_negative_float),
        parameter("drain-timeout", 10.0,
         "On SIGTERM/SIGINT, seconds open pairs may finish before they are aborted (a second "
         "Ctrl-C aborts them at once).",
         non_negative_float),
    ]

    optParameters = optParameters + decoding.OPT_PARAMETERS
    optParameters += apioptions.api_parameters(None) + [apioptions.NAME_PARAMETER]
    optFlags = decoding.OPT_FLAGS + [
        ["decode-process", None,
         "Decode in a child process, on another core: this process forwards and hands the "
         "bytes over a pipe; the child decodes and writes the console view, --json and --pcap "
         "and serves a TCP or UNIX --web view, as this one would. Not with --fault, --api, "
         "--metrics/--stats-interval or an ssl: --web. The default on a machine with more "
         "than one core, where none of those is given."],
        ["decode-inline", None,
         "Decode in this process, never in a child (the default on one core, or with --fault, "
         "--api, --metrics, --stats-interval or an ssl: --web)."],
        ["no-zero-copy", None,
         "Forward every pair through Twisted (by default a plain TCP pair with --decode none, "
         "no pcap, web view or --fault/--api moves its bytes kernel to kernel with splice(2), "
         "at 4 more file descriptors per pair, and an observed one without --fault/--api is "
         "copied in the same epoll)."],
    ]
    opt_verbose = decoding.opt_verbose  # counted: -vv
    opt_v = decoding.opt_verbose

    def __init__(self):
        super().__init__()
        self["fault"] = []

    def opt_fault(self, spec):
        """Inject a fault, repeatable: TYPE[:STREAM][:VALUE][,key=value...], e.g.
        latency:downstream:200ms,jitter=50ms; bandwidth:upstream:64 (KB/s); slicer:10,delay=1ms;
        slow_close:1s; timeout:5s; reset_peer:2s; limit_data:1k; half_open:upstream;
        down:5s (refuse new clients). STREAM: upstream (client to server) or downstream
        (the default); toxicity=0.5 and name=N among the pairs. Redis commands:
        resp:COMMAND [KEYGLOB]:ACTION, e.g. resp:GET user:*:error=-LOADING, resp:GET:delay=200ms,
        resp:GET:drop, resp:SET:reset,nth=3 (close too). HTTP requests:
        http:METHOD PATHGLOB:ACTION, e.g. http:GET /api/*:status=503,retry_after=5,
        http:* /slow*:delay=2s, http:GET /big:slow_body=10240, http:GET /dl/*:cut=1k
        (slow_headers too)."""
        self["fault"].append(check_fault(spec, [t.name for t in self["fault"]]))

    def postOptions(self):
        super().postOptions()
        decoding.check_options(self)
        apioptions.check_options(self)
        if self["decode-process"] and self["decode-inline"]:
            raise usage.UsageError("--decode-process and --decode-inline: choose one")
        here = decoding.reads_decoder_here(self) if self["decode-process"] else []
        if here:
            raise usage.UsageError(f"--decode-process: {here[0]} needs the decoder in this "
                                   f"process; drop {here[0]} or --decode-process")
        if not self["target"]:
            raise usage.UsageError(f"--target is required ({addresses.TARGET_EXAMPLE})")
        self.target = addresses.client_target(self["target"], "--target")  # read once
        if addresses.target_is_listen(self["listen"], self.target):
            raise usage.UsageError(
                f"--target: {self['target']} is the proxy's own --listen address "
                f"({self['listen']}): every connection would connect to itself, and that one "
                f"to itself, until --max-connections")
        self["target"] = self.target.desc
        if self["target-ca"]:
            if self.target.kind != "tls":
                raise usage.UsageError("--target-ca only applies to a tls: --target")
            try:
                open(self["target-ca"], "rb").close()
            except OSError as e:
                raise usage.UsageError(f"--target-ca: cannot read {self['target-ca']}: {e.strerror}")


def check_fault(spec: str, taken=()):
    """The toxic a ``--fault`` spec stands for; a ``UsageError`` naming ``--fault`` if none."""
    try:
        toxic = parse_fault(spec)
    except FaultError as e:
        raise usage.UsageError(f"--fault: {spec!r}: {e}")
    if toxic.type not in BYTE_TYPES and toxic.type not in ("down", "resp", "http"):
        raise usage.UsageError(f"--fault: {spec!r}: {toxic.type}: not a toxic the proxy applies "
                               f"(byte toxics: {', '.join(BYTE_TYPES)}, down, resp, http)")
    if toxic.name in taken:
        raise usage.UsageError(f"--fault: {spec!r}: a toxic named {toxic.name} is already "
                               f"given; add name=OTHER")
    return toxic


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
    if decoding.child_by_default(options, stats):
        options["decode-process"] = True
    sinks, observer = decoding.build(options, reactor, stats=stats)
    factory = ProxyFactory(
        options.target,
        observer=observer,
        connect_timeout=options["connect-timeout"],
        handshake_timeout=options["handshake-timeout"],
        idle_timeout=options["idle-timeout"],
        max_connections=options["max-connections"],
        max_per_peer=options["max-connections-per-peer"],
        reactor=reactor,
        target_ca=options["target-ca"],
        # no ToxicSet when no toxic can come: the pairs may then splice zero-copy
        toxics=ToxicSet(options["fault"]) if options["fault"] or options.get("api") else None,
        zero_copy=not options["no-zero-copy"],
    )
    # One view of a pair: the console's own open/close lines, or these log lines when there is
    # no console (--quiet, --json -, --decode none) or when the log is a daemon's file.
    factory.log_connections = daemonized(options) or not decoding.shows_console(options)
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
    registry.adopt(options["name"], proxy, upstream)
    api = ApiListening(registry, options["api"], token=options["api-token"], reactor=reactor)
    registry.setServiceParent(proxy)
    api.setServiceParent(proxy)
    proxy.api = api
    proxy.registry = registry
