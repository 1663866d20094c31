"""The chat server adapter: StringTransport + MemoryReactorClock, then real sockets and nc."""

from __future__ import annotations

import socket
import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer, endpoints, protocol
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from playground.common.limits import Refusal
from playground.examples.chat import server as chat
from playground.examples.chat.core import ChatServer
from playground.examples.chat.server import ChatFactory, ChatProtocol
from tests.support.net import RawClient, free_port
from tests.support.processes import need

HELLO = "= hello tcpplay-chat: choose a nick with /nick NAME; /help lists the commands"

# --- StringTransport + MemoryReactorClock --------------------------------------------------------


class HalfCloseTransport(StringTransport):
    """The server closes politely with a FIN (``loseWriteConnection``) and keeps reading until the
    client closes too; here that FIN counts as ``disconnecting``, and ``write_closed`` says which."""

    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True
        self.disconnecting = True


class Harness:
    def __init__(self, idle_timeout=0.0, max_connections=0, **core):
        core.setdefault("flood_rate", 0)
        self.clock = MemoryReactorClock()
        self.factory = ChatFactory(
            ChatServer(**core),
            idle_timeout=idle_timeout,
            max_connections=max_connections,
            reactor=self.clock,
        )
        self.port = 40000

    def connect(self):
        self.port += 1
        addr = IPv4Address("TCP", "127.0.0.1", self.port)
        proto = self.factory.buildProtocol(addr)
        transport = HalfCloseTransport(peerAddress=addr)
        proto.makeConnection(transport)
        return proto, transport

    def user(self, nick):
        proto, transport = self.connect()
        proto.dataReceived(f"/nick {nick}\r\n".encode())
        transport.clear()
        return proto, transport

    @staticmethod
    def lost(proto, reason=None):
        proto.connectionLost(Failure(reason or ConnectionDone()))


def take(transport) -> list[str]:
    data = transport.value()
    transport.clear()
    assert data == b"" or data.endswith(b"\r\n")
    return data.decode("utf-8").split("\r\n")[:-1]


@pytest.mark.memory
def test_several_protocols_on_one_factory_talk():
    h = Harness()
    a, ta = h.connect()
    assert ta.value() == (HELLO + "\r\n").encode()
    ta.clear()
    a.dataReceived(b"/nick alice\n")
    assert take(ta) == ["= welcome alice", "= join alice #lobby", "= who #lobby alice"]
    b, tb = h.user("bob")
    c, tc = h.user("carol")
    assert take(ta) == ["= join bob #lobby", "= join carol #lobby"]
    b.dataReceived(b"hel")
    b.dataReceived(b"lo\r\n/msg car")
    b.dataReceived("ol psst \u2603\n".encode())
    assert take(ta) == ["<bob> hello"]
    assert take(tc) == ["<bob> hello", "[from bob] psst \u2603"]
    assert take(tb) == ["= join carol #lobby", "<bob> hello", "[to carol] psst \u2603"]
    c.dataReceived(b"/quit bye all\n")
    assert take(tc) == ["= bye goodbye"]
    assert tc.disconnecting and not tc.disconnected
    assert tc.producer is None  # unregistered, so loseConnection is not held up
    assert take(ta) == take(tb) == ["= quit carol bye all"]
    h.lost(c)
    assert take(ta) == [] and h.factory.limits.open == 2
    h.lost(a, ConnectionLost("reset"))
    assert take(tb) == [
        "= quit alice Connection to the other side was lost in a non-clean fashion: reset."
    ]
    assert sorted(h.factory.protocols) == [b.conn_id]


@pytest.mark.memory
def test_over_long_line_closes_politely():
    h = Harness(max_line=64)
    a, ta = h.user("alice")
    b, tb = h.user("bob")
    take(ta)
    a.dataReceived(b"x" * 100)
    assert take(ta) == ["! line-too-long lines are limited to 64 bytes; closing"]
    assert ta.write_closed and not ta.disconnected  # FIN after the error line; still reading
    assert take(tb) == ["= quit alice line too long"]
    a.dataReceived(b"more\n")  # bytes still in flight are ignored
    assert take(ta) == [] and take(tb) == []
    h.clock.advance(h.factory.close_grace)  # the client never read: after the grace, abort
    assert ta.disconnected
    h.lost(a)
    assert a.close_reason == "line too long" and h.factory.limits.open == 1


