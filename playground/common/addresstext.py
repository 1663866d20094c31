"""The one text for a socket address, in logs and records alike.

``127.0.0.1:6379``, ``[::1]:6379`` (IPv6 in brackets, so the port stays readable),
``unix:/tmp/redis.sock``, and ``unix:(unnamed)`` for a unix socket without a name (a client that
did not bind one: most of them); a name with a character that is not printable (a client may
bind its end to any bytes: ``\\x1b[2J``) has them escaped, as the console escapes traffic.
``format_address`` is the formatter; ``address_text`` reads a Twisted address object
(``IPv4Address``, ``IPv6Address``, ``UNIXAddress``) and formats it.

Pure: imports nothing, so the observer contract (``proxy.observer.Endpoint``, whose ``__str__``
is this text) uses it without pulling in Twisted.
"""

from __future__ import annotations

UNNAMED = "(unnamed)"  # the name shown for a unix socket that has none


def format_address(host: str | bytes | None, port: int | None = None) -> str:
    """``host:port`` (``[host]:port`` for an IPv6 host) when ``port`` is given; without a port,
    a unix socket whose path is ``host``: ``unix:PATH``, ``unix:(unnamed)`` when it has none."""
    if port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(host, bytes):
        host = host.decode("utf-8", "replace")
    if host and not host.isprintable():
        # a name the client chose (any bytes, an abstract one's NUL first) or a path from a
        # non-UTF-8 argv: its controls, C1 and bidi characters, line separators and surrogates
        # as Python escapes, so no log line, console line or JSON string carries them raw
        host = host.encode("unicode_escape").decode("ascii")
    return f"unix:{host or UNNAMED}"


def address_text(addr) -> str:
    """``format_address`` for a Twisted address: one with a ``host`` is an IP address; any other
    is a unix socket named by its ``name`` (None for an unnamed one)."""
    host = getattr(addr, "host", None)
    if host is not None:
        return format_address(host, addr.port)
    return format_address(getattr(addr, "name", None))
