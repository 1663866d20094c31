"""httpbin-style endpoints, pure: a parsed request in, a ``Response`` description out.

Nothing here touches a socket or a clock. Responses that take time (``/delay``, ``/drip``) say so
in the description (``delay``, ``pieces`` and ``interval``) and the Twisted adapter schedules them.
The adapter adds the framing headers (``Date``, ``Server``, ``Content-Length`` or chunked,
``Connection``) and drops the body of ``HEAD`` responses; every ``GET`` endpoint answers ``HEAD``.
``CONNECT`` gets 501 wherever it points: a 2xx answer would open a tunnel (RFC 9110 9.3.6).
"""

from __future__ import annotations

import base64
import json
import os
import random
import re
import uuid
from urllib.parse import parse_qsl, unquote

import attrs

from playground.common.digits import digits_only
from playground.examples.http.parser import RequestHead

MiB = 1 << 20


@attrs.frozen
class Response:
    """What to answer. ``pieces`` (when set) replaces ``body``: sent one by one, ``interval``
    seconds apart, chunked when ``chunked`` else with a ``Content-Length`` of their total."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    pieces: tuple[bytes, ...] | None = None
    interval: float = 0.0
    chunked: bool = False


@attrs.frozen
class AppLimits:
    max_delay: float = 10.0
    max_bytes: int = 10 * MiB
    max_stream: int = 100
    max_drip_duration: float = 10.0
    max_drip_bytes: int = 10 * MiB
    max_drip_pieces: int = 100
    max_redirects: int = 100


JSON = (("Content-Type", "application/json"),)
TEXT = (("Content-Type", "text/plain; charset=utf-8"),)
OCTETS = (("Content-Type", "application/octet-stream"),)

GET = ("GET", "HEAD")
ANY = None  # every method

INDEX = """tcpplay HTTP/1.1 responder: an httpbin-style test target for HTTP clients.

Endpoints:
  GET    /                   this page
  GET    /get                the request as JSON: args, headers, origin, url
  POST   /post               ... plus data, form, json, files (also PUT /put, PATCH /patch,
                             DELETE /delete)
  ANY    /anything[/...]     the request as JSON, any method
  GET    /headers            the request headers
  GET    /ip                 the client address
  GET    /user-agent         the User-Agent header
  ANY    /status/{code}      answer with that status
  ANY    /delay/{seconds}    answer after a delay (at most {max_delay:g} s)
  GET    /bytes/{n}          n random bytes (at most {max_bytes}; ?seed=N for repeatable bytes)
  GET    /stream/{n}         n JSON lines, chunked (at most {max_stream})
  GET    /drip               a slow body: ?duration=2&numbytes=10&delay=0&code=200
  GET    /redirect/{n}       a chain of n 302 redirects ending at /get
  GET    /uuid               a fresh UUID4
  ANY    /echo               the raw request exactly as received, as text/plain

Try: curl -v http://HOST:PORT/get   or   printf 'GET /echo HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -N HOST PORT
"""


def _json(obj, status: int = 200) -> Response:
    return Response(status, JSON, (_dumps(obj) + "\n").encode())


def _not_json(obj):
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _no_constant(name: str):
    """``json.loads`` reads ``NaN``, ``Infinity`` and ``-Infinity``; JSON has none of them, and
    echoed back they would make our answer something strict parsers refuse."""
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    """A JSON number as a float, refusing one too large for it (``1e400``: inf, as above)."""
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is too large")
    return value


def _make_dumps():
    """``json.JSONEncoder(ensure_ascii=False).encode``, same text: with the C encoder, made once
    here rather than on every call as ``encode`` does (half the cost of a small body). No
    circular-reference check: the objects are built fresh from parsed text."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return json.JSONEncoder(ensure_ascii=False).encode
    chunks = make(None, _not_json, json.encoder.encode_basestring, None, ": ", ", ", False,
                  False, True)
    return lambda obj: "".join(chunks(obj, 0))


_dumps = _make_dumps()


def _text(text: str, status: int = 200, extra=()) -> Response:
    return Response(status, TEXT + tuple(extra), text.encode())


_TITLES: dict[str, str] = {}


def _title(name: str) -> str:
    """``user-agent`` -> ``User-Agent`` (as httpbin shows header names); cached, bounded."""
    title = _TITLES.get(name)
    if title is None:
        title = "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))
        if len(_TITLES) < 4096:
            _TITLES[name] = title
    return title


_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def _number(text: str, kind=int):
    """``text`` as a whole number (``kind=int``) or a decimal one (``float``: one point allowed)
    written in ASCII digits and nothing else, else None. ``int()`` and ``float()`` also take a
    sign, ``_``, spaces around, exponents, ``inf``, ``nan`` and other scripts' digits."""
    if not (digits_only(text) if kind is int else _DECIMAL.fullmatch(text)):
        return None
    try:
        value = kind(text)
    except ValueError:  # past int()'s digit limit
        return None
    return None if value == float("inf") else value  # float("9" * 400)


