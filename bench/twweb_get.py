"""Baseline for bench/http_bench.py: a ``twisted.web`` Site whose ``/get`` builds the same JSON as
tcpplay's (args, headers, origin, url; compact, built per request). Run: ``python twweb_get.py PORT [--quiet]``;
prints ``listening on HOST:PORT`` once it is ready.
"""

from __future__ import annotations

import json
import sys
from urllib.parse import parse_qsl

from twisted.internet import reactor
from twisted.logger import globalLogBeginner, textFileLogObserver
from twisted.web import resource, server

_dumps = json.JSONEncoder(ensure_ascii=False).encode


def _title(name: str) -> str:
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


class Get(resource.Resource):
    isLeaf = True

    def render_GET(self, request):
        args: dict = {}
        query = request.uri.partition(b"?")[2].decode("latin-1")
        for k, v in parse_qsl(query, keep_blank_values=True):
            args[k] = [args[k], v] if k in args else v
        headers: dict = {}
        for name, values in request.requestHeaders.getAllRawHeaders():
            headers[_title(name.decode("latin-1"))] = ",".join(v.decode("latin-1") for v in values)
        host = request.getHeader(b"host") or b"localhost"
        body = {
            "args": args,
            "headers": headers,
            "origin": request.getClientAddress().host,
            "url": "http://" + host.decode("latin-1") + request.uri.decode("latin-1"),
        }
        request.setHeader(b"content-type", b"application/json")
        return (_dumps(body) + "\n").encode()


def main() -> None:
    port = int(sys.argv[1])
    if "--quiet" not in sys.argv:
        # like twistd: log events go to stdout, including Site's access line per request
        globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stdout)])
    root = resource.Resource()
    root.putChild(b"get", Get())
    site = server.Site(root)
    listening = reactor.listenTCP(port, site, backlog=1024, interface="127.0.0.1")
    address = listening.getHost()
    print(f"listening on {address.host}:{address.port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
