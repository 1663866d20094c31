"""The proxy with TLS on either leg: an ``ssl:`` listener in front of redis-server, and a ``tls:``
target verified against ``--target-ca`` (right name passes, wrong name or wrong CA fails).

Certificates and the TLS target (a small echo server thread using Python's ``ssl``) come from
``tests.support.tls``. Every wait has a deadline; no fixed sleeps.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import threading
from pathlib import Path

import pytest
import redis

from tests.support.net import PING, PONG, recv_exactly, wait_closed
from tests.support.processes import start_proxy
from tests.support.tls import CA, TlsEchoServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.twistd

# --- certificates ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(d)
    return {
        "ca": ca,
        "localhost": ca.issue("localhost", ["localhost"], ["127.0.0.1"]),
        "other": ca.issue("other", ["other.example"]),
        "stranger": CA(d, "stranger CA").issue("stranger", ["localhost"], ["127.0.0.1"]),
        "no-san": ca.issue("no-san", ["localhost"], with_san=False),
        "expired": ca.issue("expired", ["localhost"], ["127.0.0.1"], expired=True),
    }


# --- a TLS echo server (the tls: target) ------------------------------------------------------


@pytest.fixture
def echo_server(pki):
    servers: list[TlsEchoServer] = []

    def start(which: str) -> TlsEchoServer:
        s = TlsEchoServer(*pki[which])
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.close()


# --- TLS listener in front of redis-server --------------------------------------------------


def test_tls_listener_in_front_of_redis(twistd, redis_server, pki):
    cert, key = pki["localhost"]
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    proc, port = start_proxy(twistd, redis_server.port, listen=listen)
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(PING)
            assert recv_exactly(tls, len(PONG)) == PONG
    # A real client library over TLS, with a value large enough to need many TLS records.
    value = os.urandom(2 * 1024 * 1024)
    r = redis.Redis(host="localhost", port=port, ssl=True, ssl_ca_certs=str(pki["ca"].pem),
                    socket_timeout=20)
    try:
        assert r.set("proxy-tls:big", value)
        assert r.get("proxy-tls:big") == value
        assert r.delete("proxy-tls:big") == 1
    finally:
        r.close()
    # A client that does not trust the proxy's CA cannot complete the handshake.
    strict = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            strict.wrap_socket(raw, server_hostname="localhost")
    assert proc.terminate() == 0


def test_a_tls_client_offering_alpn_is_served_without_a_protocol(twistd, redis_server, pki):
    """curl, browsers and Go offer ALPN (``h2``, ``http/1.1``). The proxy negotiates none, and
    Twisted's ALPN callback then answered with an empty protocol, which OpenSSL turns into an
    ``internal error`` alert: every such client failed its handshake (``curl https://...`` to an
    ``ssl:`` listener: ``tlsv1 alert internal error``). It is now told no protocol was agreed
    (RFC 7301 lets a server go on without one), as to a client that offers none."""
    cert, key = pki["localhost"]
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    proc, port = start_proxy(twistd, redis_server.port, listen=listen)
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.selected_alpn_protocol() is None
            tls.sendall(PING)
            assert recv_exactly(tls, len(PONG)) == PONG
    assert proc.terminate() == 0


@pytest.mark.real
def test_a_tls_directory_listener_gets_the_backlog_the_others_get(pki, tmp_path):
    """A ``tls:DIR`` listen string gets ``backlog=1024`` as ``tcp:``, ``ssl:`` and ``unix:``
    ones do: it kept Twisted's 50, and a burst of connects (``redis-benchmark -c 100``) waited."""
    pytest.importorskip("twisted.protocols._sni", reason="Twisted 26's tls: server endpoint")
    from playground.common.addresses import server_string

    pems = tmp_path / "pems"
    pems.mkdir()
    cert, key = pki["localhost"]
    (pems / "localhost.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    assert server_string(f"tls:{pems}:port=0").endswith(":backlog=1024")
    assert server_string(f"tls:{pems}:port=0:backlog=7").endswith(":backlog=7")


def test_a_tls_directory_listener_answers_alpn_for_every_name(twistd, redis_server, pki,
                                                             tmp_path):
    """A ``tls:DIR`` listener (Twisted's SNI endpoint: a context per certificate name, chosen by
    the client's server name) answers an ALPN offer as an ``ssl:`` one does: no protocol, and the
    handshake completes. The fix for ``ssl:`` did not reach these contexts: curl and any client
    offering ALPN got an ``internal error`` alert for either name."""
    pytest.importorskip("twisted.protocols._sni", reason="Twisted 26's tls: server endpoint")
    pems = tmp_path / "pems"
    pems.mkdir()
    for name in ("localhost", "other"):
        cert, key = pki[name]
        (pems / f"{name}.pem").write_bytes(cert.read_bytes() + key.read_bytes())
    proc, port = start_proxy(twistd, redis_server.port,
                             listen=f"tls:{pems}:port=0:interface=127.0.0.1")
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    for server_name in ("localhost", "other.example"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
                assert tls.selected_alpn_protocol() is None
                assert server_name in str(tls.getpeercert()["subjectAltName"])
                tls.sendall(PING)
                assert recv_exactly(tls, len(PONG)) == PONG
    assert proc.terminate() == 0


@pytest.mark.parametrize("plain, openssl_says", [
    (PING, "wrong version number"),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", "http request"),
])
def test_plain_text_to_a_tls_listener_is_said_to_be_no_tls(twistd, redis_server, pki, plain,
                                                           openssl_says):
    """RESP or HTTP in clear to an ``ssl:`` listener: the pair closes ``tls-failed`` and the log
    says the bytes were not TLS, after OpenSSL's own words (``wrong version number`` alone
    did not tell an operator that a client forgot ``--tls``)."""
    cert, key = pki["localhost"]
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    proc, port = start_proxy(twistd, redis_server.port, "--quiet", listen=listen)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = s.getsockname()[1]
        s.sendall(plain)
        wait_closed(s, timeout=10)
    line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert "first=client how=tls-failed" in line, line
    said = proc.wait_for(f"closing 127.0.0.1:{me}")
    assert f"failed: {openssl_says} (not TLS: plain text from the client?)" in said, said
    assert "Traceback" not in proc.output()


# --- tls: target verified with --target-ca ---------------------------------------------------


def test_tls_target_with_matching_name_passes_data(twistd, pki, echo_server):
    server = echo_server("localhost")
    proc, port = start_proxy(twistd, f"tls:host=localhost:port={server.port}",
                             "--target-ca", pki["ca"].pem, "--quiet")  # the log's close line
    message = b"hello over tls\n" + bytes(range(256)) * 64
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(message)
        assert recv_exactly(s, len(message)) == message
        me = s.getsockname()[1]
    line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert f"c2s={len(message)} s2c={len(message)}" in line, line
    wait_until(lambda: server.received, 10, "the TLS server to receive the message")
    assert server.received == [message]
    assert server.handshakes == 1


def test_tls_target_half_close_still_gets_the_reply(twistd, pki, echo_server):
    """``printf ... | nc -N`` style: the client sends and shuts down its write side at once."""
    server = echo_server("localhost")
    proc, port = start_proxy(twistd, f"tls:host=localhost:port={server.port}",
                             "--target-ca", pki["ca"].pem)
    message = b"PING\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(message)
        s.shutdown(socket.SHUT_WR)
        got = recv_exactly(s, len(message) + 1)  # +1: read on to the EOF
    assert got == message, (got, server.received, server.errors, proc.output()[-2000:])


def _assert_handshake_refused(twistd, pki, server, expect: str):
    proc, port = start_proxy(twistd, f"tls:host=localhost:port={server.port}",
                             "--target-ca", pki["ca"].pem, "--quiet")  # the log's close line
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        me = s.getsockname()[1]
        s.sendall(b"secret that must not reach a wrong server\n")
        wait_closed(s, timeout=3)
    line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert "first=server" in line and "c2s=" in line, line
    assert re.search(expect, line, re.IGNORECASE), line
    assert b"secret" not in b"".join(server.received)
    return proc.output()


def test_tls_target_with_wrong_name_fails_handshake(twistd, pki, echo_server):
    server = echo_server("other")  # signed by the trusted CA, but for other.example
    _assert_handshake_refused(twistd, pki, server, r"mismatch|verification")


def test_tls_target_signed_by_unknown_ca_fails_handshake(twistd, pki, echo_server):
    """Closed as ``tls-failed`` (the close record said how as the repr of OpenSSL's error list,
    ``[('SSL routines', '', 'certificate verify failed')]``, in JSON too), OpenSSL's reason
    in a warning, as a connect's failure is said."""
    server = echo_server("stranger")  # right name, untrusted issuer
    out = _assert_handshake_refused(twistd, pki, server, r"first=server how=tls-failed$")
    assert ("TLS handshake with the server failed: certificate verify failed: unable to get "
            "local issuer certificate; closing ") in out, out
    assert "SSL routines" not in out, out


def test_tls_target_whose_certificate_has_expired_says_so(twistd, pki, echo_server):
    """OpenSSL's verification result is in the reason: ``certificate has expired``. The log and
    the close record said only ``certificate verify failed``, as for a wrong CA or a self-signed
    certificate, so the operator could not tell which."""
    server = echo_server("expired")  # the trusted CA's, the right name, valid until yesterday
    out = _assert_handshake_refused(
        twistd, pki, server, r"first=server how=tls-failed$")
    assert "failed: certificate verify failed: certificate has expired; closing" in out, out


def test_tls_target_whose_certificate_has_no_subject_alt_name_fails_handshake(twistd, pki,
                                                                            echo_server):
    """Signed by the trusted CA, ``CN=localhost``, no subjectAltName: not a certificate for
    any name (RFC 6125). service-identity says so with a ``CertificateError``, which Twisted's
    check (it catches ``VerificationError``) logged and let through: the bytes reached it."""
    server = echo_server("no-san")
    out = _assert_handshake_refused(twistd, pki, server, r"first=server how=tls-failed$")
    assert "subjectAltName" in out, out


# --- a close-delimited HTTP response over a TLS target ----------------------------------------


def _tls_http_once(cert: Path, key: Path, clean: bool):
    """A one-shot TLS server (a thread): reads a request head, answers HTTP/1.0 with no
    Content-Length (the body ends at the close), then closes: with its close_notify when
    ``clean``, else by dropping the TCP connection (a truncation). ``(port, thread, errors)``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    errors: list[str] = []

    def serve():
        try:
            with listener:
                conn, _ = listener.accept()
            conn.settimeout(10)
            with conn, ctx.wrap_socket(conn, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                tls.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"y" * 500)
                if clean:
                    tls.unwrap()
        except (OSError, ssl.SSLError) as e:
            errors.append(repr(e))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread, errors


@pytest.mark.parametrize("clean", [True, False])
def test_a_close_delimited_response_over_tls_is_complete_only_at_a_clean_close(
        twistd, pki, tmp_path, clean):
    """A TLS server's close_notify ends a close-delimited body (no half-close reaches the
    decoder: the TLS leg closes whole), so the JSON record says ``complete: true``; a TCP close
    without it is a truncation: ``complete: false``."""
    server_port, server, errors = _tls_http_once(*pki["localhost"], clean)
    json_path = tmp_path / "out.jsonl"
    proc, port = start_proxy(twistd, f"tls:host=localhost:port={server_port}",
                             "--target-ca", pki["ca"].pem, "--decode", "http",
                             "--json", json_path, "--quiet")
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        me = s.getsockname()[1]
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
    server.join(10)
    assert got.endswith(b"y" * 500) and not errors, (got[-100:], errors)
    proc.wait_for(f"close 127.0.0.1:{me} ")
    assert proc.terminate() == 0
    [record] = [r for r in map(json.loads, json_path.read_text().splitlines())
                if r["type"] == "http"]
    assert (record["status"], record["response_body_size"]) == (200, 500)
    assert record["complete"] is clean, (record, proc.output()[-2000:])



# --- handshakes that never end -----------------------------------------------------------------


def test_a_tls_target_that_never_answers_the_handshake_fails_at_the_connect_timeout(twistd, pki):
    """A server that accepts TCP and never says a word of TLS: the handshake is part of the
    connect, bounded by ``--connect-timeout`` (as curl's is). The pair stayed open for ever (the
    endpoint's connect fires at the TCP connect), the client's bytes held in the TLS layer."""
    mute = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    with mute:
        proc, port = start_proxy(twistd, f"tls:host=localhost:port={mute.getsockname()[1]}",
                                 "--target-ca", pki["ca"].pem, "--connect-timeout", "1",
                                 "--quiet")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            me = s.getsockname()[1]
            s.sendall(PING)
            wait_closed(s, timeout=10)
        line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert "first=server how=tls-failed" in line, line
    assert "no TLS handshake within --connect-timeout 1s" in proc.output(), proc.output()[-2000:]


def test_a_client_that_never_starts_the_handshake_is_closed_and_frees_its_slot(twistd, pki,
                                                                              redis_server):
    """A client of an ``ssl:`` listener that opens TCP and sends nothing (or stops mid-handshake)
    is closed after ``--handshake-timeout`` (nginx's ``ssl_handshake_timeout``), even with no
    ``--idle-timeout``: it held a slot of ``--max-connections`` for ever, so a few such
    connections locked every TLS client out."""
    cert, key = pki["localhost"]
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    proc, port = start_proxy(twistd, redis_server.port, "--max-connections", "1",
                             "--handshake-timeout", "1", "--quiet", listen=listen)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as silent:
        me = silent.getsockname()[1]
        wait_closed(silent, timeout=10)
    line = proc.wait_for(f"close 127.0.0.1:{me} ")
    assert "first=client how=tls-failed" in line, line
    assert "no TLS handshake within --handshake-timeout 1s" in proc.output()
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:  # the slot is free
            tls.sendall(PING)
            assert recv_exactly(tls, len(PONG)) == PONG


# --- how a TLS client's connection ends ---------------------------------------------------------


def test_a_tls_client_closing_tcp_without_close_notify_is_told_from_a_reset(twistd, pki,
                                                                            redis_server,
                                                                            tmp_path):
    """``redis-cli --tls`` (and Python's ``ssl``) end with a TCP FIN and no close_notify. Twisted's
    TLS says ``ConnectionLost`` for that and for a reset alike, so the pair closed ``reset by
    client`` with no more said; now its reason says there was no close_notify (the other side is
    still reset: TLS cannot tell it from a truncation), and a real reset has no such reason."""
    import struct

    cert, key = pki["localhost"]
    listen = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    json_path = tmp_path / "out.jsonl"
    proc, port = start_proxy(twistd, redis_server.port, "--json", json_path, "--quiet",
                             listen=listen)
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    ports = {}
    for how in ("fin", "rst"):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        tls = ctx.wrap_socket(raw, server_hostname="localhost")
        tls.sendall(PING)
        assert recv_exactly(tls, len(PONG)) == PONG
        ports[how] = tls.getsockname()[1]
        if how == "rst":
            tls.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        tls.close()  # no close_notify: Python's ssl sends none on close
        proc.wait_for(f"close 127.0.0.1:{ports[how]} ")
    assert proc.terminate() == 0
    closes = {r["client"]: r for r in map(json.loads, json_path.read_text().splitlines())
              if r["type"] == "close"}
    fin, rst = (closes[f"127.0.0.1:{ports[how]}"] for how in ("fin", "rst"))
    assert (fin["closed_by"], fin["how"]) == ("client", "reset"), fin
    assert fin.get("reason") == "TCP closed without a TLS close_notify", fin
    assert (rst["closed_by"], rst["how"], rst.get("reason")) == ("client", "reset", None), rst


def test_a_web_view_on_ssl_is_announced_with_https_and_answers_there(twistd, redis_server, pki):
    """``--web ssl:...``: the start-up line says where to browse, and a browser given
    ``http://`` for a TLS port gets nothing it can show (it said ``http://``, as for TCP)."""
    cert, key = pki["localhost"]
    web = f"ssl:0:privateKey={key}:certKey={cert}:interface=127.0.0.1"
    proc, _ = start_proxy(twistd, redis_server.port, "--web", web)
    line = proc.wait_for("web view: open")
    url = re.search(r"web view: open (\S+)", line).group(1)
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/", url), line
    ctx = ssl.create_default_context(cafile=str(pki["ca"].pem))
    port = int(url.rsplit(":", 1)[1].rstrip("/"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /api/connections HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Connection: close\r\n\r\n")
            assert recv_exactly(tls, 12).startswith(b"HTTP/1.1 200")
    assert proc.terminate() == 0
