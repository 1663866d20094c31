"""``twistd -n tcpplay demo`` (what ``make run`` starts): the decoding proxy in front of the
project's own RESP server and HTTP responder, in one process, and a note of what to try.

The RESP server and the HTTP responder listen on internal loopback ports chosen by the system;
the proxies listen on 6479 (Redis) and 8081 (HTTP) unless told otherwise, and print the decoded
traffic on the console. Both proxies share one decoder chain, so one web view (``--web``, on at
8478 unless ``--no-web``) shows the connections of both, numbered as the console numbers them.
"""

from __future__ import annotations

import itertools
import shutil

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from playground.common import twistedprivate
from playground.common.addresses import listen_parts, server_string
from playground.common.listening import ListeningService
from playground.common.options import CommandOptions, non_negative_float, parameter
from playground.examples.http import server as httpserver
from playground.examples.resp import server as respserver
from playground.faults.model import ToxicSet
from playground.proxy import decoding
from playground.proxy import service as proxyservice
from playground.proxy import splice as proxy
from playground.web import options as weboptions

INTERNAL = "tcp:0:interface=127.0.0.1"
DEFAULT_WEB = "8478"


def _listening(svc) -> ListeningService | None:
    """The ListeningService in ``svc`` or among its children."""
    if isinstance(svc, ListeningService):
        return svc
    for child in svc if isinstance(svc, service.MultiService) else ():
        found = _listening(child)
        if found is not None:
            return found
    return None


def _where(desc: str) -> tuple[str, str, str]:
    """Where a listen endpoint string can be reached, for the hints: ("unix", path, "") or
    ("tcp", host, port), the host "" when a client's default (127.0.0.1) reaches it."""
    args, kw = twistedprivate.endpoint_args(desc)
    kind = args[0].lower()
    if kind == "unix":
        return "unix", kw.get("address") or (args[1] if len(args) > 1 else ""), ""
    port = kw.get("port") or (args[1] if len(args) > 1 else "")
    host = kw.get("interface") or (args[2] if len(args) > 2 else "")
    return "tcp", "" if host in ("", "127.0.0.1", "0.0.0.0", "::") else host, port


def _as_bound(listening: ListeningService) -> str:
    """Its endpoint string for the hints, with the port it got where it asked for port 0 (the
    system's choice): a command naming port 0 reaches nothing."""
    port = listen_parts(listening.desc)[2]
    addr = listening.address
    if port != 0 or getattr(addr, "port", None) is None:
        return listening.desc
    interface = addr.host.replace(":", "\\:")  # escaped, as in an endpoint string
    return f"tcp:{addr.port}:interface={interface}"


def _same(a: str, b: str) -> bool:
    """Whether two listen endpoint strings are one address (two asking for port 0 are not: each
    gets a port of its own)."""
    return a == b and listen_parts(a)[2] != 0


def hints(redis_listen: str, http_listen: str, url: str | None = None) -> list[str]:
    """What to try, for the start banner, each a command that reaches the proxy where it listens
    (a UNIX socket, an IPv6 or other interface too); ``url`` is the web view's, when it is on."""
    rkind, rhost, rport = _where(redis_listen)
    hkind, hhost, hport = _where(http_listen)
    lines = ["tcpplay demo: the decoding proxy is in front of an embedded Redis-protocol server "
             "and an HTTP responder. Try, in another terminal:"]
    if shutil.which("redis-cli"):
        where = (f"-s {rhost}" if rkind == "unix" else
                 f"-h {rhost} -p {rport}" if rhost else f"-p {rport}")
        lines.append(f"  redis-cli {where} set foo bar")
        lines.append(f"  redis-cli {where} get foo")
    else:
        where = f"-U {rhost}" if rkind == "unix" else f"{rhost or '127.0.0.1'} {rport}"
        lines.append(f"  printf 'SET foo bar\\r\\nGET foo\\r\\n' | nc -N {where}"
                     "      (redis-cli is not installed)")
    host = f"[{hhost}]" if ":" in hhost else hhost
    base = ("http://localhost" if hkind == "unix" else
            f"http://{host}:{hport}" if hhost else f"localhost:{hport}")
    if shutil.which("curl"):
        unix = f"--unix-socket {hhost} " if hkind == "unix" else ""
        lines.append(f"  curl {unix}{base}/get")
    elif hkind == "unix":
        lines.append(f"  printf 'GET /get HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n' | nc -NU {hhost}"
                     "      (curl is not installed)")
    else:
        url_get = base if base.startswith("http") else f"http://127.0.0.1:{hport}"
        lines.append(
            "  python3 -c \"import urllib.request as u; print(u.urlopen("
            f"'{url_get}/get').read().decode())\"      (curl is not installed)"
        )
    if url:
        lines.append(f"  open {url}      (the web view: connections, exchanges, byte streams)")
    lines.append("The decoded traffic appears below. Ctrl-C stops.")
    return lines


