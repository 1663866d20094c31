"""The ``toxiproxy`` subcommand: toxiproxy's HTTP API with no proxies at start, like
``toxiproxy-server``; proxies created through it (or ``--config``, toxiproxy's JSON file of
proxies) are decoding tcpplay proxies sharing one decoder chain and one set of sinks.

``twistd -n tcpplay toxiproxy --api 8474`` then ``toxiproxy-cli``, a toxiproxy client library or
curl: ``curl -d '{"name":"redis","listen":"127.0.0.1:26379","upstream":"127.0.0.1:6379"}'
127.0.0.1:8474/proxies``.
"""

from __future__ import annotations

import itertools
import json

from twisted.application import service
from twisted.internet import defer
from twisted.python import usage

from playground.common.options import (
    CommandOptions,
    non_negative_float,
    non_negative_int,
    parameter,
    positive_int,
)
from playground.faults import apioptions
from playground.faults.api import ApiListening
from playground.faults.registry import MAX_PROXIES, ApiError, Registry, proxy_fields
from playground.proxy import decoding
from playground.proxy.service import daemonized


class Options(CommandOptions):
    synopsis = "[--api ADDR] [--config FILE] [options]"
    longdesc = (
        "toxiproxy's HTTP API, with no proxies at start: create them through it (toxiproxy's "
        "clients work unchanged), each a decoding tcpplay proxy whose faults (toxics) are set "
        "at runtime. Example: twistd -n tcpplay toxiproxy --api 8474, then "
        "curl -d '{\"name\":\"redis\",\"listen\":\"127.0.0.1:26379\",\"upstream\":\"127.0.0.1:6379\"}' "
        "127.0.0.1:8474/proxies."
    )
    optParameters = apioptions.api_parameters("8474") + [
        ["config", "c", None,
         "toxiproxy's JSON file of proxies (a list of {name, listen, upstream, enabled}), "
         "created at start as POST /populate would."],
        parameter("max-proxies", MAX_PROXIES, "At most this many proxies.", positive_int),
        parameter("max-connections", 10000,
                  "Each proxy refuses connections beyond this many open at once "
                  "(0 = unlimited).", non_negative_int),
        parameter("connect-timeout", 5.0,
                  "Seconds each proxy's upstream has to accept (0: the system's timeout).",
                  non_negative_float),
        parameter("idle-timeout", 0.0,
                  "Close a proxied connection idle for this many seconds (0 = never).",
                  non_negative_float),
        parameter("drain-timeout", 10.0,
                  "On SIGTERM/SIGINT, seconds open connections may finish before they are "
                  "aborted.", non_negative_float),
    ] + decoding.OPT_PARAMETERS
    optFlags = decoding.OPT_FLAGS
    opt_verbose = decoding.opt_verbose
    opt_v = decoding.opt_verbose

    def postOptions(self):
        decoding.check_options(self)
        if not self["api"]:
            raise usage.UsageError("--api: give an address, e.g. 8474")
        apioptions.check_options(self)
        self.populate = read_config(self["config"]) if self["config"] else []


def read_config(path: str) -> list[dict]:
    """toxiproxy's config file: a JSON list of proxies, each checked (``UsageError`` names the
    file and the entry)."""
    try:
        with open(path, "rb") as f:
            data = f.read(1 << 20)
    except OSError as e:
        raise usage.UsageError(f"--config: cannot read {path}: {e.strerror}")
    try:
        bodies = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise usage.UsageError(f"--config {path}: not JSON: {e}")
    if not isinstance(bodies, list):
        raise usage.UsageError(f"--config {path}: expected a JSON list of proxies")
    try:
        return [proxy_fields(body, f" at proxy {i}") for i, body in enumerate(bodies, 1)]
    except ApiError as e:
        raise usage.UsageError(f"--config {path}: {e.message}")


class ToxiproxyService(service.MultiService):
    """Sinks, then the registry of proxies, then the API. On stop: the API stops listening, the
    proxies drain, then the sinks flush."""

    def __init__(self, registry: Registry, api: ApiListening, sinks=(), populate=(),
                 config: str | None = None):
        super().__init__()
        self.registry = registry
        self.api = api
        self.sinks = list(sinks)
        self.populate = list(populate)
        self.config = config
        for sink in self.sinks:
            sink.setServiceParent(self)
        registry.setServiceParent(self)
        api.setServiceParent(self)

    def privilegedStartService(self):
        super().privilegedStartService()
        if not self.populate:
            return
        failures = []
        d = self.registry.populate(self.populate)  # TCP binds at once: fired by now
        d.addErrback(failures.append)
        self.populate = []
        if failures:
            error = failures[0].value
            raise SystemExit(f"tcpplay toxiproxy: --config {self.config}: "
                             f"{getattr(error, 'message', error)}")

    def stopService(self):
        service.Service.stopService(self)
        d = defer.maybeDeferred(self.api.stopService)
        d.addCallback(lambda _: self.registry.stopService())
        d.addCallback(lambda _: defer.DeferredList(
            [defer.maybeDeferred(s.stopService) for s in reversed(self.sinks)]))
        return d


def make_service(options, reactor=None) -> service.IService:
    from playground.sinks.console import ConsoleSink

    sinks, observer = decoding.build(options, reactor)
    registry = Registry(
        observer=observer, reactor=reactor, max_proxies=options["max-proxies"],
        connect_timeout=options["connect-timeout"], idle_timeout=options["idle-timeout"],
        max_connections=options["max-connections"],
        drain_timeout=options["drain-timeout"], ids=itertools.count(1),
        log_connections=daemonized(options) or not any(isinstance(s, ConsoleSink) for s in sinks))
    for sink in sinks:
        if hasattr(sink, "proxies"):  # the web view: its close buttons reach every proxy's pairs
            sink.proxies.append(registry)
    api = ApiListening(registry, options["api"], token=options["api-token"], reactor=reactor)
    return ToxiproxyService(registry, api, sinks, populate=getattr(options, "populate", ()),
                            config=options["config"])
