"""Turn what users type for ``--listen`` / ``--target`` into Twisted endpoint strings.

Accepted forms, for both sides:

* a bare port, ``6479`` -> ``tcp:6479:interface=127.0.0.1`` (listen) or
  ``tcp:host=127.0.0.1:port=6479`` (connect): loopback unless told otherwise;
* ``host:port`` (``[::1]:6479`` for IPv6);
* any Twisted endpoint string (``tcp:``, ``tcp6:``, ``unix:``, ``ssl:``, ``tls:`` ...); a
  ``tls:`` client endpoint holds the server's certificate to the host (``tlsnames``).

A target is read once, into a ``Target`` (the endpoint string and what it names), so the proxy
knows a plain TCP ``host:port`` or a ``tls:`` host and port without parsing the string again.

Listening TCP/SSL/TLS/UNIX endpoints get ``backlog=1024`` unless one is given, so a burst of
connects (``redis-benchmark -c 50`` and more) is not stalled by Twisted's default of 50.
A bad value raises ``usage.UsageError`` naming the flag and showing an example.

An ``ssl:`` or ``tls:`` listener answers a client's ALPN offer (``server_endpoint``) with the
protocol its factory negotiates, or with none (``_select_alpn``): Twisted's own answer to a
factory that negotiates none is an empty protocol, which OpenSSL sends as an ``internal error``
alert, so curl, browsers and Go clients failed every handshake. A ``tls:`` listener (a directory
of PEMs, a context per certificate name) has it on each name's context.

Whether a target is a listener's own address (``target_is_listen``, ``reaches``; a proxy whose
target is itself connects to itself, pair after pair) is read from the addresses alone, as
addresses (``ipaddress``: loopback, unspecified, IPv4-mapped), never by resolving a name: only
``localhost`` is taken for this machine. A name or a LAN address that leads back to the listener
is for the proxy to notice when it connects (``playground.proxy.splice``), by the addresses of the
connected socket (``leads_back``).
"""

from __future__ import annotations

import ipaddress
import os
import re
import warnings

import attrs
from OpenSSL import SSL
from twisted.internet import endpoints
from twisted.internet.interfaces import IProtocolNegotiationFactory
from twisted.python import usage

from playground.common import tlsnames, twistedprivate
from playground.common.digits import decimal, digits_only

DEFAULT_BACKLOG = 1024

_ENDPOINT_TYPES = frozenset(
    {"tcp", "tcp6", "unix", "ssl", "tls", "systemd", "onion", "stdio", "txtorcon", "le", "lets"}
)
_HOST_PORT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.%a-zA-Z]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)$")

LISTEN_EXAMPLE = "e.g. 6479, 0.0.0.0:6479, tcp:6479:interface=::1, unix:/tmp/s.sock"
TARGET_EXAMPLE = "e.g. 6379, redis.local:6379, tcp:host=127.0.0.1:port=6379, tls:host=db:port=6380"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


def _port(flag: str, text: str, example: str, lowest: int = 0) -> int:
    """A port number; 0 (any free port) is for listening only (``lowest=1`` for targets)."""
    if not digits_only(text):  # a \d of the patterns may be '²' or '٣'
        raise usage.UsageError(f"{flag}: port {text[:20]!r} is not a number ({example})")
    port = decimal(text, 20)  # 00080 is 80; more digits than that is out of range
    if port is None or not lowest <= port <= 65535:
        raise usage.UsageError(f"{flag}: port {text[:20]} is out of range {lowest}-65535 ({example})")
    return port


def _kind(value: str) -> str:
    return value.split(":", 1)[0].lower()


# An IPv6 ``interface=`` typed as it is written (``tcp:6479:interface=::1``): in Twisted's
# endpoint strings its colons split arguments (``_parseTCP() got multiple values for argument
# 'interface'``) unless escaped (``interface=\:\:1``); the address runs to the next ``:key=``.
_V6_INTERFACE = re.compile(
    r"(?<=:interface=)((?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f.]*(?:%[\w.-]+)?)(?=:[A-Za-z]+=|$)")


def _escape_v6_interface(desc: str) -> str:
    if _kind(desc) not in ("tcp", "tcp6", "ssl"):
        return desc
    return _V6_INTERFACE.sub(lambda m: m.group(1).replace(":", "\\:"), desc)