@pytest.mark.memory
def test_polite_close_ends_when_the_client_closes_too():
    h = Harness(max_line=64)
    a, ta = h.user("alice")
    a.dataReceived(b"x" * 100)
    assert ta.write_closed
    a.readConnectionLost()  # the client read our FIN and closed: no need to wait for the grace
    assert ta.disconnecting and not ta.disconnected


@pytest.mark.twistd
def test_over_long_line_error_arrives_despite_unread_input(twistd):
    """A client that sends far more than the limit in one go still reads the error line: the
    server half-closes and drains instead of closing with unread input (which sends a reset)."""
    port = free_port()
    server = twistd(["chat", "--listen", port, "--max-line", "64"])
    server.wait_for("chat listening on")
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"/nick zed\n")
            s.sendall(b"y" * 200_000)
            got = b""
            while b"line-too-long" not in got:
                chunk = s.recv(65536)
                assert chunk, f"closed without the error line: {got!r}"
                got += chunk
    assert server.terminate() == 0


@pytest.mark.memory
def test_polite_close_cancels_the_abort_when_the_connection_ends():
    h = Harness()
    a, ta = h.user("alice")
    a.dataReceived(b"/quit\n")
    h.lost(a)
    assert not h.clock.getDelayedCalls()
    assert not ta.disconnected


@pytest.mark.memory
def test_idle_timeout_via_clock():
    h = Harness(idle_timeout=30)
    a, ta = h.user("alice")
    b, tb = h.user("bob")
    take(ta)
    h.clock.advance(20)
    b.dataReceived(b"still here\n")  # resets bob's timer
    take(ta)
    take(tb)
    h.clock.advance(10)
    assert take(ta) == ["! idle-timeout no input for 30s; closing"]
    assert ta.disconnecting
    assert take(tb) == ["= quit alice idle timeout (30s)"]
    h.lost(a)
    h.clock.advance(19)
    assert not tb.disconnecting
    h.clock.advance(1)
    assert take(tb) == ["! idle-timeout no input for 30s; closing"] and tb.disconnecting


@pytest.mark.memory
def test_max_connections_refusal():
    h = Harness(max_connections=2)
    a, _ = h.user("alice")
    h.user("bob")
    refused, tr = h.connect()
    assert isinstance(refused, Refusal)
    assert tr.value() == b"! server-full too many connections; try again later\r\n"
    assert tr.disconnecting
    assert h.factory.limits.refused == 1
    h.lost(a)
    c, tc = h.connect()
    assert isinstance(c, ChatProtocol) and take(tc) == [HELLO]


@pytest.mark.memory
def test_telnet_option_requests_are_refused_in_raw_bytes():
    h = Harness()
    a, ta = h.user("alice")
    a.dataReceived(b"\xff\xfd\x01\xff\xfb\x1fhi\r\n")  # IAC DO ECHO, IAC WILL NAWS
    assert ta.value() == b"\xff\xfc\x01\xff\xfe\x1f<alice> hi\r\n"


@pytest.mark.memory
def test_half_close_finishes_the_last_line_and_says_goodbye():
    h = Harness()
    a, ta = h.user("alice")
    a.dataReceived(b"no newline")
    a.readConnectionLost()
    assert take(ta) == ["<alice> no newline", "= bye end of input, goodbye"]
    assert ta.disconnecting


@pytest.mark.memory
def test_slow_reader_is_dropped_when_its_sendq_is_over_its_cap():
    h = Harness()
    h.factory.max_sendq = 1000
    a, ta = h.user("alice")
    b, tb = h.user("bob")
    ta.producer.pauseProducing()  # what a full transport buffer does
    for _ in range(40):
        b.dataReceived(b"x" * 30 + b"\n")
    assert ta.disconnected and a.close_reason.startswith("SendQ exceeded (1")
    assert a.close_reason.endswith("bytes queued, limit 1000)")
    assert h.factory.queued == 0 and not h.factory.queues  # freed at once, not at close
    assert not tb.disconnecting
    h.lost(a)
    assert take(tb)[-1].startswith("= quit alice SendQ exceeded (")


