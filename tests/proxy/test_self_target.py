"""A proxy whose target is its own listen address: refused at option time where the addresses
say so (``proxy``, a ``serve`` config), closed at its first connect where only the connect can
tell (a name or an address that leads back to the listener)."""

from __future__ import annotations

import socket
import subprocess
import textwrap

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol
from twisted.logger import formatEvent
from twisted.python import usage

from playground.common.listening import ListeningService
from playground.daemon import config
from playground.proxy import splice
from playground.proxy.service import Options, ProxyService
from playground.proxy.splice import ProxyFactory
from tests.support.net import PING, free_port, wait_closed
from tests.support.paths import ROOT, TWISTD
from tests.support.waiting import until


def parse(*argv) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


@pytest.mark.pure
@pytest.mark.parametrize("argv", [
    ["--listen", "16555", "--target", "16555"],
    ["--target", "6479"],  # the default --listen
    ["--listen", "0.0.0.0:16555", "--target", "localhost:16555"],
    ["--listen", "tcp:16555:interface=::1", "--target", "[::1]:16555"],
    ["--listen", "unix:/tmp/tcpplay-self.sock", "--target", "unix:/tmp/tcpplay-self.sock"],
])
def test_a_target_that_is_the_listen_address_is_a_usage_error(argv):
    with pytest.raises(usage.UsageError, match=r"^--target: .* is the proxy's own --listen "
                                               r"address \(.*\): every connection would"):
        parse(*argv)


@pytest.mark.pure
@pytest.mark.parametrize("argv", [
    ["--listen", "16555", "--target", "16556"],
    ["--listen", "0", "--target", "16555"],
    ["--listen", "127.0.0.2:16555", "--target", "16555"],
    ["--listen", "16555", "--target", "redis.example:16555"],
])
def test_a_target_elsewhere_is_taken(argv):
    assert parse(*argv).target.port in (16555, 16556)


@pytest.mark.pure
def test_a_config_proxy_whose_target_is_its_listen_names_file_and_line():
    text = textwrap.dedent("""\
        [echo.e]
        listen = 7000

        [proxy.loop]
        listen = "0.0.0.0:16555"
        target = "127.0.0.1:16555"
        """)
    with pytest.raises(config.ConfigError) as e:
        config.loads(text, "x.toml")
    assert str(e.value).startswith(
        "x.toml:6: [proxy.loop] target: 127.0.0.1:16555 is the proxy's own listen address "
        "(tcp:16555:interface=0.0.0.0:backlog=1024): every connection would connect to itself")


@pytest.mark.twistd
def test_twistd_refuses_a_target_that_is_the_listen_address_before_listening():
    port = free_port()
    result = subprocess.run(
        [TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen", str(port),
         "--target", str(port)],
        capture_output=True, text=True, timeout=30, cwd=str(ROOT))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"twistd tcpplay proxy: --target: {port} is the proxy's own "
                            f"--listen address (tcp:{port}:interface=127.0.0.1"), result.stderr


# --- at run time: a target that leads back to the listener, unseen by the options -------------


class Client(protocol.Protocol):
    def __init__(self):
        self.closed = defer.Deferred()

    def connectionLost(self, reason):
        self.closed.callback(None)


def said(events) -> list[str]:
    return [t for t in map(formatEvent, events) if "is this proxy's own listen address" in t]


@pytest.mark.parametrize("host, zero_copy", [
    ("127.0.0.1", True),  # an IP literal: connected in the splice's epoll (zerocopy.Connector)
    ("127.0.0.1", False),  # connectTCP
    ("localhost", True),  # a name: connectTCP resolves it
])
@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_a_pair_whose_connect_reaches_its_own_listener_is_closed_at_once(host, zero_copy,
                                                                         logged, monkeypatch):
    """Each client costs two pairs (its own and the one its connect made), both closed at once,
    not a chain of pairs up to --max-connections; one log line for them all."""
    from twisted.internet import reactor

    monkeypatch.setattr(splice, "_said", set(), raising=False)  # said once per process
    port = free_port()
    factory = ProxyFactory(f"tcp:host={host}:port={port}", zero_copy=zero_copy,
                           max_connections=50)
    listening = ListeningService("proxy", f"tcp:{port}:interface=127.0.0.1", factory,
                                 reactor=reactor)
    proxy = ProxyService(listening, factory, drain_timeout=1)
    proxy.privilegedStartService()
    proxy.startService()
    try:
        for _ in range(3):
            client = Client()
            yield endpoints.connectProtocol(
                endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
            client.transport.write(b"PING\r\n")
            yield until(lambda c=client: c.closed.called, "the client's close", timeout=5)
        yield until(lambda: not factory.pairs, "every pair's close", timeout=5)
        closes = [t for t in map(formatEvent, logged) if " close " in t and "proxy #" in t]
        assert len(closes) == 6, closes
        assert all("first=proxy how=self-loop" in t for t in closes), closes
        assert next(factory.ids) == 7  # no pair besides them
        lines = said(logged)
        assert len(lines) == 1, lines
        assert lines[0] == (f"proxy: the target tcp:host={host}:port={port} is this proxy's own "
                            f"listen address 127.0.0.1:{port} (a pair's connect reached "
                            f"127.0.0.1:{port}): closing; fix --target")
    finally:
        yield proxy.stopService()


def this_hosts_name() -> str | None:
    """This machine's host name, if it resolves to an address of this machine (one a socket
    can bind)."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
        with socket.socket() as s:
            s.bind((address, 0))
    except OSError:
        return None
    return name


@pytest.mark.twistd
def test_twistd_closes_a_target_that_leads_back_by_name_and_says_so_once(twistd):
    """``--listen 0.0.0.0:P --target $(hostname):P``: a name, so the options cannot tell; the
    first connect can."""
    name = this_hosts_name()
    if name is None:
        pytest.skip("this machine's host name does not resolve to an address of its own")
    port = free_port()
    proc = twistd(["proxy", "--listen", f"0.0.0.0:{port}", "--target", f"{name}:{port}",
                   "--decode", "none", "--max-connections", "50"])
    proc.wait_for("proxy listening on")
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(PING)
            wait_closed(s, timeout=5)
    proc.wait_for("first=proxy how=self-loop")
    assert proc.terminate() == 0
    out = proc.output()
    assert out.count("is this proxy's own listen address") == 1, out
    assert f"the target tcp:host={name}:port={port} is this proxy's own listen address " \
           f"0.0.0.0:{port}" in out
    assert out.count(" open ") <= 6, out  # two pairs per client, no chain