class DemoService(service.MultiService):
    log = Logger()

    def __init__(self, options, reactor=None):
        super().__init__()
        self.options = options
        self.reactor = reactor
        resp_opts = respserver.Options()
        resp_opts.parseOptions(["--listen", INTERNAL])
        http_opts = httpserver.Options()
        http_opts.parseOptions(["--listen", INTERNAL, "--no-access-log"])
        self.resp = respserver.make_service(resp_opts, reactor)
        self.http = httpserver.make_service(http_opts, reactor)
        for svc, label in ((self.resp, "resp (internal)"), (self.http, "http (internal)")):
            listening = _listening(svc)
            listening.label = label
            listening.factory.log_connections = False  # the console shows the traffic
        self.resp.setServiceParent(self)
        self.http.setServiceParent(self)
        self.proxies = []
        self.sinks = []
        self.web = None  # the WebService, once started with --web

    def _proxy_options(self, listen: str, target_port: int):
        o = self.options
        argv = ["--listen", listen, "--target", str(target_port), "--color", o["color"],
                "--decode", "auto", "--drain-timeout", str(o["drain-timeout"])]
        if o["json"]:
            argv += ["--json", o["json"]]
        if o["no-redact"]:
            argv.append("--no-redact")
        if o["web"]:
            argv += ["--web", o["web"]]
        if o["web-token"]:
            argv += ["--web-token", o["web-token"]]
        if o["web"]:
            argv += ["--web-connections", str(o["web-connections"]),
                     "--web-memory", str(o["web-memory"])]
        argv += ["--verbose"] * o.get("verbose", 0)
        opts = proxyservice.Options()
        opts.parseOptions(argv)
        return opts

    def privilegedStartService(self):
        super().privilegedStartService()  # the internal servers listen now, on system-chosen ports
        targets = ((self.options["redis"], "--redis", _listening(self.resp).port.getHost().port),
                   (self.options["http"], "--http", _listening(self.http).port.getHost().port))
        # One decoder chain and one set of sinks for both proxies (one numbering of pairs), so
        # the console shows the traffic of both in the order it happened.
        self.sinks, observer = decoding.build(self._proxy_options(*targets[0][::2]), self.reactor)
        for sink in self.sinks:
            sink.startService()  # the web view listens now (a busy port names --web)
        if self.options["web"]:
            from playground.web.service import WebService

            self.web = next(s for s in self.sinks if isinstance(s, WebService))
        ids = itertools.count(1)
        for listen, flag, port in targets:
            opts = self._proxy_options(listen, port)
            factory = proxy.ProxyFactory(opts.target, observer=observer,
                                         connect_timeout=opts["connect-timeout"],
                                         reactor=self.reactor,
                                         toxics=ToxicSet(self.options["fault"]))
            factory.ids = ids
            factory.log_connections = False  # the console shows opens and closes
            if self.web is not None:  # its close/reset buttons reach this proxy's pairs
                self.web.proxies.append(factory)
            listening = ListeningService(f"proxy {flag[2:]}", opts["listen"], factory, flag=flag,
                                         reactor=self.reactor)
            svc = proxyservice.ProxyService(listening, factory, opts["drain-timeout"])
            svc.setServiceParent(self)
            svc.privilegedStartService()
            self.proxies.append(svc)

    def stopService(self):
        """Proxies first (they drain), then the sinks (they flush), then the servers."""
        service.Service.stopService(self)
        d = defer.DeferredList([defer.maybeDeferred(p.stopService) for p in self.proxies])
        d.addCallback(lambda _: defer.DeferredList(
            [defer.maybeDeferred(s.stopService) for s in self.sinks]))
        d.addCallback(lambda _: defer.DeferredList(
            [defer.maybeDeferred(svc.stopService) for svc in (self.http, self.resp)]))
        return d

    def startService(self):
        super().startService()
        url = self.web.url() if self.web is not None else None
        redis_at, http_at = (_as_bound(p.listening) for p in self.proxies)
        for line in hints(redis_at, http_at, url):
            self.log.info("{line}", line=line)