def _fields(query: str) -> dict:
    """``a=1&b=2&a=3`` -> ``{"a": ["1", "3"], "b": "2"}``: a name given once maps to its value,
    one given more often to the list of its values (as httpbin shows them). Appended in place: a
    form repeating one name 500,000 times is read in linear time."""
    out: dict = {}
    for k, v in parse_qsl(query, keep_blank_values=True):
        prev = out.get(k)
        if prev is None:
            out[k] = v
        elif type(prev) is list:
            prev.append(v)
        else:
            out[k] = [prev, v]
    return out


@attrs.define
class Request:
    """The view of a request endpoints work with."""

    head: RequestHead
    body: bytes
    client: str
    path: str = ""
    query: str = ""

    @property
    def method(self) -> str:
        return self.head.method

    def args(self) -> dict:
        return _fields(self.query) if self.query else {}

    def arg(self, name: str, default: str | None = None) -> str | None:
        for k, v in parse_qsl(self.query, keep_blank_values=True):
            if k == name:
                return v
        return default

    def headers(self) -> dict:
        out: dict = {}
        for k, v in self.head.headers:
            t = _title(k)
            out[t] = out[t] + "," + v if t in out else v
        return out

    def url(self) -> str:
        target = self.head.target
        if target[:1] != "/":
            return target
        return f"http://{self.head.host or 'localhost'}{target}"

    def basic(self) -> dict:
        return {"args": self.args(), "headers": self.headers(), "origin": self.client,
                "url": self.url()}

    def with_body(self, method: bool = False) -> dict:
        body = self.body
        ctype = (self.head.get("content-type") or "").split(";")[0].strip().lower()
        form: dict = {}
        data = ""
        if ctype == "application/x-www-form-urlencoded":
            form = _fields(body.decode("utf-8", "replace"))
        else:
            try:
                data = body.decode("utf-8")
            except UnicodeDecodeError:
                data = "data:application/octet-stream;base64," + base64.b64encode(body).decode()
        decoded = None
        if body:
            try:
                decoded = json.loads(body, parse_constant=_no_constant, parse_float=_finite)
            except (ValueError, RecursionError):  # not JSON, or nested past the stack's depth
                decoded = None
        out = {"args": self.args(), "data": data, "files": {}, "form": form,
               "headers": self.headers(), "json": decoded}
        if method:
            out["method"] = self.method
        out["origin"] = self.client
        out["url"] = self.url()
        return out


