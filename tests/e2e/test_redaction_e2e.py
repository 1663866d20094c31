"""Redaction end to end: ``twistd tcpplay proxy`` with console, ``--json`` and ``--pcap`` in front of
a real ``redis-server --requirepass`` and the project's HTTP server, driven by ``nc`` and
``redis-cli`` the way people type; the secret must be in none of the three outputs, the traffic
must pass unchanged, and the tshark command the proxy logs must decode the file."""

from __future__ import annotations

import hashlib
import json
import re
import select
import shlex
import subprocess
import sys

import pytest

from tests.support.capture import rows, tshark
from tests.support.net import free_port, wait_port
from tests.support.processes import need, start_proxy, start_redis, stop_process

pytestmark = pytest.mark.twistd

PASSWORD = "s3cret"


@pytest.fixture
def redis_pw(tmp_path):
    server = start_redis(str(tmp_path), PASSWORD)
    yield server
    stop_process(server.proc)


def _proxy(twistd, target, tmp_path):
    json_path, pcap_path = tmp_path / "out.jsonl", tmp_path / "out.pcap"
    proc, port = start_proxy(twistd, target, "--json", json_path, "--pcap", pcap_path,
                             "--color", "never")
    return proc, port, json_path, pcap_path


def _nc(port: int, data: bytes) -> bytes:
    """``printf DATA | nc -N 127.0.0.1 PORT``: what came back."""
    out = subprocess.run([need("nc"), "-N", "127.0.0.1", str(port)], input=data,
                         capture_output=True, timeout=20, check=True)
    return out.stdout


def _finish(proc) -> str:
    """Wait for the pair to close, stop the proxy cleanly, return its output."""
    proc.wait_for("close 127.0.0.1:")
    assert proc.terminate() == 0
    out = proc.output()
    assert "Traceback" not in out
    return out


def _hint(out: str, when: str) -> list[str]:
    """The tshark command of the log line saying ``when`` (``pcap writing to``/``pcap closed``)."""
    [line] = [line for line in out.splitlines() if when in line]
    m = re.search(r"read it with: (tshark -r \S+(?: -d \S+)*)", line)
    assert m, line
    return shlex.split(m.group(1))