@pytest.mark.memory
def test_send_budget_drops_the_longest_queue_first():
    h = Harness()
    f = h.factory
    f.max_sendq, f.send_budget = 1 << 20, 3000
    slow = [h.user(nick) for nick in ("s1", "s2", "s3")]
    sender, ts = h.user("talker")
    for _, transport in slow:
        transport.producer.pauseProducing()  # s1 stops reading first, then s2, then s3
        for _ in range(5):
            sender.dataReceived(b"y" * 90 + b"\n")
            assert f.queued <= f.send_budget
    # queues of 15, 10 and 5 lines of 101 bytes: 3030 > 3000, so s1 went
    (s1, t1), (s2, t2), (s3, t3) = slow
    assert t1.disconnected and s1.close_reason == (
        "SendQ exceeded (1515 bytes queued, server send budget 3000 full)")
    assert (s2.queued, s3.queued, f.queued) == (1010, 505, 1515)
    for _ in range(20):
        sender.dataReceived(b"z" * 90 + b"\n")
        assert f.queued <= f.send_budget
    assert t2.disconnected and not t3.disconnected  # the longest queue goes first every time
    assert len([ln for ln in take(ts) if ln.startswith("<talker>")]) == 35  # a reader gets all
    assert not ts.disconnecting


@pytest.mark.memory
def test_sendq_drains_in_order_when_the_client_reads_again():
    h = Harness()
    a, ta = h.user("alice")
    b, tb = h.user("bob")
    take(ta)
    b.dataReceived(b"one\n")
    ta.producer.pauseProducing()
    b.dataReceived(b"two\nthree\n")
    assert take(ta) == ["<bob> one"] and a.queued > 0 and h.factory.queued == a.queued
    ta.producer.resumeProducing()  # the transport drained
    b.dataReceived(b"four\n")
    assert take(ta) == ["<bob> two", "<bob> three", "<bob> four"]
    assert a.queued == 0 and h.factory.queued == 0 and not h.factory.queues
    ta.producer.pauseProducing()
    b.dataReceived(b"five\n")
    a.close_politely("bye")  # queued lines go out before the FIN
    assert take(ta) == ["<bob> five"] and ta.write_closed and h.factory.queued == 0


@pytest.mark.memory
def test_stopping_the_service_tells_everyone_and_waits_for_them():
    h = Harness()
    a, ta = h.user("alice")
    b, tb = h.user("bob")
    take(ta)
    done = chat.ChatShutdown(h.factory).stopService()
    assert take(ta) == ["! shutdown the server is stopping"]
    assert take(tb) == ["= quit alice server shutdown", "! shutdown the server is stopping"]
    assert ta.disconnecting and tb.disconnecting
    h.lost(a)
    assert not done.called
    h.clock.advance(h.factory.close_grace)  # bob never finishes closing: aborted
    assert tb.disconnected
    h.lost(b)
    assert done.called


@pytest.mark.memory
def test_one_log_line_per_open_and_close(monkeypatch):
    events = []
    monkeypatch.setattr(ChatProtocol, "log", Logger(observer=events.append))
    h = Harness()
    a, _ = h.user("alice")
    a.dataReceived(b"hi\n/quit\n")
    h.clock.advance(2.5)
    h.lost(a)
    assert [e["log_format"].split()[1] for e in events] == ["open", "close"]
    opened, closed = events
    assert opened["peer"] == "127.0.0.1:40001" and opened["conn"] == a.conn_id
    assert closed["nick"] == "alice" and closed["lines"] == 3 and closed["reason"] == "quit"
    assert closed["bytes_in"] == len(b"/nick alice\r\nhi\n/quit\n") and closed["duration"] == 2.5


