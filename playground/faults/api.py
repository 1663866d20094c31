"""toxiproxy's HTTP JSON API over a ``registry.Registry``: the routes, shapes and status codes
toxiproxy's clients expect, so they drive tcpplay unchanged.

Routes (toxiproxy's; ``POST`` and ``PATCH`` both update):

* ``GET /proxies`` (200, ``{name: proxy}``), ``POST /proxies`` (201, the proxy; 409 when the
  name is taken), ``POST /populate`` (201, ``{"proxies": [...]}``);
* ``GET``/``POST``/``PATCH``/``DELETE /proxies/{name}`` (200, 200, 200, 204);
* ``GET``/``POST /proxies/{name}/toxics`` (200: the list; 200: the toxic; 409 when its name is
  taken);
* ``GET``/``POST``/``PATCH``/``DELETE /proxies/{name}/toxics/{toxic}`` (200, 200, 200, 204);
* ``POST /reset`` (204: every proxy enabled, every toxic removed), ``GET /version`` (200).

A proxy is ``{"name", "listen", "upstream", "enabled", "toxics"}``, a toxic
``{"name", "type", "stream", "toxicity", "attributes"}`` (``playground.faults.model``). An error is
``{"error": TEXT, "status": CODE}`` with that code: 400 a bad body or field (the model's
``FaultError`` text, naming the field), 404 an unknown proxy, toxic or route, 405 a method the
route does not take, 409 a name already taken, 413 a body over ``MAX_BODY`` bytes (the site's
plain-text 413, as its 414 and 431, when its ``Content-Length`` says so), 500 a port that
cannot be bound. Like toxiproxy, a request whose ``User-Agent`` starts with ``Mozilla/`` is
refused (403): a web page cannot drive the API from a browser; so is, without a token, one
whose ``Host`` does not name loopback (403): a page whose name was re-pointed at 127.0.0.1 (DNS
rebinding) would otherwise drive it same-origin (Firefox lets a script set ``User-Agent``), e.g.
create a proxy on 0.0.0.0 in front of a local Redis.

``token``: when set (the API is bound beyond loopback), every request must carry it: the
``Authorization: Bearer TOKEN`` or ``X-Tcpplay-Token`` header, or ``?token=``, compared in constant
time; 401 otherwise. On loopback none is needed.
"""

from __future__ import annotations

import json

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

import playground
from playground.common.limits import BoundedRequest, CappedSite
from playground.common.listening import ListeningService
from playground.faults.registry import ApiError, PopulateError, Registry, bad_request, proxy_fields
from playground.web.options import authorised, host_refused

MAX_BODY = BoundedRequest.max_body  # CappedSite's requests keep no more of a body
VERSION = f"tcpplay {playground.__version__}"
_UPDATE = (b"POST", b"PATCH")