class HttpApp:
    """Routes a request to an endpoint. ``respond`` never raises for any input."""

    def __init__(self, limits: AppLimits | None = None, rng: random.Random | None = None):
        self.limits = limits or AppLimits()
        self.rng = rng or random.Random()
        self._exact = {
            "/": (GET, self.index),
            "/get": (GET, self.get),
            "/post": (("POST",), self.body_echo),
            "/put": (("PUT",), self.body_echo),
            "/patch": (("PATCH",), self.body_echo),
            "/delete": (("DELETE",), self.body_echo),
            "/anything": (ANY, self.anything),
            "/headers": (GET, self.headers),
            "/ip": (GET, self.ip),
            "/user-agent": (GET, self.user_agent),
            "/drip": (GET, self.drip),
            "/uuid": (GET, self.uuid),
            "/echo": (ANY, self.echo),
        }
        self._prefixed = {
            "anything": (ANY, self.anything),
            "status": (ANY, self.status),
            "delay": (ANY, self.delay),
            "bytes": (GET, self.bytes),
            "stream": (GET, self.stream),
            "redirect": (GET, self.redirect),
        }

    # -- routing

    def _route(self, path: str):
        found = self._exact.get(path)
        if found is not None:
            return found, ""
        first, sep, rest = path[1:].partition("/")
        found = self._prefixed.get(first)
        if found is not None and sep and (rest or first == "anything"):
            return found, rest
        return None, ""

    @staticmethod
    def _split(head: RequestHead) -> tuple[str, str]:
        target = head.target
        if target[:1] == "/":
            path, _, query = target.partition("?")
        elif target == "*":
            return "*", ""
        else:  # absolute-form, its shape checked by the parser (urlsplit refuses some of it)
            rest = target[target.index("//") + 2 :]
            cut = min(i for i in (rest.find("/"), rest.find("?"), len(rest)) if i >= 0)
            path, _, query = rest[cut:].partition("?")
            path = path or "/"
        return (unquote(path) if "%" in path else path), query

    def wants_body(self, head: RequestHead) -> bool:
        """Whether the request would reach an endpoint (for ``Expect: 100-continue``)."""
        if head.method == "CONNECT":
            return False
        path, _ = self._split(head)
        found, _rest = self._route(path)
        if found is None:
            return False
        methods = found[0]
        return methods is None or head.method in methods

    def respond(self, head: RequestHead, body: bytes, client: str) -> Response:
        if head.method == "CONNECT":  # a 2xx would tell the client a tunnel is open
            return _text("501 Not Implemented: CONNECT (this server is not a proxy)\n", 501)
        path, query = self._split(head)
        if path == "*":
            if head.method == "OPTIONS":
                return Response(200, (("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                                      ("Content-Length", "0")))
            return _text("'*' is only for OPTIONS\n", 400)
        found, rest = self._route(path)
        if found is None:
            return _text(f"404 Not Found: {path}\nSee / for the list of endpoints.\n", 404)
        methods, handler = found
        method = head.method
        if methods is not None and method not in methods:
            allow = ", ".join(methods)
            return _text(f"405 Method Not Allowed: {method} {path} (allowed: {allow})\n", 405,
                         (("Allow", allow),))
        if method == "HEAD":
            method = "GET"
        return handler(Request(head, body, client, path, query), rest)

    # -- endpoints

    def index(self, req: Request, rest: str) -> Response:
        lim = self.limits
        text = (INDEX.replace("{max_delay:g}", f"{lim.max_delay:g}")
                .replace("{max_bytes}", str(lim.max_bytes))
                .replace("{max_stream}", str(lim.max_stream)))
        return _text(text)

    def get(self, req: Request, rest: str) -> Response:
        return _json(req.basic())

    def body_echo(self, req: Request, rest: str) -> Response:
        return _json(req.with_body())

    def anything(self, req: Request, rest: str) -> Response:
        return _json(req.with_body(method=True))

    def headers(self, req: Request, rest: str) -> Response:
        return _json({"headers": req.headers()})

    def ip(self, req: Request, rest: str) -> Response:
        return _json({"origin": req.client})

    def user_agent(self, req: Request, rest: str) -> Response:
        return _json({"user-agent": req.head.get("user-agent")})

    def uuid(self, req: Request, rest: str) -> Response:
        return _json({"uuid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4))})

    def echo(self, req: Request, rest: str) -> Response:
        raw = req.head.raw_head + req.body
        return Response(200, TEXT, raw)

    def status(self, req: Request, rest: str) -> Response:
        codes = [_number(c.strip()) for c in rest.split(",")]
        if not codes or any(c is None or not 200 <= c <= 599 for c in codes):
            return _text(f"invalid status code {rest!r} (expected 200-599)\n", 400)
        code = self.rng.choice(codes)
        if code == 418:
            return _text("I'm a teapot\n", 418)
        if code in (301, 302, 303, 305, 307, 308):
            return Response(code, (("Location", "/redirect/1"),))
        if code == 401:
            return Response(code, (("WWW-Authenticate", 'Basic realm="Fake Realm"'),))
        return Response(code)

    def delay(self, req: Request, rest: str) -> Response:
        seconds = _number(rest, float)
        if seconds is None:
            return _text(f"invalid delay {rest!r}\n", 400)
        seconds = min(seconds, self.limits.max_delay)
        data = req.with_body()
        return attrs.evolve(_json(data), delay=seconds)

    def bytes(self, req: Request, rest: str) -> Response:
        n = _number(rest)
        if n is None:
            return _text(f"invalid byte count {rest!r}\n", 400)
        n = min(n, self.limits.max_bytes)
        seed = _number(req.arg("seed") or "")
        data = random.Random(seed).randbytes(n) if seed is not None else os.urandom(n)
        return Response(200, OCTETS, data)

    def stream(self, req: Request, rest: str) -> Response:
        n = _number(rest)
        if n is None:
            return _text(f"invalid line count {rest!r}\n", 400)
        n = min(n, self.limits.max_stream)
        base = req.basic()
        lines = []
        for i in range(n):
            base["id"] = i
            lines.append((json.dumps(base) + "\n").encode())
        return Response(200, JSON, pieces=tuple(lines), chunked=True)

    def drip(self, req: Request, rest: str) -> Response:
        lim = self.limits
        duration = _number(req.arg("duration", "2"), float)
        numbytes = _number(req.arg("numbytes", "10"))
        code = _number(req.arg("code", "200"))
        delay = _number(req.arg("delay", "0"), float)
        if duration is None or delay is None:
            return _text("invalid duration or delay\n", 400)
        if not numbytes:
            return _text("numbytes must be a positive whole number\n", 400)
        if code is None or not 200 <= code <= 599:
            return _text("code must be 200-599\n", 400)
        duration = min(duration, lim.max_drip_duration)
        numbytes = min(numbytes, lim.max_drip_bytes)
        count = min(numbytes, lim.max_drip_pieces)
        size, extra = divmod(numbytes, count)
        pieces = tuple(b"*" * (size + (1 if i < extra else 0)) for i in range(count))
        return Response(code, OCTETS, delay=min(delay, lim.max_delay), pieces=pieces,
                        interval=duration / count)

    def redirect(self, req: Request, rest: str) -> Response:
        n = _number(rest)
        if n is None or n < 1:
            return _text(f"invalid redirect count {rest!r}\n", 400)
        n = min(n, self.limits.max_redirects)
        location = "/get" if n == 1 else f"/redirect/{n - 1}"
        return Response(302, (("Location", location),) + TEXT, f"Redirecting to {location}\n".encode())