@pytest.mark.memory
def test_options_defaults_and_errors():
    opts = chat.Options()
    opts.parseOptions([])
    assert opts["listen"] == "tcp:7001:interface=127.0.0.1:backlog=1024"
    assert (opts["max-line"], opts["flood-rate"], opts["flood-burst"]) == (1024, 5.0, 20)
    opts = chat.Options()
    opts.parseOptions(
        [
            "--max-line",
            "64",
            "--flood-rate",
            "0",
            "--room",
            "Main",
            "--idle-timeout",
            "60",
            "--max-connections",
            "3",
        ]
    )
    factory = chat.make_factory(opts, reactor=MemoryReactorClock())
    assert factory.core.max_line == 64 and factory.core.default_room == "#main"
    assert factory.idle_timeout == 60 and factory.limits.max_connections == 3
    for args, flag in [
        (["--max-line", "8"], "--max-line"),
        (["--flood-rate", "x"], "--flood-rate"),
        (["--flood-burst", "0"], "--flood-burst"),
        (["--room", "a b"], "--room"),
        (["--flood-strikes", "0"], "--flood-strikes"),
        (["--send-budget", "lots"], "--send-budget"),
        (["--max-sendq", "0"], "--max-sendq"),
    ]:
        with pytest.raises(usage.UsageError, match=flag):
            chat.Options().parseOptions(args)
    factory = chat.make_factory(chat.Options(), reactor=MemoryReactorClock())
    assert (factory.send_budget, factory.max_sendq) == (64 << 20, 1 << 20)
    opts = chat.Options()
    opts.parseOptions(["--send-budget", "8m", "--max-sendq", "64k"])
    factory = chat.make_factory(opts, reactor=MemoryReactorClock())
    assert (factory.send_budget, factory.max_sendq) == (8 << 20, 64 << 10)


@pytest.mark.pure
def test_subcommand_is_registered():
    from playground import tap

    assert ("chat", "playground.examples.chat.server") in [(n, m) for n, m, _ in tap.SUBCOMMANDS]
    opts = tap.Options()
    opts.parseOptions(["chat", "--listen", "0"])
    assert opts.subCommand == "chat"


# --- real sockets, in this process ---------------------------------------------------------------


class Collector(protocol.Protocol):
    """Collects CRLF lines; ``wait_for(text)`` fires with the first later line containing it."""

    delimiter = b"\r\n"

    def __init__(self):
        self.buf = b""
        self.lines: list[str] = []
        self.seen = 0
        self.waiting = None
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.buf += data
        *done, self.buf = self.buf.split(self.delimiter)
        self.lines += [line.decode() for line in done]
        self._check()

    def _check(self):
        if self.waiting is None:
            return
        text, d = self.waiting
        for i in range(self.seen, len(self.lines)):
            if text in self.lines[i]:
                self.seen = i + 1
                self.waiting = None
                d.callback(self.lines[i])
                return

    def wait_for(self, text, timeout=5.0):
        from twisted.internet import reactor

        d = defer.Deferred()
        self.waiting = (text, d)
        self._check()
        return d.addTimeout(timeout, reactor).addErrback(self._timed_out, text)

    def _timed_out(self, failure, text):
        raise AssertionError(f"{text!r} not received; got {self.lines} + {self.buf!r}")

    def send(self, line: str):
        self.transport.write(line.encode() + b"\r\n")

    def connectionLost(self, reason):
        self.closed.callback(None)


@pytest_twisted.async_yield_fixture
async def chat_port():
    from twisted.internet import reactor

    factory = ChatFactory(ChatServer(), reactor=reactor)
    endpoint = endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
    port = await endpoint.listen(factory)
    yield port.getHost().port
    await defer.maybeDeferred(port.stopListening)