def server_string(value: str, flag: str = "--listen") -> str:
    """Normalise a ``--listen`` value to a server endpoint string, validating its syntax."""
    value = (value or "").strip()
    if not value:
        raise usage.UsageError(f"{flag}: empty address ({LISTEN_EXAMPLE})")
    if value.isdigit():
        desc = f"tcp:{_port(flag, value, LISTEN_EXAMPLE)}:interface=127.0.0.1"
    elif (m := _HOST_PORT.match(value)) and _kind(value) not in _ENDPOINT_TYPES:
        host = m.group("v6") or m.group("host")
        desc = f"tcp:{_port(flag, m.group('port'), LISTEN_EXAMPLE)}:interface={_escape(host)}"
    elif _kind(value) in _ENDPOINT_TYPES:
        desc = _escape_v6_interface(value)
    else:
        raise usage.UsageError(f"{flag}: cannot read {value!r} as an address ({LISTEN_EXAMPLE})")
    if _kind(desc) in ("tcp", "tcp6", "ssl", "tls", "unix") and "backlog=" not in desc:
        desc += f":backlog={DEFAULT_BACKLOG}"
    try:
        twistedprivate.check_server_endpoint(desc)  # nothing is opened
    except Exception as e:
        raise usage.UsageError(f"{flag}: bad endpoint {value!r}: {e} ({LISTEN_EXAMPLE})")
    return desc


@attrs.frozen
class Target:
    """A ``--target`` read once: the client endpoint string and what it names.

    ``kind`` is the endpoint type in lower case (``tcp``, ``tls``, ``unix`` ...); ``host`` and
    ``port`` are what a network kind names (None when the string leaves them out), ``path`` what
    ``unix`` names. ``plain_tcp``: a ``tcp:`` target with a host and a port and no other
    parameter, which the proxy connects with ``connectTCP`` itself (no endpoint in between).
    """

    kind: str
    host: str | None
    port: int | None
    desc: str = attrs.field(kw_only=True)  # the client endpoint string
    path: str | None = attrs.field(default=None, kw_only=True)
    plain_tcp: bool = attrs.field(default=False, kw_only=True)


def _tcp_target(host: str, port: int) -> Target:
    return Target("tcp", host, port, desc=f"tcp:host={_escape(host)}:port={port}", plain_tcp=True)


def client_target(value: str, flag: str = "--target") -> Target:
    """Read a ``--target`` value into a ``Target``, validating its syntax and, for an endpoint
    string, that Twisted builds a client endpoint from it (``_check_client_endpoint``)."""
    value = (value or "").strip()
    if not value:
        raise usage.UsageError(f"{flag}: empty address ({TARGET_EXAMPLE})")
    if value.isdigit():
        return _tcp_target("127.0.0.1", _port(flag, value, TARGET_EXAMPLE, 1))
    if (m := _HOST_PORT.match(value)) and _kind(value) not in _ENDPOINT_TYPES:
        host = m.group("v6") or m.group("host")
        return _tcp_target(host, _port(flag, m.group("port"), TARGET_EXAMPLE, 1))
    if _kind(value) not in _ENDPOINT_TYPES:
        raise usage.UsageError(f"{flag}: cannot read {value!r} as an address ({TARGET_EXAMPLE})")
    target = _endpoint_target(value, flag)
    _check_client_endpoint(value, flag)
    return target


def _endpoint_target(value: str, flag: str) -> Target:
    """A ``--target`` endpoint string read into a ``Target`` (its syntax checked)."""
    args, kw = twistedprivate.endpoint_args(value)
    kind = args[0].lower() if args else ""
    plain_tcp = [a.lower() for a in args] == ["tcp"] and set(kw) == {"host", "port"}
    args = [a for a in args if a != ""]
    if kind == "unix":
        path = kw.get("path") or (args[1] if len(args) > 1 else None)
        if not path:
            raise usage.UsageError(f"{flag}: {value!r} names no path ({TARGET_EXAMPLE})")
        return Target(kind, None, None, desc=value, path=path)
    if kind not in ("tcp", "tcp6", "tls", "ssl"):
        return Target(kind, None, None, desc=value)  # a plugin's: its parser reads the rest
    host = kw.get("host") or (args[1] if len(args) > 1 else None)
    port = kw.get("port") or (args[2] if len(args) > 2 else None)
    if not port:
        raise usage.UsageError(f"{flag}: {value!r} names no port ({TARGET_EXAMPLE})")
    if not digits_only(port):
        raise usage.UsageError(f"{flag}: {value!r}: port {port!r} is not a number "
                               f"({TARGET_EXAMPLE})")
    return Target(kind, host, _port(flag, port, TARGET_EXAMPLE, 1), desc=value, plain_tcp=plain_tcp)


