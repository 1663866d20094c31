"""The chat client: its protocol on StringTransport, then the real command against twistd."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from playground import __main__ as cli
from playground.examples.chat.client import ChatClientProtocol, InputLines, main
from tests.support.net import RawClient, free_port
from tests.support.paths import ROOT
from tests.support.tls import CA, TlsEchoServer, client_pki
from tests.support.waiting import wait_until


class Shown:
    def __init__(self):
        self.lines: list[str] = []
        self.notices: list[str] = []


def client(nick="x", **kw):
    shown = Shown()
    clock = Clock()
    proto = ChatClientProtocol(nick, shown.lines.append, shown.notices.append, clock=clock, **kw)
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport, shown, clock


@pytest.mark.memory
def test_sends_its_nick_on_connect():
    _, transport, _, _ = client("alice")
    assert transport.value() == b"/nick alice\n"


@pytest.mark.memory
def test_shows_server_lines_however_they_are_split():
    proto, _, shown, _ = client()
    data = "= hello\r\n<bob> caf\u00e9\r\n* bob waves\n[from bob] hi\r\n".encode()
    for i in range(len(data)):
        proto.dataReceived(data[i : i + 1])
    assert shown.lines == ["= hello", "<bob> caf\u00e9", "* bob waves", "[from bob] hi"]
    proto.dataReceived(b"bad \xff utf8\r\nunfinished")
    assert shown.lines[-1] == "bad \ufffd utf8"
    proto.connectionLost(Failure(ConnectionLost()))
    assert shown.lines[-1] == "unfinished"


@pytest.mark.memory
def test_control_characters_from_the_server_never_reach_the_terminal():
    # the client may be pointed at any server (or a proxy that rewrites): an escape sequence
    # in a line would clear the user's screen, retitle the window or write the clipboard
    proto, _, shown, _ = client()
    proto.dataReceived(b"<m> \x1b]52;c;ZXZpbA==\x07 \x1b[2J\tx \xc2\x9b31m\xe2\x80\xae!\r\n\x1b[31mcut")
    proto.connectionLost(Failure(ConnectionLost()))
    assert shown.lines == ["<m> ]52;c;ZXZpbA== [2J x 31m!", "[31mcut"]


@pytest.mark.memory
def test_over_long_server_lines_are_shown_in_pieces():
    proto, _, shown, _ = client(max_line=10)
    proto.dataReceived(b"0123456789abcdefghij0123")
    assert shown.lines == ["0123456789", "abcdefghij"]
    proto.dataReceived(b"\r\n")
    assert shown.lines[-1] == "0123"


@pytest.mark.memory
def test_send_line_flattens_line_breaks():
    proto, transport, _, _ = client()
    transport.clear()
    proto.send_line("hello\r\nworld \u2713")
    assert transport.value() == "hello world \u2713\n".encode()


@pytest.mark.memory
def test_quit_sends_quit_waits_for_the_server_then_aborts():
    proto, transport, shown, clock = client()
    transport.clear()
    closed = []
    proto.quit().addCallback(closed.append)
    assert transport.value() == b"/quit\n"
    proto.send_line("ignored after quit")
    proto.quit()  # a second quit sends nothing more
    assert transport.value() == b"/quit\n" and not transport.disconnecting
    clock.advance(proto.quit_timeout)
    assert transport.disconnected  # the server never closed: abort
    proto.connectionLost(Failure(ConnectionLost("gone")))
    assert closed == [proto.close_reason] and "gone" in closed[0]
    assert shown.notices == [f"disconnected: {proto.close_reason}"]


@pytest.mark.memory
def test_server_close_fires_when_closed_and_cancels_the_timer():
    proto, transport, _, clock = client()
    d = proto.quit("bye now")
    assert transport.value().endswith(b"/quit bye now\n")
    proto.dataReceived(b"= bye goodbye\r\n")
    from twisted.internet.error import ConnectionDone

    proto.connectionLost(Failure(ConnectionDone()))
    assert d.called and d.result == "connection closed"
    assert not clock.getDelayedCalls()
    later = []
    proto.quit().addCallback(later.append)
    assert later == ["connection closed"]


@pytest.mark.memory
def test_input_lines_go_to_the_server_and_eof_quits():
    proto, transport, _, _ = client()
    transport.clear()
    stdin = InputLines(proto)
    stdin.makeConnection(StringTransport())
    stdin.dataReceived(b"hel")
    stdin.dataReceived(b"lo\n/me waves\r\nlast")
    assert transport.value() == b"hello\n/me waves\n"
    stdin.connectionLost(Failure(ConnectionLost()))
    assert transport.value() == b"hello\n/me waves\nlast\n/quit\n"


@pytest.mark.pure
def test_main_rejects_a_bad_nick_and_address(capsys):
    with pytest.raises(SystemExit) as e:
        main(["127.0.0.1:1", "--nick", "no spaces"])
    assert e.value.code == 2 and "--nick" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["nowhere", "--nick", "x"])
    assert e.value.code == 2 and "cannot read" in capsys.readouterr().err


@pytest.mark.pure
def test_python_m_playground_dispatches(capsys):
    assert cli.main(["--help"]) == 0
    assert "chat-client" in capsys.readouterr().out
    assert cli.main([]) == 2
    out = capsys.readouterr()  # a usage error: the usage on stderr, nothing on stdout
    assert out.out == "" and out.err.startswith("usage: ") and "chat-client" in out.err
    assert cli.main(["no-such-thing"]) == 2
    assert "unknown command" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["chat-client", "--help"])
    assert e.value.code == 0 and "--nick" in capsys.readouterr().out


# --- the real command ----------------------------------------------------------------------------


class Peer(RawClient):
    """A raw-socket chat user watching what the client does (bounded waits)."""

    def __init__(self, port: int, nick: str):
        super().__init__(port)
        self.send(f"/nick {nick}\n".encode())
        self.read_until(f"= welcome {nick}")

    def read_until(self, text: str, timeout: float = 10.0) -> str:
        return super().read_until(text, timeout)


def run_client(port: int, nick: str = "x") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "playground", "chat-client", f"127.0.0.1:{port}", "--nick", nick],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
    )


def finish(proc: subprocess.Popen, stdin: bytes | None = b"", timeout: float = 15.0):
    try:
        return proc.communicate(stdin, timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def chat_server(twistd):
    port = free_port()
    server = twistd(["chat", "--listen", port])
    server.wait_for("chat listening on")
    server.port = port
    return server


def joined_client(port: int, nick: str = "x") -> tuple[Peer, subprocess.Popen]:
    """A watcher in #lobby and a chat-client process that it has seen join."""
    watcher = Peer(port, "watcher")
    proc = run_client(port, nick)
    watcher.read_until(f"= join {nick} #lobby")
    return watcher, proc


