"""The web view served by the decoder child (``--decode-process``, the default on more than one
core): the proxy binds ``--web`` (a busy port fails its start, naming the flag), the child
adopts the socket and serves the view; the view's close buttons reach the proxy through the
child's log pipe; a child that dies takes the view with it (its port refuses, the proxy
forwards on); a UNIX socket is handed over as a TCP one is."""

from __future__ import annotations

import os
import signal
import socket
import subprocess

import pytest

from tests.support.processes import child_of, need, start_proxy
from tests.support.waiting import wait_until
from tests.support.web import ACTION, api_get, api_post, web_url

CHILD = "decoding in a child process"


@pytest.mark.twistd
def test_the_childs_view_lists_the_pairs_and_its_reset_reaches_the_proxy(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--decode-process", "--web",
                             "tcp:0:interface=127.0.0.1", "--color", "never")
    proc.wait_for(CHILD)
    base = web_url(proc).split("?")[0].rstrip("/")
    # the socket's start line names the view, not the proxy's placeholder factory's class
    assert "web view (served by the decoder process) starting on" in proc.output()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
    assert sock.recv(100) == b"+PONG\r\n"

    def listed():
        rows = api_get(f"{base}/api/connections")["connections"]
        return rows[0] if rows and rows[0]["exchanges"] == 1 else None

    row = wait_until(listed, timeout=10, what="the pair in the child's view")
    assert (row["protocol"], row["state"], row["bytes_c2s"]) == ("resp", "open", 14)
    status, answer = api_post(f"{base}/api/connections/{row['id']}/close", '{"how": "rst"}',
                              *ACTION)
    assert status == 202, answer
    with pytest.raises(ConnectionResetError):
        while sock.recv(100):  # the proxy's reset, asked by the child
            pass
    # the proxy's log says the close; the child's console shows it came back through the pipe
    assert "closed by web view (rst)" in proc.wait_for(f"proxy #{row['id']} closed")
    assert proc.wait_for("(reset by web view)").startswith(f"#{row['id']} close ")
    assert "close pair" not in proc.output()  # a command, not a log line
    sock.close()
    assert proc.terminate() == 0, proc.output()[-2000:]


@pytest.mark.twistd
def test_a_busy_web_port_fails_the_start_naming_the_flag(twistd, redis_server):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = taken.getsockname()[1]
    try:
        proc = twistd(["proxy", "--listen", "tcp:0:interface=127.0.0.1", "--target",
                       str(redis_server.port), "--decode-process", "--web", str(busy)])
        assert proc.proc.wait(20) == 1
        proc._reader.join(5)
        assert f"cannot listen on --web tcp:{busy}:interface=127.0.0.1" in proc.output()
        assert CHILD not in proc.output()  # refused before any child
    finally:
        taken.close()


@pytest.mark.twistd
def test_a_killed_child_takes_the_view_and_the_proxy_forwards_on(twistd, redis_server):
    proc, port = start_proxy(twistd, redis_server.port, "--decode-process", "--web",
                             "tcp:0:interface=127.0.0.1")
    proc.wait_for(CHILD)
    url = web_url(proc)
    web_port = int(url.rsplit(":", 1)[1].split("/")[0])
    subprocess.run([need("curl"), "-sS", "-o", os.devnull, url], timeout=20, check=True)
    os.kill(child_of(proc.proc.pid), signal.SIGKILL)
    assert "and the web view is gone" in proc.wait_for("decoder process exited")
    with pytest.raises(ConnectionRefusedError):  # refused, not left waiting in the backlog
        socket.create_connection(("127.0.0.1", web_port), timeout=5)
    cli = subprocess.run([need("redis-cli"), "-p", str(port), "ping"], capture_output=True,
                         timeout=10)
    assert cli.stdout == b"PONG\n"
    assert proc.terminate() == 0, proc.output()[-2000:]


@pytest.mark.twistd
def test_a_unix_socket_view_is_handed_to_the_child_too(twistd, redis_server, tmp_path):
    path = tmp_path / "web.sock"
    proc, port = start_proxy(twistd, redis_server.port, "--decode-process", "--web",
                             f"unix:{path}")
    proc.wait_for(CHILD)
    proc.wait_for("web view: open")
    cli = subprocess.run([need("redis-cli"), "-p", str(port), "set", "k", "v"],
                         capture_output=True, timeout=10)
    assert cli.stdout == b"OK\n"

    def listed():
        rows = api_get("http://localhost/api/connections", "--unix-socket",
                       str(path))["connections"]
        return rows if rows and rows[0]["state"] == "closed" else None

    rows = wait_until(listed, timeout=10, what="the pair in the view on the UNIX socket")
    assert [r["exchanges"] for r in rows] == [1]
    assert proc.terminate() == 0, proc.output()[-2000:]
    # the proxy owns the socket: its close at the stop removes the file and its lock (a lock
    # left behind names the proxy's pid, which a container's next start may have again)
    assert os.listdir(tmp_path) == []  # the lock is a symbolic link to a pid: not exists()
    assert "web stopped listening" in proc.output()
    assert "Traceback" not in proc.output()


@pytest.mark.pure
def test_the_childs_commands_close_only_what_they_name():
    """``DecoderProcess.command``: a close with a pair and fin/rst reaches every factory; any
    other event from the pipe is ignored."""
    from playground.proxy.decoderprocess import DecoderProcess

    class Factory:
        def __init__(self):
            self.closed = []

        def close_pair(self, pair_id, how, by):
            self.closed.append((pair_id, how, by))
            return True

    process = DecoderProcess({"decode": "resp"}, reactor=object())
    factory = Factory()
    process.attached(factory)
    for event in ({"command": "close", "pair": "x", "how": "rst"},
                  {"command": "close", "pair": 3, "how": "boom"},
                  {"command": "open", "pair": 3, "how": "rst"},
                  {"command": "close", "how": "rst"},
                  {"command": "close", "pair": None, "how": "fin"}):
        process.command(event)
    assert factory.closed == []
    process.command({"command": "close", "pair": 3, "how": "rst", "by": "web view"})
    process.command({"command": "close", "pair": 4, "how": "fin"})
    assert factory.closed == [(3, "rst", "web view"), (4, "fin", "web view")]


@pytest.mark.twistd
def test_the_token_is_not_in_the_childs_command_line(twistd, redis_server):
    """Any user may read a process's command line; the child's options (the web view's token
    among them) are in its environment, which only its owner may read."""
    token = "s3cret-web-token"
    proc, port = start_proxy(twistd, redis_server.port, "--decode-process", "--web",
                             "tcp:0:interface=127.0.0.1", "--web-token", token)
    proc.wait_for(CHILD)
    url = web_url(proc)
    with open(f"/proc/{child_of(proc.proc.pid)}/cmdline", "rb") as f:
        cmdline = f.read()
    assert b"decoderworker" in cmdline and token.encode() not in cmdline
    base = url.split("?")[0].rstrip("/")
    status = [subprocess.run([need("curl"), "-sS", "-o", os.devnull, "-w", "%{http_code}", u],
                             capture_output=True, timeout=20, text=True).stdout
              for u in (f"{base}/api/connections", f"{base}/api/connections?token={token}")]
    assert status == ["401", "200"]
    assert proc.terminate() == 0, proc.output()[-2000:]