def _check_client_endpoint(value: str, flag: str) -> None:
    """Raise, naming ``flag``, what building the client endpoint would raise for ``value``
    (``clientFromString``: a parameter its parser refuses, ``timeout=x``; a file an ``ssl:`` or
    ``tls:`` one names and cannot read; a type with no client endpoint, ``tcp6:``, ``stdio:``),
    now rather than when the service is built. No reactor: nothing connects."""
    if _kind(value) == "tcp6":  # Twisted's tcp6: listens only; tcp: connects to IPv6 as well
        raise usage.UsageError(f"{flag}: {value!r}: tcp6: is for listening; connect to IPv6 with "
                               f"tcp:host=\\:\\:1:port=P or [::1]:P ({TARGET_EXAMPLE})")
    with warnings.catch_warnings():  # HostnameEndpoint (tls:) warns of a reactor without a
        warnings.simplefilter("ignore", DeprecationWarning)  # resolver: None here
        try:
            endpoints.clientFromString(None, value)
        except Exception as e:
            raise usage.UsageError(f"{flag}: {value!r}: {e}")


def client_string(value: str, flag: str = "--target") -> str:
    """Normalise a ``--target`` value to a client endpoint string, validating its syntax."""
    return client_target(value, flag).desc


def server_endpoint(reactor, desc: str, flag: str = "--listen"):
    """Build the server endpoint; files named by ``ssl:`` are read here, and its TLS context
    (a ``tls:`` one's, each of its names') answers ALPN with ``_select_alpn``."""
    try:
        endpoint = endpoints.serverFromString(reactor, desc)
    except Exception as e:
        raise usage.UsageError(f"{flag}: {desc!r}: {e}")
    twistedprivate.prepare_tls_contexts(endpoint, _answer_alpn)
    return endpoint


def _answer_alpn(context) -> None:
    context.set_alpn_select_callback(_select_alpn)


def _select_alpn(connection, offered):
    """The protocol of the client's ALPN ``offered`` that the listening factory negotiates
    (``IProtocolNegotiationFactory``, in its order, as Twisted's choice), or none agreed
    (``NO_OVERLAPPING_PROTOCOLS``: the handshake goes on without one, RFC 7301)."""
    tls = connection.get_app_data()  # the TLS protocol; its factory wraps the listener's
    wrapped = getattr(getattr(tls, "factory", None), "wrappedFactory", None)
    negotiating = IProtocolNegotiationFactory(wrapped, None)
    for name in negotiating.acceptableProtocols() if negotiating is not None else ():
        if name in offered:
            return name
    return SSL.NO_OVERLAPPING_PROTOCOLS


def client_endpoint(reactor, desc: str, flag: str = "--target"):
    """Build the client endpoint; a ``tls:`` one fails a connection whose server's certificate
    does not name the host (``tlsnames.NameCheckedEndpoint``: Twisted alone let one without a
    subjectAltName through)."""
    try:
        endpoint = endpoints.clientFromString(reactor, desc)
    except Exception as e:
        raise usage.UsageError(f"{flag}: {desc!r}: {e}")
    if _kind(desc) == "tls":
        endpoint = tlsnames.NameCheckedEndpoint(endpoint, _endpoint_target(desc, flag).host)
    return endpoint


# -- a target that is the listener itself --------------------------------------------------------

NETWORK_KINDS = frozenset({"tcp", "tcp6", "ssl", "tls"})


def _ip(host: str):
    """``host`` read as an address (an IPv4-mapped IPv6 one as its IPv4), or None for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    mapped = getattr(ip, "ipv4_mapped", None)
    return mapped if mapped is not None else ip


_LOOPBACK_OF = {4: ipaddress.ip_address("127.0.0.1"), 6: ipaddress.ip_address("::1")}


def _accepts(bound, ip) -> bool:
    """Whether a listener bound on ``bound`` takes a connection to ``ip``, an address of this
    machine's loopback or the listener's own: the same address, or a listener on every
    interface of the family: ``0.0.0.0`` takes IPv4 only, ``::`` both (Linux's default dual
    stack; an IPv4 peer is read as IPv4, ``_ip``). An IPv4 listener on every interface and an
    IPv6 one on ``::1`` are two sockets of the same port."""
    if ip == bound:
        return True
    return bound.is_unspecified and (bound.version == 6 or ip.version == 4)


def reaches(listen_host: str | None, listen_port: int | None, target_host: str | None,
            target_port: int | None) -> bool:
    """Whether connecting to ``target_host:target_port`` reaches a listener of this machine
    bound on ``listen_host:listen_port`` (``""`` for every interface), as far as the addresses
    say: the same port, and the same host (``localhost`` as ``127.0.0.1``), or a listener on
    every interface of the target's family (``_accepts``) and a loopback target. A target of
    ``localhost`` is ``127.0.0.1`` (Twisted's TCP connect resolves a name to IPv4) and one of
    every interface is its family's loopback (Linux connects ``0.0.0.0`` to ``127.0.0.1``,
    ``::`` to ``::1``). Port 0 (a port the system picks) is never a target's."""
    if not listen_port or listen_port != target_port or target_host is None:
        return False
    listen_host = listen_host or ""
    if listen_host.lower() == "localhost":
        listen_host = "127.0.0.1"
    bound = _bound(listen_host)
    if bound is None:  # an interface given by name: the same name only
        return listen_host.lower() == target_host.lower()
    if target_host.lower() in ("", "localhost"):
        target = _LOOPBACK_OF[4]
    else:
        target = _ip(target_host)
        if target is None:
            return False  # a name: only a connect can tell where it leads
    if target.is_unspecified:
        target = _LOOPBACK_OF[target.version]
    return target == bound or (target.is_loopback and _accepts(bound, target))