@pytest.mark.twistd
@pytest.mark.timeout(60)
def test_client_message_then_eof(chat_server):
    watcher, proc = joined_client(chat_server.port)
    out, err = finish(proc, "hello from the client \u2713\n".encode())
    assert watcher.read_until("<x>") == "<x> hello from the client \u2713"
    assert watcher.read_until("= quit x") == "= quit x quit"
    assert proc.returncode == 0, err
    assert out.decode().splitlines()[-2:] == ["<x> hello from the client \u2713", "= bye goodbye"]
    assert "-- connected to 127.0.0.1:" in err.decode()


@pytest.mark.twistd
@pytest.mark.timeout(60)
def test_client_exits_0_when_the_server_goes_away(chat_server):
    _watcher, proc = joined_client(chat_server.port, "y")
    chat_server.terminate()
    out, err = finish(proc, None)
    assert proc.returncode == 0, err
    assert "! shutdown the server is stopping" in out.decode()
    assert "-- disconnected" in err.decode()


@pytest.mark.twistd
@pytest.mark.timeout(60)
def test_client_ctrl_c_quits_cleanly(chat_server):
    watcher, proc = joined_client(chat_server.port, "z")
    proc.send_signal(signal.SIGINT)
    assert watcher.read_until("= quit z") == "= quit z interrupted"
    out, err = finish(proc, None)
    assert proc.returncode == 0, err
    assert "= bye goodbye" in out.decode()


@pytest.mark.real
def test_client_cannot_connect_exits_1():
    proc = run_client(free_port())
    out, err = finish(proc)
    assert proc.returncode == 1
    assert "cannot connect to 127.0.0.1:" in err.decode()


@pytest.mark.real
@pytest.mark.timeout(60)
def test_a_tls_server_whose_certificate_has_no_subject_alt_name_gets_nothing(tmp_path):
    """Signed by the CA the client trusts, ``CN=127.0.0.1``, no subjectAltName: Twisted's
    ``tls:`` endpoint let it through, and the client's ``/nick`` and lines reached it. The
    client says so in one line: Twisted's critical traceback of service-identity's
    CertificateError ('while verifying certificate') came before it."""
    pki = client_pki(tmp_path)
    server = TlsEchoServer(*pki["no-san"])
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "playground", "chat-client",
             f"tls:host=127.0.0.1:port={server.port}:trustRoots={pki['ca'].dir}", "--nick", "x"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        )
        _out, err = finish(proc, b"a line for the wrong server\n")
        wait_until(lambda: server.received, 10, "the TLS server to see the close")
    finally:
        server.close()
    assert server.received == [b""], err
    assert ("-- disconnected: TLS handshake with the server failed: certificate not for "
            "127.0.0.1: ") in err.decode(), err
    assert "subjectAltName" in err.decode(), err
    assert "Traceback" not in err.decode() and "while verifying" not in err.decode(), err


@pytest.mark.real
@pytest.mark.timeout(60)
def test_a_tls_server_of_an_untrusted_ca_is_refused_saying_why_and_what_to_do(tmp_path):
    """Its certificate names the host, signed by a CA the client does not trust: the client
    says OpenSSL's verify result and how to trust a private CA. It said OpenSSL's error list
    (``[('SSL routines', '', 'certificate verify failed')]``), nothing of why or what to do."""
    pki = client_pki(tmp_path)
    (tmp_path / "other").mkdir()
    CA(tmp_path / "other", "another CA")
    server = TlsEchoServer(*pki["named"])
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "playground", "chat-client",
             f"tls:host=127.0.0.1:port={server.port}:trustRoots={tmp_path / 'other'}",
             "--nick", "x"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
        )
        _out, err = finish(proc, b"a line for an untrusted server\n")
        wait_until(lambda: server.received, 10, "the TLS server to see the close")
    finally:
        server.close()
    assert server.received == [b""], err
    assert ("-- disconnected: TLS handshake with the server failed: certificate verify failed: "
            "unable to get local issuer certificate (a private CA or a self-signed "
            "certificate: add trustRoots=DIR") in err.decode(), err
