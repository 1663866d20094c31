"""The named proxies of one process, as toxiproxy keeps them: create, update, delete, populate, reset.

A proxy here is toxiproxy's: a ``name``, a ``listen`` and an ``upstream`` in ``HOST:PORT`` form,
``enabled`` (listening or not) and its live ``ToxicSet``. Each one is a decoding tcpplay proxy, a
``playground.proxy.service.ProxyService`` (its ``ProxyFactory`` with ``toxics=``, its listener,
the ``down`` toxic's hook); all of them share the process's decoder chain and sinks and one
numbering of pairs, as the demo's two proxies do. Enabling again listens on the address the proxy
had (the same port, also when it was asked for port 0), as toxiproxy does.

The bookkeeping follows toxiproxy's ``ProxyCollection``: a new proxy is enabled unless told
otherwise; ``listen`` ``127.0.0.1:0`` picks a free port and the proxy then reports the real one;
a changed ``listen`` or ``upstream`` restarts the proxy (its open connections are closed);
``enabled: false`` stops listening (clients get "connection refused") and closes the open
connections; ``populate`` creates or replaces a list of proxies, leaving alone those whose
``listen`` and ``upstream`` are unchanged; ``reset`` enables every proxy and removes every toxic.
Errors carry toxiproxy's status and text (``ApiError``). At most ``max_proxies`` proxies.

The parsing of addresses and bodies is pure (``listen_address``, ``proxy_fields``); ``Registry``
is the Twisted part that starts and stops the listening ports.
"""

from __future__ import annotations

import re

import attrs
from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from playground.common import addresses
from playground.common.defaultreactor import default_reactor
from playground.common.listening import ListeningService
from playground.faults.model import NAME_RULE, FaultError, ToxicSet, toxic_from_json, valid_name
from playground.proxy.service import ProxyService
from playground.proxy.splice import ProxyFactory

MAX_PROXIES = 256
DEFAULT_LISTEN = "127.0.0.1:0"
_HOST_PORT = re.compile(r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]\s]*)):(?P<port>[0-9]{1,5})\Z")


class ApiError(Exception):
    """An error as toxiproxy's API reports it: ``{"error": message, "status": status}``."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


def bad_request(detail: str) -> ApiError:
    return ApiError(f"bad request body: {detail}", 400)


def missing_field(field: str) -> ApiError:
    return ApiError(f"missing required field: {field}", 400)


PROXY_NOT_FOUND = "proxy not found"
TOXIC_NOT_FOUND = "toxic not found"


@attrs.frozen
class ListenAddress:
    """A ``listen`` value read: the host to bind (``""`` = every interface) and the port."""

    host: str
    port: int

    @property
    def endpoint(self) -> str:
        """The server endpoint string for it (IPv4 every-interface for ``:PORT``)."""
        host = self.host or "0.0.0.0"
        return addresses.server_string(f"[{host}]:{self.port}" if ":" in host
                                       else f"{host}:{self.port}", "listen")


def listen_address(text) -> ListenAddress:
    """toxiproxy's ``listen``: ``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (every interface)."""
    if not isinstance(text, str) or not (m := _HOST_PORT.match(text.strip())):
        raise ApiError(f"listen: expected HOST:PORT, e.g. 127.0.0.1:0, got {text!r}", 400)
    port = int(m.group("port"))
    if port > 65535:
        raise ApiError(f"listen: port {port} is out of range 0-65535", 400)
    host = m.group("v6") or m.group("host")
    if host == "localhost":
        host = "127.0.0.1"
    return ListenAddress(host, port)


def address_text(host: str, port: int) -> str:
    """``HOST:PORT`` as toxiproxy writes a bound address (``[::1]:8080`` for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


NETWORK_KINDS = ("tcp", "tcp6", "tls", "ssl")


def upstream_target(text) -> addresses.Target:
    """toxiproxy's ``upstream``: ``HOST:PORT`` (a tcpplay ``--target`` value is accepted too)."""
    if not isinstance(text, str):
        raise ApiError(f"upstream: expected HOST:PORT, got {text!r}", 400)
    try:
        # also refuses an endpoint type the syntax admits but no client endpoint has ("stdio:")
        target = addresses.client_target(text, "upstream")
    except usage.UsageError as e:
        raise ApiError(str(e), 400)
    if target.kind not in NETWORK_KINDS:
        # safe by default: whoever reaches the API must not reach the local sockets through it
        # (a unix: upstream to a daemon's control socket); `proxy --target` still takes one
        raise ApiError(f"upstream: only a network address (HOST:PORT, tcp:, tls:) through the "
                       f"API, got a {target.kind}: endpoint", 400)
    return target


