"""--listen/--target parsing: every accepted form, the Target a --target is read into, and errors
that name the flag."""

import pytest
from twisted.python import usage

from playground.common.addresses import (
    Target,
    client_string,
    client_target,
    leads_back,
    server_string,
    target_is_listen,
)

pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    "value, expected",
    [
        ("6479", "tcp:6479:interface=127.0.0.1:backlog=1024"),
        ("0.0.0.0:80", "tcp:80:interface=0.0.0.0:backlog=1024"),
        ("[::1]:80", "tcp:80:interface=\\:\\:1:backlog=1024"),
        ("localhost:99", "tcp:99:interface=localhost:backlog=1024"),
        ("tcp:80", "tcp:80:backlog=1024"),
        ("tcp:80:backlog=5", "tcp:80:backlog=5"),
        ("unix:/tmp/x.sock", "unix:/tmp/x.sock:backlog=1024"),
        # an IPv6 interface as people write it (the README's and the errors' own example was
        # refused: "_parseTCP() got multiple values for argument 'interface'"), and escaped
        ("tcp:6479:interface=::1", "tcp:6479:interface=\\:\\:1:backlog=1024"),
        ("tcp:6479:interface=2001:db8::7:backlog=5", "tcp:6479:interface=2001\\:db8\\:\\:7:backlog=5"),
        ("tcp6:6479:interface=fe80::1%lo", "tcp6:6479:interface=fe80\\:\\:1%lo:backlog=1024"),
        ("tcp:6479:interface=\\:\\:1", "tcp:6479:interface=\\:\\:1:backlog=1024"),
    ],
)
def test_server_forms(value, expected):
    assert server_string(value) == expected


def test_every_example_the_errors_give_is_accepted():
    from playground.common.addresses import LISTEN_EXAMPLE

    for example in LISTEN_EXAMPLE.removeprefix("e.g. ").split(", "):
        server_string(example)


@pytest.mark.parametrize(
    "value, expected",
    [
        ("6379", "tcp:host=127.0.0.1:port=6379"),
        ("db.local:6379", "tcp:host=db.local:port=6379"),
        ("[::1]:6379", "tcp:host=\\:\\:1:port=6379"),
        ("tls:host=db:port=6380", "tls:host=db:port=6380"),
        ("unix:path=/tmp/r.sock", "unix:path=/tmp/r.sock"),
    ],
)
def test_client_forms(value, expected):
    assert client_string(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "99999", "tcp:abc", "host:port", "ssl:443:privateKey=/nonexistent",
                                   "\u00b2", "1\u00b2", "localhost:\u0663", "9" * 5000])
def test_bad_listen_names_flag(value):
    with pytest.raises(usage.UsageError) as e:
        server_string(value)
    assert str(e.value).startswith("--listen")
    assert "e.g." in str(e.value)


@pytest.mark.parametrize("value, said", [
    ("tls:0:privateKey=/k.pem", "unexpected keyword argument 'privateKey'"),  # ssl:'s parameter
    ("tls:/pems:port=443x", "invalid literal for int()"),
    ("tcp6:port=abc", "invalid literal for int()"),
])
def test_a_listen_string_twisteds_own_plugin_parser_refuses_is_refused_at_parse_time(value, said):
    """``tls:`` and ``tcp6:`` are parsed by plugins of Twisted's own; their parser ran only when
    the service started (a traceback from twistd). It runs in the option check, naming the
    flag."""
    if value.startswith("tls:"):
        pytest.importorskip("twisted.protocols._sni", reason="Twisted 26's tls: server endpoint")
    with pytest.raises(usage.UsageError) as e:
        server_string(value)
    assert str(e.value).startswith(f"--listen: bad endpoint {value!r}: ")
    assert said in str(e.value)


@pytest.mark.parametrize("value", ["", "xyz", "70000", "tcp:host=a", "unix:", "\u00b2", "[::1]:1\u00b2",
                                   "tcp:host=a:port=\u00b2", "tcp:host=a:port=" + "9" * 5000])
def test_bad_target_names_flag(value):
    with pytest.raises(usage.UsageError) as e:
        client_string(value, "--target")
    assert str(e.value).startswith("--target")


@pytest.mark.parametrize("value", ["0", "localhost:0", "[::1]:0", "tcp:host=db:port=0"])
def test_target_port_zero_is_refused(value):
    """Port 0 means any free port to listen on; nothing can be connected to there."""
    with pytest.raises(usage.UsageError, match=r"--target: port 0 is out of range 1-65535"):
        client_string(value, "--target")