@pytest.mark.real
@pytest.mark.timeout(30)
@pytest_twisted.ensureDeferred
async def test_real_sockets_clients_talk_and_a_conch_telnet_client_is_refused_options(chat_port):
    from twisted.conch import telnet
    from twisted.internet import reactor

    endpoint = endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", chat_port)
    a = await endpoints.connectProtocol(endpoint, Collector())
    b = await endpoints.connectProtocol(endpoint, Collector())
    a.send("/nick alice")
    await a.wait_for("= who #lobby alice")
    b.send("/nick bob")
    await a.wait_for("= join bob #lobby")
    b.send("hi alice")
    assert await a.wait_for("<bob>") == "<bob> hi alice"

    # A real telnet implementation: its option requests must be refused, its lines understood.
    class TelnetCollector(Collector, telnet.TelnetProtocol):
        delimiter = b"\n"  # TelnetTransport turns the NVT's CR LF into LF

    tt = await endpoints.connectProtocol(endpoint, telnet.TelnetTransport(TelnetCollector))
    t = tt.protocol
    refused = []
    for request in (tt.do(telnet.ECHO), tt.will(telnet.NAWS)):
        request.addErrback(lambda f: refused.append(f.check(telnet.OptionRefused)))
    tt.write(b"/nick tel\r\n")
    await t.wait_for("= welcome tel")
    assert refused == [telnet.OptionRefused, telnet.OptionRefused]
    tt.write(b"/me waves from telnet\r\n")
    assert await a.wait_for("* tel") == "* tel waves from telnet"
    tt.transport.write(telnet.IAC + telnet.IP)  # Ctrl-C
    assert await t.wait_for("= bye") == "= bye interrupted (Ctrl-C), goodbye"
    assert await b.wait_for("= quit tel") == "= quit tel interrupted"
    await t.closed
    a.send("/quit")
    await a.closed
    b.transport.loseConnection()
    await b.closed


# --- real sockets: a twistd subprocess, raw sockets, nc ------------------------------------------