def check_not_itself(listen: str, upstream: str, where: str = "") -> None:
    """400 when ``upstream`` is the proxy's own ``listen`` address (``addresses.reaches``, the
    rule ``proxy --target`` is held to as well): each connection would open the next until the
    file descriptors run out (one client made 1018 pairs at nofile 2048)."""
    bound, target = listen_address(listen), upstream_target(upstream)
    if addresses.reaches(bound.host, bound.port, target.host, target.port):
        raise ApiError(f"upstream: {upstream} is the proxy's own listen address {listen}"
                       f"{where}: every connection would connect to itself", 400)


def proxy_fields(body, where: str = "") -> dict:
    """The fields of a proxy's JSON body (``POST /proxies``, one entry of ``/populate``), checked:
    ``name`` and ``upstream`` required, ``listen`` defaulted to ``127.0.0.1:0``, ``enabled`` to
    true. Unknown fields are ignored, as toxiproxy does."""
    if not isinstance(body, dict):
        raise bad_request(f"expected a JSON object{where}")
    name = body.get("name")
    if not name:
        raise missing_field(f"name{where}")
    if not valid_name(name):
        raise ApiError(f"name: {NAME_RULE} expected, got {name!r}", 400)
    if not body.get("upstream"):
        raise missing_field(f"upstream{where}")
    enabled = body.get("enabled", True)
    if enabled is None:
        enabled = True
    if not isinstance(enabled, bool):
        raise bad_request(f"enabled: expected true or false, got {enabled!r}")
    listen = body.get("listen") or DEFAULT_LISTEN
    check_not_itself(listen, body["upstream"], where)
    return {"name": name, "listen": listen, "upstream": body["upstream"], "enabled": enabled}


class Proxy:
    """One named proxy: its fields as toxiproxy shows them and the ``ProxyService`` that runs it
    (its listener, its factory, the factory's toxics; the ``down`` toxic's hook).

    ``fixed``: the ``proxy --api`` subcommand's own proxy, adopted; its ``listen`` and
    ``upstream`` are those of ``--listen`` and ``--target``."""

    def __init__(self, name: str, listen: str, upstream: str, runner: ProxyService,
                 fixed: bool = False):
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.runner = runner
        self.fixed = fixed

    @property
    def factory(self) -> ProxyFactory:
        return self.runner.factory

    @property
    def toxics(self) -> ToxicSet:
        return self.runner.factory.toxics

    @property
    def port(self):
        return self.runner.listening.port

    @property
    def enabled(self) -> bool:
        return self.port is not None

    def to_json(self) -> dict:
        """toxiproxy's shape: name, listen (the bound address once listening), upstream,
        enabled and the toxics."""
        if self.port is not None and getattr(self.port.getHost(), "host", None) is not None:
            self.listen = address_text(*_host_port(self.port))
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": [t.to_json() for t in self.toxics]}


