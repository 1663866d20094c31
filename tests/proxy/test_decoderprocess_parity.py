"""``--decode-process`` writes what the proxy writes without it: the same traffic (redis-cli with
AUTH and HELLO AUTH, redis-benchmark's pipelines, a 1 MB value through redis-py, a pair closed by
reset, curl with a password) through a proxy with and one without the flag gives the same JSON
records and the same pcap payload bytes, secrets redacted alike (twistd, real peers)."""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess

import dpkt
import pytest

from tests.support.net import free_port
from tests.support.processes import need, start_proxy, start_redis, stop_process

pytestmark = pytest.mark.twistd

PASSWORD = "s3cret-pw"
# what changes from one run to the next: times, pair ids, the client's and the proxy's ports
_VARYING = {"ts", "latency", "pair", "client", "listen", "duration", "upstream_local",
            "server_port"}
_DATE = re.compile(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT")  # an HTTP Date header's


def _redis_traffic(port: int) -> None:
    """One client after the other, so the pairs come in the same order in both runs."""
    import redis

    cli, bench = need("redis-cli"), need("redis-benchmark")

    def run(*args, stdin=None):
        return subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=True)

    run(cli, "-p", str(port), "--no-auth-warning", "-a", PASSWORD, "set", "k", "v")
    run(cli, "-p", str(port), "--no-auth-warning", "-3", "hello", "3", "auth", "default",
        PASSWORD)
    run(bench, "-p", str(port), "-a", PASSWORD, "-q", "-t", "set,get,lpush,lrange_100", "-n",
        "2000", "-P", "16", "-c", "1")
    client = redis.Redis(port=port, password=PASSWORD, socket_timeout=20)
    client.set("big", b"v" * (1024 * 1024))
    assert len(client.get("big")) == 1024 * 1024
    client.close()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"AUTH {PASSWORD}\r\nPING\r\n".encode())
        got = b""
        while not got.endswith(b"+PONG\r\n"):
            got += s.recv(100)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


def _http_traffic(port: int) -> None:
    subprocess.run([need("curl"), "-sS", "--max-time", "20", "-u", f"user:{PASSWORD}",
                    "-H", "Host: tcpplay.test",  # not the proxy's port
                    f"http://127.0.0.1:{port}/ip", f"http://127.0.0.1:{port}/get?token={PASSWORD}"],
                   capture_output=True, timeout=30, check=True)


def _records(path) -> list[list[dict]]:
    """Each pair's records, pairs in the order they were accepted (one pair's close may come
    after the next one's open, as the clients' and servers' FINs reach the proxy)."""
    pairs: dict[int, list] = {}
    for line in path.read_text().splitlines():
        record = json.loads(_DATE.sub("DATE", line))
        pairs.setdefault(record["pair"], []).append(
            {k: v for k, v in record.items() if k not in _VARYING})
    return [pairs[pair_id] for pair_id in sorted(pairs)]


def _streams(path, server_port: int) -> list[tuple]:
    """Each TCP conversation of a pcap, in order of its first segment: the client's bytes, the
    server's bytes, and the flags (FIN, RST) each side sent."""
    streams: dict[int, list] = {}
    with open(path, "rb") as f:
        for _, frame in dpkt.pcap.Reader(f):
            tcp = dpkt.ethernet.Ethernet(frame).data.data
            from_client = tcp.dport == server_port
            client = tcp.sport if from_client else tcp.dport
            stream = streams.setdefault(client, ["", "", set()])
            stream[0 if from_client else 1] += _DATE.sub("DATE", tcp.data.decode("latin-1"))
            stream[2] |= {(from_client, flag) for flag in (dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST)
                          if tcp.flags & flag}
    return [(c2s, s2c, sorted(flags)) for c2s, s2c, flags in streams.values()]


def _through(twistd, tmp_path, name: str, server: str, target: int, *flags):
    """Start ``server`` afresh on ``target`` (its answers, a HELLO's client id too, are those of a
    first run), then a proxy in front of it, drive the traffic, stop both."""
    if server == "redis":
        peer = start_redis(str(tmp_path), PASSWORD, port=target).proc
        traffic = _redis_traffic
    else:
        peer = twistd(["http", "--listen", str(target)])
        peer.wait_for("listening on")
        peer = peer.proc
        traffic = _http_traffic
    json_path, pcap_path = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.pcap"
    try:
        proc, port = start_proxy(twistd, target, "--json", json_path, "--pcap", pcap_path,
                                 "--quiet", *flags)
        traffic(port)
        assert proc.terminate() == 0, proc.output()[-3000:]
        assert "Traceback" not in proc.output()
    finally:
        stop_process(peer)
    return _records(json_path), _streams(pcap_path, target)


@pytest.mark.parametrize("server", ["redis", "http"])
def test_the_child_writes_what_the_proxy_writes(twistd, tmp_path, server):
    target = free_port()
    records, streams = _through(twistd, tmp_path, "here", server, target)
    in_child, child_streams = _through(twistd, tmp_path, "child", server, target,
                                       "--decode-process")
    assert [len(pair) for pair in records] == [len(pair) for pair in in_child]
    for i, (here, there) in enumerate(zip(records, in_child, strict=True)):
        for j, (record, child_record) in enumerate(zip(here, there, strict=True)):
            assert record == child_record, (i, j)  # the first that differs, not a 10,000-line diff
    assert streams == child_streams
    # requests masked (an echoing body's copy is masked in the console and JSON only)
    assert all(PASSWORD not in c2s for c2s, _, _ in child_streams)
    assert PASSWORD not in json.dumps(in_child)
    kinds = {r["type"] for pair in in_child for r in pair}
    assert kinds >= {"open", "close", server}
