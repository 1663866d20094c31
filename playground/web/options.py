"""The web view's options, joined to the ``proxy`` subcommand's by ``playground.proxy.decoding``.

``OPT_PARAMETERS`` are ``--web ADDR`` (off by default; a bare port is 127.0.0.1),
``--web-token``, ``--web-connections`` and ``--web-memory``; ``check_options(opts)`` validates
them in place (a ``UsageError`` names the flag). An address that is not loopback needs a token:
``--web-token``, else a random one, printed in the start-up line (``check_token``);
``authorised(request, token)`` checks a request's token, ``loopback_host(host)`` whether a
tokenless request's Host names loopback (DNS rebinding). The toxiproxy API uses them all for
``--api-token``. Light on purpose: the proxy imports it whether or not the view is on
(``playground.web.service`` is imported only then).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from twisted.internet import endpoints
from twisted.internet.address import UNIXAddress
from twisted.python import usage

from playground.common.addresses import server_string
from playground.common.options import MAX_BYTES, parameter, positive_int, whole_number

MAX_MEMORY = MAX_BYTES // 2**20  # --web-memory's MiB


def _memory(flag: str, value) -> int:
    return whole_number(flag, value, maximum=MAX_MEMORY, unit=f" MiB ({MAX_MEMORY >> 10} GiB)")


OPT_PARAMETERS = [
    ["web", None, None,
     "Serve a live web view of the traffic at ADDR (PORT = 127.0.0.1:PORT, HOST:PORT, or an "
     "endpoint string): connections, their exchanges and their byte streams, redacted like the "
     "pcap. Off by default. On any address but loopback, every request needs the token "
     "(--web-token)."],
    ["web-token", None, None,
     "The token the web view asks for (?token= or the X-Tcpplay-Token header). Default: none "
     "on loopback; elsewhere a random one, printed at start."],
    parameter("web-connections", 1000,
     "The web view keeps the last N connections (older ones are counted as evicted).",
     positive_int),
    parameter("web-memory", 64,
     "The web view keeps at most this many MiB of exchanges and stream bytes in total (the "
     f"oldest go first, marked as evicted); at most {MAX_MEMORY} ({MAX_MEMORY >> 10} GiB).",
     _memory),
]


def authorised(request, token: str | None) -> bool:
    """Whether a twisted.web request carries ``token`` (always, when ``token`` is None): the
    X-Tcpplay-Token header, else ``Authorization: Bearer``, else ``?token=``; compared in
    constant time. The web view and the toxiproxy API (``playground.faults.api``) both ask it."""
    if token is None:
        return True
    given = (request.args.get(b"token") or [b""])[-1]
    header = request.getHeader(b"x-tcpplay-token")
    auth = request.getHeader(b"authorization")
    if header:
        given = header.encode() if isinstance(header, str) else header
    elif auth and auth.lower().startswith(b"bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given, token.encode())


def host_refused(request, token: str | None) -> bool:
    """Whether a request without a token (``token`` None) names a Host that is not loopback
    (``loopback_host``) on a TCP listener: refused, as DNS rebinding may send it. A UNIX
    socket's requests pass (no browser dials one). The web view and the toxiproxy API
    (``playground.faults.api``) both ask it."""
    return token is None and not loopback_host(request.getHeader(b"host")) and (
        not isinstance(request.getHost(), UNIXAddress))


def loopback_host(host: bytes | None) -> bool:
    """Whether a Host header names loopback (``127.x.x.x``, ``[::1]``, ``localhost`` or a name
    under ``.localhost``, with a port or not), or is absent (HTTP/1.0): what a tokenless view
    answers. A browser sends the name it resolved: a page whose name was re-pointed at
    127.0.0.1 (DNS rebinding) would otherwise read the capture, same-origin."""
    if host is None:
        return True
    name = host.strip().lower()
    if name.startswith(b"["):
        return name.partition(b"]")[0] == b"[::1"
    name = name.partition(b":")[0].rstrip(b".")
    if name == b"localhost" or name.endswith(b".localhost"):
        return True
    parts = name.split(b".")
    return len(parts) == 4 and parts[0] == b"127" and all(p.isdigit() for p in parts)


def is_loopback(desc: str) -> bool:
    """Whether a server endpoint string listens only on loopback (a unix socket counts)."""
    args, kw = endpoints._parse(desc)
    kind = args[0].lower() if args else ""
    if kind == "unix":
        return True
    if kind not in ("tcp", "tcp6", "ssl"):
        return False
    host = kw.get("interface", "")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "" is every interface


def check_token(opts, address: str, flag: str) -> None:
    """Check ``--address`` and its token ``--flag`` in place (a UsageError names the flag):
    the token needs the address; the address is read into a server endpoint string
    (``server_string``); the token is at least 8 printable characters, no spaces, or made at
    random when the address is not loopback."""
    if not opts.get(address):
        if opts.get(flag):
            raise usage.UsageError(f"--{flag} needs --{address}")
        return
    opts[address] = server_string(str(opts[address]), f"--{address}")
    token = opts.get(flag)
    if token is not None and (len(str(token)) < 8 or not str(token).isprintable()
                              or " " in str(token)):
        raise usage.UsageError(f"--{flag}: at least 8 printable characters, no spaces")
    if token is None and not is_loopback(opts[address]):
        opts[flag] = secrets.token_urlsafe(18)


def check_options(opts) -> None:
    """Validate ``--web`` and friends in place; UsageError names the flag."""
    for flag, check in (("web-connections", positive_int), ("web-memory", _memory)):
        if flag in opts and isinstance(opts[flag], str):
            opts[flag] = check(f"--{flag}", opts[flag])
    check_token(opts, "web", "web-token")