def test_listen_port_zero_is_any_free_port():
    assert server_string("0") == "tcp:0:interface=127.0.0.1:backlog=1024"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("6379", Target("tcp", "127.0.0.1", 6379, desc="tcp:host=127.0.0.1:port=6379",
                        plain_tcp=True)),
        ("db.local:6379", Target("tcp", "db.local", 6379, desc="tcp:host=db.local:port=6379",
                                 plain_tcp=True)),
        ("[::1]:6379", Target("tcp", "::1", 6379, desc="tcp:host=\\:\\:1:port=6379",
                              plain_tcp=True)),
        ("tcp:host=db:port=6379", Target("tcp", "db", 6379, desc="tcp:host=db:port=6379",
                                         plain_tcp=True)),
        ("TCP:port=6379:host=db", Target("tcp", "db", 6379, desc="TCP:port=6379:host=db",
                                         plain_tcp=True)),
        # anything beyond host and port goes through the endpoint (which reads it)
        ("tcp:db:6379", Target("tcp", "db", 6379, desc="tcp:db:6379")),
        ("tcp:host=db:port=6379:timeout=3",
         Target("tcp", "db", 6379, desc="tcp:host=db:port=6379:timeout=3")),
        ("tls:host=db:port=6380", Target("tls", "db", 6380, desc="tls:host=db:port=6380")),
        ("tls:db:6380", Target("tls", "db", 6380, desc="tls:db:6380")),
        ("unix:path=/tmp/r.sock", Target("unix", None, None, desc="unix:path=/tmp/r.sock",
                                         path="/tmp/r.sock")),
        ("unix:/tmp/r.sock", Target("unix", None, None, desc="unix:/tmp/r.sock",
                                    path="/tmp/r.sock")),
    ],
)
def test_a_target_is_read_once_into_a_target(value, expected):
    target = client_target(value)
    assert target == expected
    assert client_string(value) == target.desc


@pytest.mark.parametrize("value, error", [
    # refused by Twisted's client endpoint parser only, once the service was built: now here
    ("tcp:host=db:port=6379:timeout=x", "invalid literal for int() with base 10: 'x'"),
    ("unix:/tmp/r.sock:timeout=y", "invalid literal for int() with base 10: 'y'"),
    ("tcp:host=db:port=6379:bogus=1", "unexpected keyword argument 'bogus'"),
    ("ssl:host=db:port=6380:certKey=/nonexistent/cert.pem", "No such file or directory"),
    ("stdio:", "Unknown endpoint type: 'stdio'"),
    ("tcp6:host=\\:\\:1:port=6379", "tcp6: is for listening; connect to IPv6 with"),
])
def test_a_target_twisted_cannot_build_an_endpoint_of_is_refused_here(value, error):
    with pytest.raises(usage.UsageError) as e:
        client_target(value, "--target")
    assert str(e.value).startswith(f"--target: {value!r}: ")
    assert error in str(e.value)


def test_a_target_port_must_be_a_number():
    with pytest.raises(usage.UsageError, match=r"^--target: 'tcp:host=db:port=redis': port 'redis' "
                                               r"is not a number"):
        client_target("tcp:host=db:port=redis", "--target")


# -- a target that is the listener itself ------------------------------------------------------


@pytest.mark.parametrize("listen, target", [
    ("16555", "16555"),  # a bare port: 127.0.0.1 both ways
    ("16555", "127.0.0.1:16555"),
    ("16555", "localhost:16555"),
    ("16555", "[::ffff:127.0.0.1]:16555"),  # IPv4-mapped
    ("16555", "0.0.0.0:16555"),  # Linux connects to 0.0.0.0 on loopback
    ("0.0.0.0:16555", "127.0.0.2:16555"),  # every interface: any loopback address
    ("0.0.0.0:16555", "16555"),
    ("tcp:16555", "16555"),  # an interface left out is every interface
    ("tcp6:16555", "[::1]:16555"),
    ("tcp:16555:interface=::1", r"tcp:host=\:\:1:port=16555"),
    ("[::1]:16555", "[::]:16555"),  # Linux connects :: to ::1
    ("[::]:16555", "16555"),  # a listener on :: takes IPv4 too (dual stack)
    ("localhost:16555", "127.0.0.1:16555"),
    ("16555", "tcp:host=127.0.0.1:port=16555:timeout=3"),
    ("16555", "tls:host=127.0.0.1:port=16555"),
    ("unix:/tmp/tcpplay-self.sock", "unix:/tmp/tcpplay-self.sock"),
    ("unix:/tmp/tcpplay-self.sock", "unix:path=/tmp/../tmp/tcpplay-self.sock"),
])
def test_a_target_that_is_the_listener_itself_is_seen(listen, target):
    assert target_is_listen(server_string(listen), client_target(target))