# the proxy's --web-token, --web-connections and --web-memory, for the demo's one view
_WEB_LIMITS = [row for row in weboptions.OPT_PARAMETERS if row[0] != "web"]


class Options(CommandOptions):
    synopsis = "[--redis ADDR] [--http ADDR] [--web ADDR | --no-web] [--web-token TOKEN]"
    longdesc = (
        "The demo that 'make run' starts: the decoding proxy in front of the embedded RESP server "
        "(on --redis) and in front of the HTTP responder (on --http), decoded traffic on the console "
        "and in the web view (on --web)."
    )
    optParameters = [
        ["redis", None, "6479",
         "Where the proxy in front of the RESP server listens (PORT on 127.0.0.1, HOST:PORT or an "
         "endpoint string)."],
        ["http", None, "8081", "Where the proxy in front of the HTTP responder listens."],
        ["web", None, None,
         "Where the web view of both proxies' traffic is served (PORT on 127.0.0.1, HOST:PORT or "
         "an endpoint string; not on loopback, a token is printed). [default: 8478; off with "
         "--no-web]"],
        *_WEB_LIMITS,
        ["color", None, "auto", "Console colours: auto (only on a terminal), always, never."],
        ["json", None, None, "Also write the decoded events as JSON lines to FILE ('-' = stdout)."],
        parameter("drain-timeout", 10.0,
         "On SIGTERM/SIGINT, seconds open connections may finish before they are aborted (a "
         "second Ctrl-C aborts them at once).",
         non_negative_float),
    ]
    optFlags = [["no-redact", None, "Show passwords and cookies in clear."],
                ["no-web", None, "No web view (the demo serves one on --web, 8478, unless told not to)."]]
    opt_verbose = decoding.opt_verbose  # as the proxy's: -v headers, -vv bodies too
    opt_v = decoding.opt_verbose

    def __init__(self):
        super().__init__()
        self["fault"] = []

    def opt_fault(self, spec):
        """Inject a fault on both proxies, repeatable, as the proxy's --fault (e.g.
        latency:downstream:200ms)."""
        self["fault"].append(proxyservice.check_fault(spec, [t.name for t in self["fault"]]))

    def postOptions(self):
        self["redis"] = server_string(self["redis"], "--redis")
        self["http"] = server_string(self["http"], "--http")
        if _same(self["redis"], self["http"]):
            raise usage.UsageError("--redis and --http must differ")
        if self["no-web"] and self["web"] is not None:
            raise usage.UsageError("--web and --no-web: give one of them")
        web = None if self["no-web"] else (DEFAULT_WEB if self["web"] is None else self["web"])
        probe = proxyservice.Options()  # validate --color/--json/--web* the way the proxy does
        argv = ["--target", "1", "--color", self["color"]] + (
            ["--json", self["json"]] if self["json"] else []) + (["--web", web] if web else [])
        if self["web-token"] is not None:
            argv += ["--web-token", self["web-token"]]
        try:
            probe.parseOptions(argv)
        except usage.UsageError as e:
            raise usage.UsageError(str(e))
        self["json"] = probe["json"]  # /dev/stdout is '-', as for the proxy
        # an endpoint string (None when off, '' included), and the token a non-loopback one needs
        self["web"], self["web-token"] = probe["web"] or None, probe["web-token"]
        if self["web"] and (_same(self["web"], self["redis"]) or _same(self["web"], self["http"])):
            raise usage.UsageError("--web must differ from --redis and --http")


def make_service(options, reactor=None) -> service.IService:
    return DemoService(options, reactor)