class Registry(service.Service):
    """The proxies by name. Operations that listen return Deferreds (fired with the proxy);
    failures are ``ApiError``. On stop: every port stops listening and open pairs are drained
    for ``drain_timeout`` seconds, then aborted."""

    log = Logger()

    def __init__(self, observer=None, reactor=None, max_proxies: int = MAX_PROXIES,
                 connect_timeout: float = 5.0, idle_timeout: float = 0.0,
                 max_connections: int = 0, drain_timeout: float = 10.0,
                 log_connections: bool = True, ids=None):
        self.name = "toxiproxy registry"
        self.observer = observer
        self.reactor = default_reactor(reactor)
        self.max_proxies = max_proxies
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.drain_timeout = drain_timeout
        self.log_connections = log_connections
        self.ids = ids
        self.proxies: dict[str, Proxy] = {}

    # -- reading ------------------------------------------------------------------------------
    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ApiError(PROXY_NOT_FOUND, 404)
        return proxy

    def to_json(self) -> dict:
        return {name: proxy.to_json() for name, proxy in self.proxies.items()}

    def close_pair(self, pair_id: int, how: str, by: str) -> bool:
        """Close open pair ``pair_id`` of any proxy (the web view's close buttons)."""
        return any(p.factory.close_pair(pair_id, how, by) for p in self.proxies.values())

    # -- proxies ------------------------------------------------------------------------------
    def adopt(self, name: str, runner: ProxyService, upstream: str) -> Proxy:
        """Take in a proxy that runs already (``proxy --api``: its factory made with
        ``toxics=``)."""
        proxy = Proxy(name, runner.listening.desc, upstream, runner, fixed=True)
        self.proxies[name] = proxy
        return proxy

    @defer.inlineCallbacks
    def create(self, fields: dict):
        """A new proxy from checked ``proxy_fields``; 409 when the name is taken."""
        if fields["name"] in self.proxies:
            raise ApiError("proxy already exists", 409)
        if len(self.proxies) >= self.max_proxies:
            raise ApiError(f"at most {self.max_proxies} proxies", 409)
        proxy = Proxy(fields["name"], fields["listen"], fields["upstream"],
                      self._runner(fields["name"], fields["listen"], fields["upstream"],
                                   ToxicSet()))
        if fields["enabled"]:
            yield self._start(proxy)  # TCP: bound at once, nothing else runs meanwhile
        self.proxies[proxy.name] = proxy
        return proxy

    @defer.inlineCallbacks
    def update(self, name: str, body):
        """toxiproxy's ``POST /proxies/{name}``: ``listen``, ``upstream``, ``enabled``; the
        fields left out keep their values. A changed address restarts the proxy."""
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        listen = body.get("listen") or proxy.listen
        upstream = body.get("upstream") or proxy.upstream
        enabled = body.get("enabled")
        if enabled is None:
            enabled = proxy.enabled
        if not isinstance(enabled, bool):
            raise bad_request(f"enabled: expected true or false, got {enabled!r}")
        moved = _differs(proxy, listen, upstream)
        if moved and proxy.fixed:
            raise ApiError(f"{name}: listen and upstream are fixed by --listen and --target", 400)
        if moved:
            check_not_itself(listen, upstream)
            was_enabled = proxy.enabled
            yield self._retire(proxy)
            # a new runner, with the toxics in a set of its own (the old one listens to the old)
            proxy.listen, proxy.upstream = listen, upstream
            proxy.runner = self._runner(name, listen, upstream, ToxicSet(proxy.toxics))
            if was_enabled and body.get("enabled") is None:
                enabled = True
        if enabled and not proxy.enabled:
            yield self._start(proxy)
        elif not enabled and proxy.enabled:
            yield self._disable(proxy)
        return proxy

    @defer.inlineCallbacks
    def delete(self, name: str):
        proxy = self.get(name)
        if proxy.fixed:
            raise ApiError(f"{name}: the proxy of --listen/--target cannot be deleted "
                           "(disable it: enabled false)", 400)
        del self.proxies[name]
        yield self._retire(proxy)
        self.log.info("toxiproxy: proxy {name} deleted", name=name)

    @defer.inlineCallbacks
    def populate(self, bodies):
        """toxiproxy's ``/populate``: every entry checked first, then each created or replaced
        (an unchanged one is left alone). Returns the proxies; a failure part way raises
        ``PopulateError`` with the ones done."""
        if not isinstance(bodies, list):
            raise bad_request("expected a JSON array of proxies")
        checked = [proxy_fields(body, f" at proxy {i}") for i, body in enumerate(bodies, 1)]
        done: list[Proxy] = []
        for fields in checked:
            try:
                done.append((yield self._add_or_replace(fields)))
            except ApiError as e:
                raise PopulateError(e.message, e.status, done)
        return done

    @defer.inlineCallbacks
    def _add_or_replace(self, fields: dict):
        existing = self.proxies.get(fields["name"])
        if existing is not None:
            if not _differs(existing, fields["listen"], fields["upstream"]):
                return existing
            if existing.fixed:
                raise ApiError(f"{existing.name}: listen and upstream are fixed by --listen "
                               "and --target", 400)
            del self.proxies[existing.name]
            yield self._retire(existing)
        return (yield self.create(fields))

    @defer.inlineCallbacks
    def reset(self):
        """Enable every proxy, remove every toxic."""
        for proxy in list(self.proxies.values()):
            if not proxy.enabled:
                yield self._start(proxy)
            proxy.toxics.reset()

    # -- toxics -------------------------------------------------------------------------------
    def add_toxic(self, name: str, body):
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        try:
            toxic = toxic_from_json(body)
        except FaultError as e:
            raise ApiError(str(e), 400)
        if proxy.toxics.get(toxic.name) is not None:
            raise ApiError("toxic already exists", 409)
        try:
            return proxy.toxics.add(toxic)
        except FaultError as e:  # the set is full
            raise ApiError(str(e), 409)

    def toxic(self, name: str, toxic_name: str):
        toxic = self.get(name).toxics.get(toxic_name)
        if toxic is None:
            raise ApiError(TOXIC_NOT_FOUND, 404)
        return toxic

    def update_toxic(self, name: str, toxic_name: str, body):
        """toxiproxy's toxic update: ``attributes`` merged, ``toxicity`` replaced; its ``name``,
        ``type`` and ``stream`` are ignored as toxiproxy ignores them."""
        proxy = self.get(name)
        self.toxic(name, toxic_name)
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        changes = {}
        if body.get("attributes") is not None:
            if not isinstance(body["attributes"], dict):
                raise bad_request("attributes: expected a JSON object")
            changes["attributes"] = body["attributes"]
        if "toxicity" in body:
            changes["toxicity"] = body["toxicity"]
        try:
            return proxy.toxics.update(toxic_name, **changes)
        except FaultError as e:
            raise ApiError(str(e), 400)

    def remove_toxic(self, name: str, toxic_name: str):
        proxy = self.get(name)
        self.toxic(name, toxic_name)
        proxy.toxics.remove(toxic_name)

    # -- listening ----------------------------------------------------------------------------
    def _runner(self, name: str, listen: str, upstream: str, toxics: ToxicSet) -> ProxyService:
        """A proxy's service, not started: a decoding ``ProxyFactory`` with ``toxics`` and its
        listener on ``listen``."""
        factory = ProxyFactory(upstream_target(upstream), observer=self.observer,
                               connect_timeout=self.connect_timeout,
                               idle_timeout=self.idle_timeout,
                               max_connections=self.max_connections, reactor=self.reactor,
                               toxics=toxics)
        factory.log_connections = self.log_connections
        if self.ids is not None:
            factory.ids = self.ids
        listening = ListeningService(f"proxy {name}", listen_address(listen).endpoint, factory,
                                     flag="listen", reactor=self.reactor)
        return ProxyService(listening, factory, self.drain_timeout)

    @defer.inlineCallbacks
    def _start(self, proxy: Proxy):
        """Listen: the first time by binding and starting its service, later on the address it
        had (``listen_again``)."""
        runner = proxy.runner
        if proxy.enabled:
            return proxy
        if runner.running:
            runner.listening.listen_again()
            if runner.listening.port is None:
                raise ApiError(f"listen {proxy.listen}: cannot listen again (the log says why)",
                               500)
            return proxy
        try:
            endpoint = addresses.server_endpoint(self.reactor, runner.listening.desc, "listen")
            port = yield endpoint.listen(runner.factory)
        except usage.UsageError as e:
            raise ApiError(str(e), 400)
        except Exception as e:  # the bind failed: toxiproxy answers 500 with the reason
            raise ApiError(f"listen {proxy.listen}: {e}", 500)
        runner.listening.port = port  # bound here, so the error is the API's; then started
        runner.startService()
        return proxy

    def _close_pairs(self, proxy: Proxy) -> None:
        for pair_id in list(proxy.factory.pairs):
            proxy.factory.close_pair(pair_id, "fin", by="toxiproxy api")

    @defer.inlineCallbacks
    def _disable(self, proxy: Proxy):
        """Stop listening (new clients are refused) and close the open connections."""
        was = proxy.enabled
        yield proxy.runner.listening.stop_listening()
        self._close_pairs(proxy)
        if was:
            self.log.info("toxiproxy: proxy {name} disabled", name=proxy.name)

    @defer.inlineCallbacks
    def _retire(self, proxy: Proxy):
        """Disable it and stop its service for good (the answer does not wait for the closed
        connections to finish: the drain goes on behind it)."""
        yield self._disable(proxy)
        if proxy.runner.running:
            d = defer.maybeDeferred(proxy.runner.stopService)
            d.addErrback(lambda f: self.log.failure("toxiproxy: stopping proxy {name}", f,
                                                    name=proxy.name))

    # -- service ------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def stopService(self):
        service.Service.stopService(self)
        yield defer.DeferredList([defer.maybeDeferred(p.runner.stopService)
                                  for p in self.proxies.values()
                                  if not p.fixed and p.runner.running])


class PopulateError(ApiError):
    """``/populate`` failed part way: ``done`` are the proxies created or kept before it."""

    def __init__(self, message: str, status: int, done: list):
        super().__init__(message, status)
        self.done = done


def _host_port(port) -> tuple[str, int]:
    host = port.getHost()
    return host.host, host.port


def _differs(proxy: Proxy, listen: str, upstream: str) -> bool:
    """toxiproxy's ``Differs``: another upstream, or a listen address other than the bound one
    (port 0 always differs: it asks for a new port)."""
    if upstream != proxy.upstream:
        return True
    if listen == proxy.listen:
        return False
    try:
        wanted, current = listen_address(listen), listen_address(proxy.listen)
    except ApiError:
        return True
    return wanted != current or wanted.port == 0