@pytest.mark.parametrize("listen, target", [
    ("0", "16555"),  # port 0: a free port, never the target's
    ("16555", "16556"),
    ("16555", "127.0.0.2:16555"),  # another loopback address: another listener's
    ("127.0.0.2:16555", "16555"),
    ("16555", "10.0.0.1:16555"),
    ("16555", "127.example:16555"),  # a name, not a loopback address: never resolved here
    ("16555", "vm:16555"),
    # the other family's socket of the same port: an IPv4 listener on every interface takes no
    # IPv6 connection, Twisted's TCP connect resolves localhost to IPv4 (127.0.0.1, not ::1),
    # Linux connects 0.0.0.0 to 127.0.0.1 and :: to ::1; each pair was refused as a self-loop
    ("0.0.0.0:16555", "[::1]:16555"),
    ("tcp:16555", "[::1]:16555"),
    ("[::1]:16555", "localhost:16555"),
    ("[::1]:16555", "0.0.0.0:16555"),
    ("16555", "[::]:16555"),
    ("unix:/tmp/tcpplay-self.sock", "unix:/tmp/tcpplay-other.sock"),
    ("unix:/tmp/tcpplay-self.sock", "16555"),
    ("16555", "unix:/tmp/16555"),
])
def test_a_target_elsewhere_is_not_the_listener(listen, target):
    assert not target_is_listen(server_string(listen), client_target(target))


@pytest.mark.parametrize("listen_host, peer_host, local_host, expected", [
    ("127.0.0.1", "127.0.0.1", "127.0.0.1", True),
    ("", "127.0.0.5", "127.0.0.1", True),  # every interface: any loopback address
    ("0.0.0.0", "192.0.2.2", "192.0.2.2", True),  # an address of this machine: its own
    ("::", "::ffff:192.0.2.2", "192.0.2.2", True),
    ("0.0.0.0", "192.0.2.9", "192.0.2.2", False),  # another machine's
    ("127.0.0.1", "127.0.0.2", "127.0.0.1", False),  # another listener's
    ("192.0.2.2", "127.0.0.1", "127.0.0.1", False),
    ("::", "127.0.0.1", "127.0.0.1", True),  # dual stack: an IPv4 peer as the listener sees it
    # an IPv4 listener on every interface is not the [::1] or IPv6 LAN server of its port
    ("0.0.0.0", "::1", "::1", False),
    ("", "::1", "::1", False),
    ("0.0.0.0", "2001:db8::2", "2001:db8::2", False),
])
def test_a_connected_socket_leads_back_to_the_listener(listen_host, peer_host, local_host,
                                                       expected):
    assert leads_back(listen_host, 16555, peer_host, 16555, local_host) is expected
    assert not leads_back(listen_host, 16555, peer_host, 16556, local_host)
    assert not leads_back(listen_host, 0, peer_host, 0, local_host)


@pytest.mark.real
def test_the_other_familys_loopback_socket_of_the_port_is_another_server():
    """An IPv4 and an IPv6 loopback listener share a port number (redis-server binds both):
    Twisted's connect to localhost reaches the IPv4 one, so ``--listen [::1]:P --target
    localhost:P`` is a proxy in front of another server, not a loop."""
    import socket

    v6 = socket.socket(socket.AF_INET6)
    v4 = socket.socket()
    try:
        v6.bind(("::1", 0))
        port = v6.getsockname()[1]
        v4.bind(("127.0.0.1", port))  # no conflict: two servers of one port
        assert socket.gethostbyname("localhost").startswith("127.")  # connectTCP's resolving
    finally:
        v6.close()
        v4.close()
    assert not target_is_listen(server_string(f"[::1]:{port}"),
                                client_target(f"localhost:{port}"))
    assert target_is_listen(server_string(f"127.0.0.1:{port}"), client_target(f"localhost:{port}"))