class ToxiproxyApi(resource.Resource):
    """Every route (see the module docstring); one leaf resource that dispatches by path."""

    isLeaf = True
    log = Logger()

    def __init__(self, registry: Registry, token: str | None = None):
        super().__init__()
        self.registry = registry
        self.token = token

    # -- plumbing ----------------------------------------------------------------------------
    def _json(self, request, obj, status: int = 200) -> bytes:
        request.setResponseCode(status)
        if status == 204:
            return b""
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(obj, separators=(",", ":")).encode() + b"\n"

    def _error(self, request, status: int, message: str) -> bytes:
        return self._json(request, {"error": message, "status": status}, status)

    def _body(self, request):
        """The request's JSON body; ``ApiError`` 413 when too long, 400 when not JSON."""
        if request.received > MAX_BODY:
            raise ApiError(f"request body over {MAX_BODY} bytes", 413)
        request.content.seek(0)
        data = request.content.read()
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as e:  # bad JSON, bad UTF-8, nesting too deep
            raise bad_request(str(e) if not isinstance(e, RecursionError) else "nested too deep")

    def render(self, request):
        request.setHeader(b"cache-control", b"no-store")
        user_agent = request.getHeader(b"user-agent") or b""
        if user_agent.startswith(b"Mozilla/"):
            return self._error(request, 403, "User agent not allowed")
        if not authorised(request, self.token):
            return self._error(request, 401, "a token is needed: the Authorization: Bearer "
                                             "TOKEN header, X-Tcpplay-Token, or ?token=TOKEN")
        if host_refused(request, self.token):
            return self._error(request, 403, "without a token, the API answers only a Host "
                                             "naming loopback (127.0.0.1, [::1], localhost): "
                                             "a page on another name may be DNS rebinding "
                                             "(set --api-token to reach it by another name)")
        path = [p.decode("utf-8", "replace") for p in request.postpath]
        while len(path) > 1 and path[-1] == "":
            path.pop()
        try:
            result = self._route(request, request.method, path)
        except ApiError as e:
            return self._error(request, e.status, e.message)
        if not isinstance(result, defer.Deferred):
            return result
        self._answer_later(request, result)
        return server.NOT_DONE_YET

    def _answer_later(self, request, d: defer.Deferred) -> None:
        gone = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def failed(failure):
            if failure.check(PopulateError):
                e = failure.value
                return self._json(request, {"error": e.message, "status": e.status,
                                            "proxies": [p.to_json() for p in e.done]}, e.status)
            if failure.check(ApiError):
                return self._error(request, failure.value.status, failure.value.message)
            self.log.failure("toxiproxy API: {method} {uri} failed", failure,
                             method=request.method.decode("ascii", "replace"),
                             uri=request.uri.decode("utf-8", "replace"))
            return self._error(request, 500, "internal error (see the server's log)")

        def write(body: bytes):
            if not gone:
                request.write(body)
                request.finish()

        d.addErrback(failed).addCallback(write)

    # -- routes --------------------------------------------------------------------------------
    def _route(self, request, method: bytes, path: list[str]):
        registry = self.registry
        if path == ["version"]:
            self._allow(method, b"GET")
            return self._json(request, {"version": VERSION})
        if path == ["reset"]:
            self._allow(method, b"POST")
            return registry.reset().addCallback(lambda _: self._json(request, None, 204))
        if path == ["populate"]:
            self._allow(method, b"POST")
            d = registry.populate(self._body(request))
            return d.addCallback(lambda done: self._json(
                request, {"proxies": [p.to_json() for p in done]}, 201))
        if not path or path[0] != "proxies" or len(path) > 4 or len(path) == 3 and \
                path[2] != "toxics" or len(path) == 4 and path[2] != "toxics":
            raise ApiError("not found", 404)
        if len(path) == 1:
            self._allow(method, b"GET", b"POST")
            if method == b"GET":
                return self._json(request, registry.to_json())
            d = registry.create(proxy_fields(self._body(request)))
            return d.addCallback(lambda proxy: self._json(request, proxy.to_json(), 201))
        name = path[1]
        if len(path) == 2:
            self._allow(method, b"GET", b"DELETE", *_UPDATE)
            if method == b"GET":
                return self._json(request, registry.get(name).to_json())
            if method == b"DELETE":
                return registry.delete(name).addCallback(lambda _: self._json(request, None, 204))
            d = registry.update(name, self._body(request))
            return d.addCallback(lambda proxy: self._json(request, proxy.to_json()))
        if len(path) == 3:
            self._allow(method, b"GET", b"POST")
            if method == b"GET":
                return self._json(request, [t.to_json() for t in registry.get(name).toxics])
            registry.get(name)  # 404 before a body error, as toxiproxy
            return self._json(request, registry.add_toxic(name, self._body(request)).to_json())
        toxic = path[3]
        self._allow(method, b"GET", b"DELETE", *_UPDATE)
        if method == b"GET":
            return self._json(request, registry.toxic(name, toxic).to_json())
        if method == b"DELETE":
            registry.remove_toxic(name, toxic)
            return self._json(request, None, 204)
        registry.toxic(name, toxic)
        return self._json(request, registry.update_toxic(name, toxic,
                                                         self._body(request)).to_json())

    @staticmethod
    def _allow(method: bytes, *allowed: bytes) -> None:
        if method not in allowed:
            raise ApiError(f"method {method.decode('ascii', 'replace')} not allowed here "
                           f"(allowed: {', '.join(m.decode() for m in allowed)})", 405)


def make_site(registry: Registry, token: str | None = None) -> server.Site:
    site = CappedSite(ToxiproxyApi(registry, token=token), reactor=registry.reactor)
    site.label = "toxiproxy API"
    site.displayTracebacks = False
    site.noisy = False
    site.log = lambda request: None  # no access log: the registry logs what changes
    return site


class ApiListening(ListeningService):
    """The API's listener; its start-up line says how to reach it (with the token when one is
    needed)."""

    def __init__(self, registry: Registry, desc: str, token: str | None = None, flag="--api",
                 reactor=None):
        super().__init__("toxiproxy API", desc, make_site(registry, token), flag=flag,
                         reactor=reactor)
        self.token = token

    def _announce(self):
        super()._announce()
        if self.token:
            self.log.info("toxiproxy API token: {token} (Authorization: Bearer TOKEN, "
                          "X-Tcpplay-Token, or ?token=)", token=self.token)