def _run_hint(command: list[str], *extra) -> str:
    assert command[0] == "tshark"
    out = subprocess.run([need("tshark"), *command[1:], *extra], capture_output=True,
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


@pytest.mark.parametrize("first", [b"\r\n", b" ", b"\r\n \t\r\n"])
def test_auth_after_a_blank_line_or_a_space_is_redacted_everywhere(twistd, redis_pw, tmp_path,
                                                                     first):
    """``printf '\\r\\nAUTH s3cret\\r\\nPING\\r\\n' | nc -N``: Redis skips the blank line and
    accepts the password; detection must skip it too, and nothing may show the password."""
    proc, port, json_path, pcap_path = _proxy(twistd, redis_pw.port, tmp_path)
    sent = first + b"AUTH s3cret\r\nPING\r\n"
    assert _nc(port, sent) == b"+OK\r\n+PONG\r\n"  # Redis got the bytes unchanged
    out = _finish(proc)
    assert "protocol resp (detected)" in out
    assert 'AUTH "(redacted)" -> +OK' in out and "PING -> +PONG" in out
    assert PASSWORD not in out
    assert PASSWORD not in json_path.read_text()
    pcap = pcap_path.read_bytes()
    assert PASSWORD.encode() not in pcap
    assert sent.replace(PASSWORD.encode(), b"******") in pcap  # same length, same place


def test_http_after_a_blank_line_with_credentials_and_a_folded_line(twistd, tmp_path):
    http_port = free_port()
    twistd(["http", "--listen", str(http_port)]).wait_for("listening on")
    proc, port, json_path, pcap_path = _proxy(twistd, http_port, tmp_path)
    request = (b"\r\nGET /ip HTTP/1.1\r\nHost: x\r\nAuthorization: Basic czNjcmV0OnB3\r\n"
               b"Cookie: sid=s3cret-cookie;\r\n\tmore=s3cret-folded\r\n"
               b"Connection: close\r\n\r\n")
    reply = _nc(port, request)
    assert reply.startswith(b"HTTP/1.1 400 ")  # the server refuses obs-fold (RFC 9112 5.2)
    out = _finish(proc)
    assert "protocol http (detected)" in out and "GET /ip -> 400" in out
    outputs = (out, json_path.read_text(), pcap_path.read_bytes().decode("latin-1"))
    for text in outputs:
        for secret in ("czNjcmV0OnB3", "s3cret-cookie", "s3cret-folded"):
            assert secret not in text
    # the close line's tshark command decodes the request from the file
    command = _hint(out, "pcap closed")
    assert f"tcp.port=={http_port},http" in command
    assert rows(_run_hint(command, "-Y", "http.request", "-T", "fields", "-e",
                          "http.request.method")) == ["GET"]


def test_config_get_answer_masked_and_the_logged_tshark_command_decodes_the_file(
        twistd, redis_pw, tmp_path):
    cli = need("redis-cli")
    proc, port, json_path, pcap_path = _proxy(twistd, redis_pw.port, tmp_path)
    start_line = proc.wait_for("pcap writing to")
    got = subprocess.run([cli, "-p", str(port), "-a", PASSWORD, "--no-auth-warning", "CONFIG",
                          "GET", "requirepass"], capture_output=True, timeout=20, check=True)
    assert got.stdout.split() == [b"requirepass", PASSWORD.encode()]  # the client sees it
    subprocess.run([cli, "-p", str(port), "-a", PASSWORD, "--no-auth-warning", "SET", "k", "v"],
                   capture_output=True, timeout=20, check=True)
    proc.wait_for("SET k")
    out = _finish(proc)
    assert PASSWORD not in out and PASSWORD not in json_path.read_text()
    pcap = pcap_path.read_bytes()
    assert PASSWORD.encode() not in pcap
    assert b"$11\r\nrequirepass\r\n$6\r\n******\r\n" in pcap  # masked in place
    # the tshark command of the start-up and of the close line decodes the RESP in the file
    start, close = _hint(start_line, "pcap writing to"), _hint(out, "pcap closed")
    for command in (start, close):
        assert command[:3] == ["tshark", "-r", str(pcap_path)]
        assert f"tcp.port=={redis_pw.port},resp" in command
        decoded = _run_hint(command, "-Y", "resp")
        assert len(rows(decoded)) >= 4, decoded
    # (without it, tshark does not know the port is RESP)
    assert rows(tshark(pcap_path, "-Y", "resp")) == []


def test_acl_setuser_error_echoing_the_rule_is_masked(twistd, redis_pw, tmp_path):
    """Redis answers ``ACL SETUSER u <pw`` for a password ``u`` lacks with an error quoting the
    rule, password included."""
    cli = need("redis-cli")
    proc, port, json_path, pcap_path = _proxy(twistd, redis_pw.port, tmp_path)
    got = subprocess.run([cli, "-p", str(port), "-a", PASSWORD, "--no-auth-warning", "ACL",
                          "SETUSER", "u", "on", "<echoed-pw"], capture_output=True, timeout=20,
                         check=True)
    assert b"'<echoed-pw'" in got.stdout  # the client sees it
    out = _finish(proc)
    assert "modifier '<(redacted)'" in out
    for text in (out, json_path.read_text(), pcap_path.read_bytes().decode("latin-1")):
        assert "echoed-pw" not in text and PASSWORD not in text
    assert b"modifier '<*********'" in pcap_path.read_bytes()


def test_sentinel_s_own_password_is_masked(twistd, tmp_path):
    """A real Sentinel (``redis-server --sentinel``) told its own password with ``SENTINEL
    CONFIG SET sentinel-pass`` answers ``SENTINEL CONFIG GET *`` with it in clear."""
    conf = tmp_path / "sentinel.conf"
    port = free_port()
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n")
    sentinel = subprocess.Popen([need("redis-server"), str(conf), "--sentinel"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        proc, proxy_port, json_path, pcap_path = _proxy(twistd, port, tmp_path)
        got = subprocess.run([need("redis-cli"), "-p", str(proxy_port)], input=(
            b"SENTINEL CONFIG SET sentinel-pass sentinel-pw\nSENTINEL CONFIG GET *\n"),
            capture_output=True, timeout=20, check=True).stdout
        assert got.count(b"sentinel-pw") == 1  # the client sees it
        out = _finish(proc)
    finally:
        stop_process(sentinel)
    assert '"sentinel-pass" "(redacted)"' in out
    for text in (out, json_path.read_text(), pcap_path.read_bytes().decode("latin-1")):
        assert "sentinel-pw" not in text
    # the command's and the answer's (the console and JSON show its first 8 items)
    assert pcap_path.read_bytes().count(b"sentinel-pass\r\n$11\r\n***********\r\n") == 2


def test_acl_list_and_getuser_hide_the_password_hashes(twistd, redis_pw, tmp_path):
    """ACL LIST and ACL GETUSER (RESP2 and RESP3) answer with the SHA-256 of each password,
    which ACL SETUSER's #hash rule hides: not in the console, JSON or pcap either."""
    digest = hashlib.sha256(b"bobpw").hexdigest()
    proc, port, json_path, pcap_path = _proxy(twistd, redis_pw.port, tmp_path)
    got = _nc(port, b"AUTH s3cret\r\nACL SETUSER bob on >bobpw ~* +get\r\nACL LIST\r\n"
                    b"ACL GETUSER bob\r\nHELLO 3\r\nACL GETUSER bob\r\nPING\r\n")
    assert got.count(digest.encode()) == 3  # the client sees them
    out = _finish(proc)
    assert "user bob on #(redacted) ~*" in out and "PING -> +PONG" in out
    for text in (out, json_path.read_text(), pcap_path.read_bytes().decode("latin-1")):
        assert digest not in text and PASSWORD not in text and "bobpw" not in text
    assert hashlib.sha256(PASSWORD.encode()).hexdigest() not in out  # the default user's
    assert pcap_path.read_bytes().count(b"*" * 64) == 4  # bob's 3, default's in ACL LIST


def test_answers_inside_exec_are_masked(twistd, redis_pw, tmp_path):
    proc, port, json_path, pcap_path = _proxy(twistd, redis_pw.port, tmp_path)
    sent = (b"AUTH s3cret\r\nMULTI\r\nCONFIG GET requirepass\r\nACL SETUSER u <echoed-pw\r\n"
            b"EXEC\r\nPING\r\n")
    got = _nc(port, sent)
    assert b"s3cret" in got and b"echoed-pw" in got  # the client sees them
    out = _finish(proc)
    assert "PING -> +PONG" in out and '"requirepass", "(redacted)"' in out
    for text in (out, json_path.read_text(), pcap_path.read_bytes().decode("latin-1")):
        assert "echoed-pw" not in text and PASSWORD not in text


def test_credential_query_values_through_curl_are_redacted_in_json_console_and_pcap(
        twistd, tmp_path):
    """``curl 'http://127.0.0.1:PORT/ip?access_token=...' '.../get?access_token=...&page=2'``
    through the proxy (one connection): the server gets the token (its /get echoes it back),
    no output of the proxy has it in a request; the pcap has same-length filler where it was in
    the request lines (the echo in /get's body is the server's, kept as for headers), and
    tshark still reads the requests from it."""
    http_port = free_port()
    twistd(["http", "--listen", str(http_port)]).wait_for("listening on")
    proc, port, json_path, pcap_path = _proxy(twistd, http_port, tmp_path)
    token = "s3cretTok42"
    base = f"http://127.0.0.1:{port}"
    got = subprocess.run([need("curl"), "-sS", "--max-time", "20",
                          f"{base}/ip?access_token={token}",
                          f"{base}/get?access_token={token}&page=2"],
                         capture_output=True, timeout=30, check=True).stdout
    assert b'"args": {"access_token": "%s", "page": "2"}' % token.encode() in got  # unchanged
    out = _finish(proc)
    targets = ["/ip?access_token=(redacted)", "/get?access_token=(redacted)&page=2"]
    for target in targets:
        assert f"GET {target} -> 200" in out
    records = [r for r in map(json.loads, json_path.read_text().splitlines())
               if r["type"] == "http"]
    assert [r["target"] for r in records] == targets
    assert token not in records[1]["response_preview"]  # the echo, masked in the preview
    for text in (out, json_path.read_text()):
        assert token not in text
    pcap = pcap_path.read_bytes()
    assert pcap.count(token.encode()) == got.count(token.encode())  # only the server's echo
    filler = "*" * len(token)
    command = _hint(out, "pcap closed")
    assert rows(_run_hint(command, "-Y", "http.request", "-T", "fields", "-e",
                          "http.request.uri")) == [f"/ip?access_token={filler}",
                                                   f"/get?access_token={filler}&page=2"]


def test_api_key_headers_through_curl_are_redacted_in_json_console_and_pcap(twistd, tmp_path):
    """``curl -H 'X-Api-Key: ...' -H 'Private-Token: ...' .../headers`` through the proxy: the
    server gets both (its /headers echoes them), no output of the proxy has them but that echo
    in the pcap (the server's body), and tshark reads the masked headers."""
    http_port = free_port()
    twistd(["http", "--listen", str(http_port)]).wait_for("listening on")
    proc, port, json_path, pcap_path = _proxy(twistd, http_port, tmp_path)
    key, token = "k3yS3cret42", "t0kS3cret42"
    got = subprocess.run([need("curl"), "-sS", "--max-time", "20", "-H", f"X-Api-Key: {key}",
                          "-H", f"Private-Token: {token}", f"http://127.0.0.1:{port}/headers"],
                         capture_output=True, timeout=30, check=True).stdout
    assert key.encode() in got and token.encode() in got  # unchanged
    out = _finish(proc)
    [record] = [r for r in map(json.loads, json_path.read_text().splitlines())
                if r["type"] == "http"]
    headers = dict(map(tuple, record["request_headers"]))
    assert headers["X-Api-Key"] == headers["Private-Token"] == "(redacted)"
    for text in (out, json_path.read_text()):
        assert key not in text and token not in text
    pcap = pcap_path.read_bytes()
    for secret in (key, token):
        assert pcap.count(secret.encode()) == got.count(secret.encode())  # the server's echo
    command = _hint(out, "pcap closed")
    shown = _run_hint(command, "-Y", "http.request", "-V")
    assert f"X-Api-Key: {'*' * len(key)}" in shown and f"Private-Token: {'*' * len(token)}" in shown


# a redirecting server on a kernel-chosen loopback port (it prints the port): /login answers
# 302 with a Location carrying a token (and a Content-Location with it in the fragment, as an
# OAuth implicit grant's redirect has it), /cb answers 200 with the Referer it got echoed
_REDIRECTOR = r"""
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/login":
            self.send_response(302)
            self.send_header("Location", "/cb?code=7&access_token=" + sys.argv[1])
            self.send_header("Content-Location", "/app#id_token=" + sys.argv[1] + "&state=s")
            body = b""
        else:
            self.send_response(200)
            body = ("referer " + str(self.headers.get("Referer")) + "\n").encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@pytest.fixture
def redirector():
    """The ``_REDIRECTOR`` process and its port; its Location's token is ``LOC_TOKEN``."""
    proc = subprocess.Popen([sys.executable, "-c", _REDIRECTOR, LOC_TOKEN],
                            stdout=subprocess.PIPE)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        assert ready, "the redirecting server did not start"
        yield int(proc.stdout.readline())
    finally:
        stop_process(proc)
        proc.stdout.close()


LOC_TOKEN = "l0cTok42xyz"


def test_url_header_query_values_through_curl_are_redacted_in_json_console_and_pcap(
        twistd, tmp_path, redirector):
    """``curl -L -e 'http://h/page?access_token=...' http://PROXY/login``: the request's
    Referer (client to server) and the 302's Location (server to client) carry tokens; the
    client and server see them, no output of the proxy does (``(redacted)`` in the records'
    headers, same-length filler in the pcap), and tshark reads the masked values from it."""
    json_path, pcap_path = tmp_path / "out.jsonl", tmp_path / "out.pcap"
    proc, port = start_proxy(twistd, redirector, "--decode", "http", "--json", json_path,
                             "--pcap", pcap_path, "--color", "never", "-v")
    ref_token = "r3fTok42abc"
    referer = f"http://h/page?access_token={ref_token}&x=1"
    got = subprocess.run([need("curl"), "-sS", "--max-time", "20", "-L", "-e", referer,
                          f"http://127.0.0.1:{port}/login"],
                         capture_output=True, timeout=30, check=True).stdout
    assert got == f"referer {referer}\n".encode()  # the server got the Referer unchanged
    out = _finish(proc)
    assert "GET /login -> 302" in out and "GET /cb?code=7&access_token=(redacted) -> 200" in out
    records = [r for r in map(json.loads, json_path.read_text().splitlines())
               if r["type"] == "http"]
    login = records[0]
    assert ["Referer", "http://h/page?access_token=(redacted)&x=1"] in login["request_headers"]
    assert ["Location", "/cb?code=7&access_token=(redacted)"] in login["response_headers"]
    assert ["Content-Location", "/app#id_token=(redacted)&state=s"] in login["response_headers"]
    for text in (out, json_path.read_text()):
        assert ref_token not in text and LOC_TOKEN not in text
    pcap = pcap_path.read_bytes()
    # the Location's token, and /cb's target's; the Referer's but in /cb's body (the server's
    # echo, kept as for headers)
    assert pcap.count(LOC_TOKEN.encode()) == 0
    assert pcap.count(ref_token.encode()) == 1 and pcap.count(got) == 1
    filler = "*" * len(ref_token)
    assert f"Referer: http://h/page?access_token={filler}&x=1\r\n".encode() in pcap
    assert f"Location: /cb?code=7&access_token={'*' * len(LOC_TOKEN)}\r\n".encode() in pcap
    assert f"Content-Location: /app#id_token={'*' * len(LOC_TOKEN)}&state=s\r\n".encode() in pcap
    command = _hint(out, "pcap closed")
    assert rows(_run_hint(command, "-Y", "http.location", "-T", "fields", "-e",
                          "http.location")) == [f"/cb?code=7&access_token={'*' * len(LOC_TOKEN)}"]