def listen_parts(desc: str) -> tuple[str, str | None, int | None, str | None]:
    """What a server endpoint string (``server_string``'s) binds: ``(kind, host, port, path)``;
    the host ``""`` for every interface (``::`` for ``tcp6``), the path of a ``unix:`` one,
    None where the string says nothing readable (another kind: ``systemd:``)."""
    args, kw = twistedprivate.endpoint_args(desc)
    kind = args[0].lower() if args else ""
    if kind == "unix":
        return kind, None, None, kw.get("address") or (args[1] if len(args) > 1 else None)
    if kind not in ("tcp", "tcp6", "ssl"):
        return kind, None, None, None
    port = kw.get("port") or (args[1] if len(args) > 1 else "")
    host = kw.get("interface")
    if host is None:
        host = args[2] if kind != "ssl" and len(args) > 2 else ("::" if kind == "tcp6" else "")
    return kind, host, decimal(port, 20), None


_EVERY_V4 = ipaddress.ip_address("0.0.0.0")


def _bound(listen_host: str):
    """The address a listener on ``listen_host`` is bound to ("" is every IPv4 interface);
    None for an interface given by name."""
    return _ip(listen_host) if listen_host else _EVERY_V4


def same_socket(first: str, second: str) -> bool:
    """Whether two server endpoint strings (``server_string``'s) would bind overlapping
    addresses, so that the second cannot listen once the first does: the same ``unix:`` path, or
    TCP on the same port (not 0) at the same address, or at an address that a listener on every
    interface of a family takes as well (``_accepts``: ``0.0.0.0`` and any IPv4 one, ``::`` and
    any). Other kinds (``systemd:``) overlap when written the same."""
    kind_a, host_a, port_a, path_a = listen_parts(first)
    kind_b, host_b, port_b, path_b = listen_parts(second)
    if "unix" in (kind_a, kind_b):
        return (kind_a == kind_b and path_a is not None and path_b is not None
                and os.path.abspath(path_a) == os.path.abspath(path_b))
    if not (kind_a in NETWORK_KINDS and kind_b in NETWORK_KINDS):
        return first == second
    if not port_a or port_a != port_b:
        return False
    bound_a, bound_b = (_bound("127.0.0.1" if h.lower() == "localhost" else h)
                        for h in (host_a, host_b))
    if bound_a is None or bound_b is None:  # an interface given by name: the same name only
        return host_a.lower() == host_b.lower()
    return _accepts(bound_a, bound_b) or _accepts(bound_b, bound_a)


def target_is_listen(listen_desc: str, target: Target) -> bool:
    """Whether ``target`` is the listener ``listen_desc`` itself (see ``reaches``; a ``unix:``
    target of the listener's own path too): a proxy with it would connect to itself."""
    kind, host, port, path = listen_parts(listen_desc)
    if kind == "unix":
        return (target.kind == "unix" and path is not None and target.path is not None
                and os.path.abspath(path) == os.path.abspath(target.path))
    return target.kind in NETWORK_KINDS and reaches(host, port, target.host, target.port)


def leads_back(listen_host: str | None, listen_port: int | None, peer_host: str,
               peer_port: int, local_host: str) -> bool:
    """Whether a connected socket (its peer ``peer_host:peer_port``, its own address
    ``local_host``) reached a listener of this machine bound on ``listen_host:listen_port``
    (``""``: every interface): the same port, and the listener's own address, or, for a listener
    on every interface of the peer's family (``_accepts``), an address of this machine: a
    loopback one, or the socket's own (Linux connects to an address of its own from that
    address)."""
    if not listen_port or peer_port != listen_port:
        return False
    peer = _ip(peer_host)
    if peer is None:
        return False
    bound = _bound(listen_host)
    if bound is None or not bound.is_unspecified:
        return peer == bound
    return _accepts(bound, peer) and (peer.is_loopback or peer.is_unspecified
                                      or peer == _ip(local_host))
