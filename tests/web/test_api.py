"""The web view's JSON API on real sockets: ``twistd tcpplay proxy --web`` in front of a real
redis-server, redis-cli as the client, curl reading the API; redaction in every answer; the token
off loopback."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import time

import pytest

from tests.support.capture import tshark
from tests.support.processes import Twistd, need, start_proxy, start_redis, stop_process
from tests.support.waiting import wait_until
from tests.support.web import web_url

pytestmark = pytest.mark.twistd

PASSWORD = "web-s3cret-pw-4711"


def curl(url: str, *extra: str) -> tuple[int, dict | str]:
    """GET ``url`` with curl: (status, parsed JSON or text)."""
    out = subprocess.run([need("curl"), "-sS", "-w", "\n%{http_code}", *extra, url],
                         capture_output=True, timeout=20, check=True, text=True)
    body, _, status = out.stdout.rpartition("\n")
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status), body


def redis_cli(port: int, *args: str, password: str | None = None) -> str:
    argv = [need("redis-cli"), "-p", str(port)]
    if password:
        argv += ["-a", password, "--no-auth-warning"]
    out = subprocess.run(argv + list(args), capture_output=True, timeout=20, check=True,
                         text=True)
    return out.stdout.strip()


class WebProxy:
    def __init__(self, proc: Twistd, port: int, url: str):
        self.proc, self.port = proc, port
        self.base = url.split("?")[0].rstrip("/")

    def api(self, path: str, *extra: str):
        return curl(self.base + path, *extra)

    def connection_with(self, text: str) -> dict:
        """The first connection whose exchanges have a row containing ``text`` (waits)."""

        def find():
            _, listing = self.api("/api/connections")
            for c in listing["connections"]:
                _, one = self.api(f"/api/connections/{c['id']}")
                if any(text in e["request"] + e["reply"] for e in one["exchanges"]):
                    return one
            return None

        return wait_until(find, 10, f"a row with {text!r}", interval=0.1)


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory):
    server = start_redis(str(tmp_path_factory.mktemp("redis")), password=PASSWORD)
    yield server
    stop_process(server.proc)


@pytest.fixture(scope="module")
def web(secured_redis):
    started: list[Twistd] = []

    def start(args):
        started.append(Twistd(args))
        return started[-1]

    try:
        proc, port = start_proxy(start, secured_redis.port, "--web", "tcp:0:interface=127.0.0.1",
                                 "--quiet")
        yield WebProxy(proc, port, web_url(proc))
        assert proc.terminate() == 0, proc.output()[-2000:]
    finally:
        for t in started:
            if t.proc.poll() is None:
                t.proc.kill()
                t.proc.wait(5)


def test_a_redis_cli_set_is_listed_with_its_exchange_and_exact_bytes(web):
    assert redis_cli(web.port, "set", "foo", "bar", password=PASSWORD) == "OK"
    one = web.connection_with('set foo "bar"')
    c = one["connection"]
    assert c["protocol"] == "resp" and c["client"].startswith("127.0.0.1:")
    assert c["target"].startswith("tcp:host=127.0.0.1:port=")
    wait_until(lambda: web.api(f"/api/connections/{c['id']}")[1]["connection"]["state"]
               == "closed", 10, "the close", interval=0.1)
    _, one = web.api(f"/api/connections/{c['id']}")
    c = one["connection"]
    assert (c["how"], c["closed_by"]) == ("fin", "client")
    row = [e for e in one["exchanges"] if e["request"] == 'set foo "bar"'][0]
    assert row["reply"] == "+OK" and row["latency"] > 0 and not row["error"]
    assert (row["request_size"], row["reply_size"]) == (31, 5)
    _, stream = web.api(f"/api/connections/{c['id']}/stream")
    c2s = b"".join(base64.b64decode(ch["base64"]) for ch in stream["chunks"]
                   if ch["direction"] == "c2s" and "mark" not in ch)
    s2c = b"".join(base64.b64decode(ch["base64"]) for ch in stream["chunks"]
                   if ch["direction"] == "s2c" and "mark" not in ch)
    assert c2s.endswith(b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n")
    assert s2c == b"+OK\r\n+OK\r\n"  # AUTH's, then SET's
    assert [ch["mark"] for ch in stream["chunks"] if "mark" in ch] == ["fin", "fin", "close"]
    assert c2s.count(b"*") >= len(PASSWORD)  # AUTH's password: same-length filler
    _, text = web.api(f"/api/connections/{c['id']}/stream?encoding=text")
    assert "set\\r\\n\n$3\\r\\n\nfoo" in "".join(ch.get("text", "") for ch in text["chunks"])
    # incremental reads
    last = stream["chunks"][-1]["n"]
    assert web.api(f"/api/connections/{c['id']}/stream?after={last}")[1]["chunks"] == []
    assert web.api(f"/api/connections/{c['id']}?after={row['index']}")[1]["exchanges"] == []


def test_errors_are_json_with_their_status(web):
    assert web.api("/api/connections/99999") == (
        404, {"error": "no connection 99999 (unknown or evicted)", "status": 404})
    status, body = web.api("/api/connections/abc")
    assert status == 404 and body["status"] == 404
    status, body = web.api("/api/connections?since=x")
    assert status == 400 and "since" in body["error"]
    status, body = web.api("/api/nothing")
    assert status == 404 and body["error"]
    status, body = web.api("/api/connections/1/stream?encoding=utf-7")
    assert status in (400, 404)
    status, body = web.api("/api/connections", "-X", "POST")
    assert status == 405 and body["status"] == 405


def test_the_password_is_in_no_answer_of_the_api(web):
    redis_cli(web.port, "ping", password=PASSWORD)
    redis_cli(web.port, "config", "get", "requirepass", password=PASSWORD)
    redis_cli(web.port, "auth", "default", PASSWORD)
    web.connection_with("requirepass")
    secret = PASSWORD.encode()
    _, listing = web.api("/api/connections")
    answers = [json.dumps(listing)]
    for c in listing["connections"]:
        for path in (f"/api/connections/{c['id']}", f"/api/connections/{c['id']}/stream",
                     f"/api/connections/{c['id']}/stream?encoding=text"):
            answers.append(json.dumps(web.api(path)[1]))
            if path.endswith("/stream"):
                for ch in web.api(path)[1]["chunks"]:
                    if "base64" in ch:
                        assert secret not in base64.b64decode(ch["base64"])
    events = subprocess.run([need("curl"), "-sS", "-N", "--max-time", "1",
                             web.base + "/api/events"], capture_output=True, text=True,
                            timeout=20).stdout
    assert "data: " in events
    answers.append(events)
    for answer in answers:
        assert PASSWORD not in answer
    assert "(redacted)" in "".join(answers) or "*" * len(PASSWORD) in "".join(answers)


def test_events_are_batched_at_most_five_a_second(web):
    stop = time.monotonic() + 1.5
    proc = subprocess.Popen([need("curl"), "-sS", "-N", "--max-time", "1.5",
                             web.base + "/api/events"], stdout=subprocess.PIPE, text=True)
    while time.monotonic() < stop:  # a change in every tick
        redis_cli(web.port, "ping", password=PASSWORD)
    out = proc.communicate(timeout=20)[0]
    messages = [line for line in out.splitlines() if line.startswith("data: ")]
    assert 2 <= len(messages) <= 1 + 8  # the first at once, then at most one per 0.2 s tick
    ids = [line for line in out.splitlines() if line.startswith("id: ")]
    assert len(ids) == len(messages) and all(re.fullmatch(r"id: [0-9a-f]+-\d+", i) for i in ids)
    first = json.loads(messages[0][6:])
    assert first["resync"] and first["connections"]


def test_off_loopback_every_request_needs_the_token(twistd, redis_server):
    proc, _ = start_proxy(twistd, redis_server.port, "--web", "tcp:0", "--quiet")
    url = web_url(proc)
    token = re.search(r"\?token=(\S+)", url).group(1)
    base = url.split("?")[0].rstrip("/")
    for path in ("/", "/api/connections", "/static/app.js", "/api/events"):
        status, body = curl(base + path)
        assert status == 401 and body["status"] == 401, path
    assert curl(base + "/api/connections?token=wrong")[0] == 401
    assert curl(base + f"/api/connections?token={token}")[0] == 200
    assert curl(base + "/api/connections", "-H", f"X-Tcpplay-Token: {token}")[0] == 200
    assert curl(base + "/api/connections", "-H", f"Authorization: Bearer {token}")[0] == 200
    status, page = curl(base + f"/?token={token}")
    assert status == 200 and "<script" in page
    # the page's assets are asked for with the token (a browser sends no header for them)
    assets = re.findall(r'(?:src|href)="(static/[^"]+)"', page)
    assert sorted(assets) == [f"static/app.css?token={token}", f"static/app.js?token={token}",
                              f"static/plots.js?token={token}"]
    for asset in assets:
        assert curl(f"{base}/{asset}")[0] == 200
    assert proc.terminate() == 0


def test_the_page_and_its_assets_come_from_the_package_and_name_no_other_site(web):
    status, page = web.api("/")
    assert status == 200 and 'src="static/app.js"' in page
    for name in ("app.js", "app.css", "plots.js"):
        status, text = web.api(f"/static/{name}")
        assert status == 200 and text
        assert not re.search(r"https?://", text), name  # nothing fetched from elsewhere
    assert not re.search(r"https?://", page)
    headers = subprocess.run([need("curl"), "-sS", "-D", "-", "-o", "/dev/null", web.base + "/"],
                             capture_output=True, text=True, timeout=20).stdout.lower()
    assert "content-security-policy: default-src 'none'" in headers
    assert web.api("/static/../../pyproject.toml", "--path-as-is")[0] == 404
    assert web.api("/static/capture.py")[0] == 404  # only the page's files


def test_filters_list_only_the_connections_and_exchanges_that_match(web):
    redis_cli(web.port, "blpop", "filter-none", "0.1", password=PASSWORD)  # ~100 ms: slow
    redis_cli(web.port, "rpush", "filter-list", "x", password=PASSWORD)
    redis_cli(web.port, "get", "filter-list", password=PASSWORD)  # WRONGTYPE: an error
    slow = web.connection_with("blpop filter-none")["connection"]["id"]
    wrong = web.connection_with("get filter-list")["connection"]["id"]

    def ids(query):
        status, listing = web.api("/api/connections?" + query)
        assert status == 200
        return {c["id"] for c in listing["connections"]}

    assert slow in ids("cmd=BLPOP") and wrong not in ids("cmd=BLPOP")
    assert slow in ids("slow=50") and wrong not in ids("slow=50")
    assert wrong in ids("errors=1&cmd=g*") and slow not in ids("errors=1")
    assert {slow, wrong} <= ids("proto=resp&client=127.0.0.1:*") and not ids("proto=http")
    _, one = web.api(f"/api/connections/{wrong}?errors=1")
    assert [(e["request"], e["error"]) for e in one["exchanges"]] == [("get filter-list", True)]
    _, one = web.api(f"/api/connections/{slow}?cmd=auth")
    assert [e["request"].split()[0] for e in one["exchanges"]] == ["AUTH"]
    status, answer = web.api("/api/connections?slow=soon")
    assert status == 400 and answer["error"].startswith("slow:")


# -- downloading one connection: .pcap read back by tshark, .jsonl line by line


def download(web, path: str, target) -> dict:
    """GET ``path`` into the file ``target``: the response headers (lower-case names)."""
    out = subprocess.run([need("curl"), "-sS", "-D", "-", "-o", str(target), web.base + path],
                         capture_output=True, timeout=20, check=True, text=True)
    lines = out.stdout.splitlines()
    headers = {"status": lines[0].split()[1]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


def test_one_connection_downloads_as_pcap_and_json_lines(web, secured_redis, tmp_path):
    assert redis_cli(web.port, "set", "dlkey", "dlvalue", password=PASSWORD) == "OK"
    cid = web.connection_with('set dlkey "dlvalue"')["connection"]["id"]
    wait_until(lambda: web.api(f"/api/connections/{cid}")[1]["connection"]["state"]
               == "closed", 10, "the close", interval=0.1)

    pcap = tmp_path / "one.pcap"
    headers = download(web, f"/api/connections/{cid}.pcap", pcap)
    assert headers["status"] == "200"
    assert headers["content-disposition"] == f'attachment; filename="tcpplay-{cid}.pcap"'
    assert "x-tcpplay-evicted" not in headers  # nothing evicted
    payloads = tshark(pcap, "-T", "fields", "-e", "tcp.payload")
    clear = b"".join(bytes.fromhex(h) for h in payloads.split())
    assert b"*3\r\n$3\r\nset\r\n$5\r\ndlkey\r\n$7\r\ndlvalue\r\n" in clear
    assert PASSWORD.encode() not in clear and b"*" * len(PASSWORD) in clear
    resp = tshark(pcap, "-d", f"tcp.port=={secured_redis.port},resp", "-Y", "resp")
    assert resp.strip()
    flags = tshark(pcap, "-T", "fields", "-e", "tcp.flags.fin")
    assert flags.split().count("1") == 2  # both FINs

    jsonl = tmp_path / "one.jsonl"
    headers = download(web, f"/api/connections/{cid}.jsonl", jsonl)
    assert headers["content-disposition"] == f'attachment; filename="tcpplay-{cid}.jsonl"'
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert records[0]["type"] == "open" and records[-1]["type"] == "close"
    assert all(r["pair"] == cid for r in records)
    sets = [r for r in records if r["type"] == "redis" and r["request"] == 'set dlkey "dlvalue"']
    assert sets and sets[0]["reply"] == "+OK"
    assert (records[-1]["how"], records[-1]["closed_by"]) == ("fin", "client")
    assert PASSWORD not in jsonl.read_text()


def test_unknown_downloads_are_json_404s(web):
    for path in ("/api/connections/99999.pcap", "/api/connections/99999.jsonl",
                 "/api/connections/x.pcap"):
        status, body = web.api(path)
        assert status == 404 and body["status"] == 404, path