@pytest.mark.twistd
@pytest.mark.timeout(60)
def test_twistd_chat_with_raw_sockets_nc_and_telnet_bytes(twistd):
    nc = need("nc")
    port = free_port()
    server = twistd(["chat", "--listen", port, "--max-line", "200"])
    server.wait_for("chat listening on")
    a = RawClient(port)
    a.read_until("= hello")
    a.send(b"/nick alice\n")
    a.read_until("= who #lobby alice")

    proc = subprocess.Popen(
        [nc, "-N", "127.0.0.1", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write(b"/nick ncuser\n")
        proc.stdin.flush()
        a.read_until("= join ncuser #lobby")
        proc.stdin.write(b"hello from nc\n/msg alice secret\n")
        proc.stdin.flush()
        assert a.read_until("<ncuser>") == "<ncuser> hello from nc"
        assert a.read_until("[from ncuser]") == "[from ncuser] secret"

        # A telnet-speaking client: option negotiation, CRLF lines, IAC IP for Ctrl-C.
        t = RawClient(port)
        t.send(b"\xff\xfd\x03\xff\xfb\x18/nick tel\r\n")  # IAC DO SGA, IAC WILL TTYPE
        t.read_until("= welcome tel")
        assert b"\r\n\xff\xfc\x03\xff\xfe\x18= welcome tel\r\n" in t.raw  # WONT SGA, DONT TTYPE
        t.send(b"from telnet \xe2\x9c\x93\r\n")
        assert a.read_until("<tel>") == "<tel> from telnet \u2713"
        t.send(b"\xff\xf4")
        rest = t.read_to_close()
        assert rest.endswith(b"= bye interrupted (Ctrl-C), goodbye\r\n")
        a.read_until("= quit tel interrupted")
        t.close()

        a.send(b"/who *\n")
        assert a.read_until("= who *") == "= who * alice@#lobby ncuser@#lobby"
        a.send(b"back to you, nc\n")
        out, _ = proc.communicate(b"", timeout=10)  # stdin EOF: nc -N half-closes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0
    text = out.decode()
    assert "<alice> back to you, nc\r\n" in text
    assert text.endswith("= bye end of input, goodbye\r\n")
    a.read_until("= quit ncuser end of input")

    a.send(b"y" * 201 + b"\n")
    assert a.read_to_close().endswith(
        b"! line-too-long lines are limited to 200 bytes; closing\r\n"
    )
    a.close()
    server.wait_for("reason=line too long")
    assert server.terminate() in (0, -15, 143)
    log = server.output()
    assert log.count("chat open ") == 3 and log.count("chat close ") == 3
    assert "nick=ncuser" in log and "reason=end of input" in log


@pytest.mark.real
@pytest_twisted.inlineCallbacks
def test_real_sockets_a_client_that_never_reads_is_dropped_within_the_budget():
    from twisted.internet import reactor, threads

    budget = 256 * 1024
    factory = ChatFactory(ChatServer(flood_rate=0, max_line=65536), reactor=reactor,
                          max_sendq=64 << 20, send_budget=budget)
    port = yield endpoints.TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    number = port.getHost().port
    peak = []

    def watch():  # on the reactor thread, between two of the talker's lines
        peak.append(factory.queued)

    def clients():
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(("127.0.0.1", number))
        slow.sendall(b"/nick slow\n")  # and never reads
        talker = RawClient(number)
        talker.send(b"/nick talker\n")
        talker.read_until("= who #lobby")
        line = "w" * 60000
        for i in range(200):  # 12 MB to the slow client: more than any kernel buffer holds
            talker.send(f"{i} {line}\n".encode())
            talker.read_until(f"<talker> {i} w")
            reactor.callFromThread(watch)
        seen = [ln for ln in talker.lines if ln.startswith("= quit slow")]
        quit_line = seen[0] if seen else talker.read_until("= quit slow")
        slow.close()
        talker.close()
        return quit_line

    try:
        quit_line = yield threads.deferToThread(clients)
    finally:
        yield port.stopListening()
    assert quit_line.startswith("= quit slow SendQ exceeded (")
    assert quit_line.endswith(f"server send budget {budget} full)")
    assert max(peak) <= budget and factory.queued == 0


@pytest.mark.memory
def test_make_service_listens_and_sees_clients_out():
    from twisted.application import service

    from playground.common.listening import ListeningService

    opts = chat.Options()
    opts.parseOptions(["--listen", "0"])
    top = chat.make_service(opts, reactor=MemoryReactorClock())
    assert isinstance(top, service.MultiService)
    kinds = [type(s) for s in top]
    assert kinds == [chat.ChatShutdown, ListeningService]  # stopped in reverse: listener first


@pytest.mark.twistd
@pytest.mark.parametrize("kind", ["chat", "echo", "resp"])
def test_a_failed_tls_handshake_is_logged_with_openssls_reason(twistd, tmp_path, kind):
    """``--listen ssl:...`` (the chat, echo and RESP servers), a client that does not trust the
    server's certificate: the close line says why as the proxy says it, not OpenSSL's error
    list (``reason=[('SSL routines', '', 'tlsv1 alert unknown ca')]``)."""
    import ssl

    from tests.support.tls import CA

    cert, key = CA(tmp_path).issue("localhost", ["localhost"], ["127.0.0.1"])
    port = free_port()
    server = twistd([kind, "--listen",
                     f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1"])
    server.wait_for(f"{kind} listening on")
    ctx = ssl.create_default_context()  # the system's CAs: not this test CA
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="localhost")
    line = server.wait_for(f"{kind} close")
    assert line.endswith("reason=TLS handshake with the client failed: tlsv1 alert unknown ca"), (
        line)
    assert server.terminate() == 0


@pytest.mark.twistd
def test_quit_over_tls_ends_with_close_notify(twistd, tmp_path):
    """``--listen ssl:...``: ``/quit`` gets the goodbye and then TLS's close_notify, a clean
    end. The polite close's half-close went to the TCP connection beneath TLS (a TLS
    transport hands loseWriteConnection to it): a FIN without close_notify, a truncation
    (tcpplay-chat said 'lost in a non-clean fashion' after every /quit over TLS)."""
    import ssl

    from tests.support.tls import CA

    ca = CA(tmp_path)
    cert, key = ca.issue("localhost", ["localhost"], ["127.0.0.1"])
    port = free_port()
    server = twistd(["chat", "--listen",
                     f"ssl:{port}:privateKey={key}:certKey={cert}:interface=127.0.0.1"])
    server.wait_for("chat listening on")
    ctx = ssl.create_default_context(cafile=str(ca.pem))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             suppress_ragged_eofs=False) as tls:
            tls.sendall(b"/nick zed\n/quit\n")
            got = b""
            while chunk := tls.recv(65536):  # SSLEOFError: a FIN without close_notify
                got += chunk
    assert b"bye goodbye" in got, got
    assert server.terminate() == 0
