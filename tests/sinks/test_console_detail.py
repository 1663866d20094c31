"""The console's detail levels: HTTP headers and bodies (-v, -vv), the lifecycle lines
(--lifecycle), and big Redis replies (COMMAND DOCS, aggregates) kept to one short line.

Pure formatting tests on records first, then the chain's redaction under -vv, then the real
``twistd tcpplay proxy`` with curl in front of ``twistd tcpplay http`` and redis-cli in front of
redis-server.
"""

from __future__ import annotations

import io
import re
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock

from playground.codec import values as resp
from playground.decode import records as R
from playground.decode.chain import Chain
from playground.proxy.decoding import build
from playground.proxy.observer import CLIENT_TO_SERVER as C2S
from playground.proxy.observer import SERVER_TO_CLIENT as S2C
from playground.proxy.observer import Endpoint, PairInfo
from playground.proxy.service import Options
from playground.sinks.console import (
    LINE_PREVIEW,
    MAX_AGGREGATE,
    ConsoleFormatter,
    ConsoleSink,
    command_summary,
    format_value,
)
from tests.support.net import free_port
from tests.support.paths import TWISTD
from tests.support.processes import need, start_proxy

JSON_BODY = b'{"args": {}, "url": "http://h/get"}\n'


def http(req_headers=(), resp_headers=(), req_preview=b"", resp_preview=JSON_BODY,
         req_size=None, resp_size=None, status=200):
    return R.HttpExchange(
        4, 1.0, "127.0.0.1:5555", b"POST" if req_preview else b"GET", b"/get", b"HTTP/1.1",
        status, b"OK", 0.0012, tuple(req_headers), tuple(resp_headers),
        len(req_preview) if req_size is None else req_size,
        len(resp_preview) if resp_size is None else resp_size,
        b"application/json", req_preview, resp_preview)


def safe(lines):
    """Every character printable: nothing from the traffic can drive the terminal."""
    for line in lines:
        assert line.isprintable(), repr(line)


# -- the HTTP detail levels --------------------------------------------------------------------

@pytest.mark.pure
def test_line_has_a_short_text_preview():
    f = ConsoleFormatter(False, 200)
    assert f.lines(http()) == [
        '#4 127.0.0.1:5555 GET /get -> 200 OK application/json 36 B '
        '"{\\"args\\": {}, \\"url\\": \\"http://h/get\\"}\\n" (1.20 ms)']
    body = b"x" * 1000
    [line] = f.lines(http(resp_preview=body[:200], resp_size=1000))
    assert f' "{"x" * LINE_PREVIEW}..." (1.20 ms)' in line
    [line] = f.lines(http(resp_preview=b"\x89PNG\r\n\x1a\n\x00\x00", resp_size=5000))
    assert line.endswith("5000 B (1.20 ms)")  # no preview of a binary body
    # --max-value below the line's preview bounds it too
    [line] = ConsoleFormatter(False, 5).lines(http())
    assert '36 B "{\\"arg..." (1.20 ms)' in line


@pytest.mark.pure
def test_verbose_shows_headers_escaped_and_bounded():
    headers = ((b"Host", b"h"), (b"X-Evil", b"\x1b]0;pwned\x07\r\nInjected: 1"),
               (b"X-Long", b"v" * 500), (b"Authorization", b"(redacted)"))
    r = http(headers, ((b"Content-Type", b"application/json"),))
    f = ConsoleFormatter(False, 200, verbose=1)
    lines = f.lines(r)
    assert lines[1:] == [
        "    > Host: h",
        "    > X-Evil: \\x1b]0;pwned\\x07\\r\\nInjected: 1",
        "    > X-Long: " + "v" * 200 + "... (500 bytes)",
        "    > Authorization: (redacted)",
        "    < Content-Type: application/json",
    ]
    safe(lines)
    assert ConsoleFormatter(False, 200).lines(r) == lines[:1]  # level 0: the line alone


@pytest.mark.pure
def test_very_verbose_shows_bodies():
    f = ConsoleFormatter(False, 200, verbose=2)
    r = http(((b"Content-Length", b"7"),), ((b"Content-Length", b"36"),),
             req_preview=b"a=1&b=2")
    assert f.lines(r)[1:] == [
        "    > Content-Length: 7",
        "    >",
        "    > a=1&b=2",
        "    < Content-Length: 36",
        "    <",
        '    < {"args": {}, "url": "http://h/get"}',
    ]
    # cut at --max-value with the body's length; lines split, CR LF ends dropped, tabs escaped
    text = b"line one\r\nline\ttwo\r\n" + b"z" * 300
    lines = ConsoleFormatter(False, 40, verbose=2).lines(http(resp_preview=text[:200],
                                                              resp_size=5000))
    assert lines[-5:] == ["    <", "    < line one", "    < line\\ttwo", "    < " + "z" * 20,
                          "    < ... (5000 bytes)"]
    # a body with terminal escapes is not text: shown as a hexdump
    lines = f.lines(http(resp_preview=b"\x1b]0;pwned\x07", resp_size=9))
    assert lines[-1] == ("    < 00000000  1b 5d 30 3b 70 77 6e 65  64 07"
                         "                    |.]0;pwned.|")
    # binary: a hexdump of the preview
    lines = f.lines(http(resp_preview=b"\x89PNG\r\n\x1a\n" + bytes(range(24)), resp_size=9000))
    assert lines[-4:] == [
        "    <",
        "    < 00000000  89 50 4e 47 0d 0a 1a 0a  00 01 02 03 04 05 06 07  |.PNG............|",
        "    < 00000010  08 09 0a 0b 0c 0d 0e 0f  10 11 12 13 14 15 16 17  |................|",
        "    < ... (9000 bytes)",
    ]
    # text cut inside a UTF-8 character is still text
    lines = f.lines(http(resp_preview="héé".encode()[:4], resp_size=100))
    assert lines[-2:] == ["    < hé", "    < ... (100 bytes)"]


@pytest.mark.memory
def test_lines_end_as_whole_lines():
    f = ConsoleFormatter(False, 200, verbose=2)
    out = io.BytesIO()
    sink = ConsoleSink(out=out, color="never", reactor=MemoryReactorClock(), verbose=2)
    sink.startService()
    r = http(((b"A", b"1"),), req_preview=b"x")
    sink.emit(r)
    sink.stopService()
    assert out.getvalue().decode() == "\n".join(f.lines(r)) + "\n"


@pytest.mark.pure
@given(st.lists(st.tuples(st.binary(max_size=300), st.binary(max_size=300)), max_size=5),
       st.binary(max_size=300), st.binary(max_size=300), st.integers(0, 3),
       st.sampled_from([0, 1, 16, 200]))
def test_any_traffic_stays_terminal_safe_and_bounded(headers, req, res, verbose, limit):
    f = ConsoleFormatter(False, limit, verbose=verbose)
    preview = max(limit, 64)  # what the chain keeps of a body
    r = http(headers, headers, req[:preview], res[:preview], len(req) * 3, len(res) * 3)
    lines = f.lines(r)
    safe(lines)
    bound = (limit or 300) * 10 + 200  # an escape is at most 10 characters per 4 bytes
    assert all(len(line) <= bound for line in lines)
    assert len(lines) <= 1 + 2 * (len(headers) + 2 + (limit or 300) + 2)


@pytest.mark.pure
def test_colours_mark_directions():
    lines = ConsoleFormatter(True, 200, verbose=2).lines(http(((b"A", b"1"),), ((b"B", b"2"),),
                                                             req_preview=b"q"))
    assert "\x1b[33m>\x1b[0m A: 1" in lines[1]
    assert any("\x1b[35m<\x1b[0m B: 2" in line for line in lines)


# -- redaction under -vv: the chain's records -----------------------------------------------------

class ListSink:
    def __init__(self):
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.mark.pure
def test_secrets_never_shown_at_any_level():
    req = (b"POST /anything HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cr3t-token\r\n"
           b"Cookie: sid=s3cr3t-cookie\r\nContent-Length: 12\r\n\r\ntok=s3cr3t-x")
    body = b'{"headers": {"Authorization": "Bearer s3cr3t-token"}}'
    res = (b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=s3cr3t-set\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(PairInfo(1, Endpoint("127.0.0.1", 5), Endpoint("127.0.0.1", 6), "t",
                               Endpoint("127.0.0.1", 7)), 0.0)
    chain.data(1, C2S, req, 1.0)
    chain.data(1, S2C, res, 2.0)
    chain.pair_closed(1, {}, 3.0)
    [ex] = [r for r in sink.records if type(r) is R.HttpExchange]
    for verbose in (0, 1, 2):
        text = "\n".join(ConsoleFormatter(False, 200, verbose=verbose).lines(ex))
        assert "s3cr3t-token" not in text and "s3cr3t-cookie" not in text
        assert "s3cr3t-set" not in text
    assert "    > Authorization: (redacted)" in text and "    < Set-Cookie: (redacted)" in text
    assert '    < {"headers": {"Authorization": "(redacted)"}}' in text


@pytest.mark.pure
@given(st.integers(0, 40))
def test_a_secret_cut_by_the_preview_shows_none_of_its_bytes(shift):
    """A body that echoes a secret header where the preview (max(--max-value, 64) bytes) cuts
    it: the part before the cut is masked too, on the console at -vv and in the JSON."""
    token = b"s3cr3t-TOKEN-0123456789abcdefghijklmnopqrstuvwxyz"
    lead = b'{"pad": "' + b"x" * (150 + shift) + b'", "Authorization": "Bearer '
    body = lead + token + b'"}'
    req = b"GET /headers HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer %s\r\n\r\n" % token
    res = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    sink = ListSink()
    chain = Chain([sink], max_value=200)
    chain.pair_opened(PairInfo(1, Endpoint("127.0.0.1", 5), Endpoint("127.0.0.1", 6), "t",
                               Endpoint("127.0.0.1", 7)), 0.0)
    chain.data(1, C2S, req, 1.0)
    chain.data(1, S2C, res, 2.0)
    chain.pair_closed(1, {}, 3.0)
    [ex] = [r for r in sink.records if type(r) is R.HttpExchange]
    assert len(ex.response_preview) < len(body)  # cut
    text = "\n".join(ConsoleFormatter(False, 200, verbose=2).lines(ex))
    assert "s3c" not in text and "s3c" not in ex.response_preview.decode()
    assert "x" * 150 in text  # the rest of the preview is still shown


@pytest.mark.pure
def test_unanswered_request_body_masks_its_secrets_too():
    """A request left without an answer shows its body at -vv like an answered one: a secret
    header's value echoed in it is masked there too."""
    body = b"token=Bearer s3cr3t-token&x=1"
    req = (b"POST /introspect HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cr3t-token\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    sink = ListSink()
    chain = Chain([sink])
    chain.pair_opened(PairInfo(1, Endpoint("127.0.0.1", 5), Endpoint("127.0.0.1", 6), "t",
                               Endpoint("127.0.0.1", 7)), 0.0)
    chain.data(1, C2S, req, 1.0)
    chain.pair_closed(1, {}, 3.0)
    [ex] = [r for r in sink.records if type(r) is R.HttpExchange]
    assert ex.status is None and ex.request_preview == b"token=(redacted)&x=1"
    text = "\n".join(ConsoleFormatter(False, 200, verbose=2).lines(ex))
    assert "s3cr3t" not in text


@pytest.mark.pure
def test_max_value_0_previews_bodies_up_to_64_kib():
    """--max-value 0 means values whole up to 64 KiB (what the sinks are given): the bodies
    shown at -vv are too, not the 64 bytes of the smallest preview."""
    from playground.codec.parser import STREAM_MIN

    sink = ListSink()
    chain = Chain([sink], max_value=0)
    chain.pair_opened(PairInfo(1, Endpoint("127.0.0.1", 5), Endpoint("127.0.0.1", 6), "t",
                               Endpoint("127.0.0.1", 7)), 0.0)
    for body in (b"a" * 1000, b"b" * (STREAM_MIN + 10)):
        chain.data(1, C2S, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1.0)
        chain.data(1, S2C, b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (
            len(body), body), 2.0)
    chain.pair_closed(1, {}, 3.0)
    previews = [r.response_preview for r in sink.records if type(r) is R.HttpExchange]
    assert previews == [b"a" * 1000, b"b" * STREAM_MIN]
    lines = ConsoleFormatter(False, STREAM_MIN, verbose=2).lines(
        [r for r in sink.records if type(r) is R.HttpExchange][0])
    assert lines[-1] == "    < " + "a" * 1000


# -- lifecycle lines ------------------------------------------------------------------------------

LIFECYCLE = [R.Open(1, 0.0, "c", "l", "s", "t"), R.Detected(1, 0.0, "resp", False),
             R.HalfClose(1, 0.0, "c2s"), R.Close(1, 0.0, "c", 1, 2, 0.5, "client", "fin")]


@pytest.mark.memory
def test_lifecycle_hidden_on_request():
    shown = ConsoleFormatter(False, 200)
    hidden = ConsoleFormatter(False, 200, lifecycle=False)
    for r in LIFECYCLE:
        assert shown.lines(r) and hidden.lines(r) == []
    exchange = R.RedisExchange(1, 0.0, "c", (b"GET", b"k"), None, 0.001)
    assert hidden.lines(exchange) == shown.lines(exchange)
    out = io.BytesIO()
    sink = ConsoleSink(out=out, color="never", reactor=MemoryReactorClock(), lifecycle=False)
    sink.startService()
    sink.emit_many(LIFECYCLE[:2] + [exchange] + LIFECYCLE[2:])
    sink.stopService()
    assert out.getvalue() == b"#1 c GET k -> (nil) (1.00 ms)\n"  # no empty lines either


def console_of(argv):
    opts = Options()
    opts.parseOptions(["--target", "1", *argv])
    services, _ = build(opts, MemoryReactorClock())
    [console] = [s for s in services if isinstance(s, ConsoleSink)]
    return console


@pytest.mark.memory
def test_filters_hide_the_lifecycle_unless_asked():
    assert console_of([]).lifecycle
    assert not console_of(["--only", "GET"]).lifecycle
    assert not console_of(["--skip", "PING"]).lifecycle
    assert not console_of(["--http-filter", "GET /api/*"]).lifecycle
    assert console_of(["--only", "GET", "--lifecycle", "show"]).lifecycle
    assert not console_of(["--lifecycle", "HIDE"]).lifecycle
    assert console_of(["-vv"]).verbose == 2
    assert console_of(["--verbose"]).verbose == 1
    assert console_of([]).verbose == 0


@pytest.mark.twistd
def test_bad_lifecycle_names_the_flag():
    proc = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--target", "1",
                           "--lifecycle", "sometimes"], capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "--lifecycle: choose one of auto, show, hide; got 'sometimes'" in proc.stdout + (
        proc.stderr)
    assert "Traceback" not in proc.stdout + proc.stderr


# -- big Redis replies ------------------------------------------------------------------------

def docs(n):
    return [b"cmd%d" % n, [b"summary", b"does thing %d" % n, b"since", b"1.0.0", b"group",
                           b"generic", b"arguments", [[b"name", b"key"]] * 5]]


@pytest.mark.pure
def test_command_docs_in_one_short_line():
    flat = [x for i in range(240) for x in docs(i)]  # RESP2: name, docs, name, docs, ...
    summary = '(240 commands: "cmd0", "cmd1", "cmd2", ... 237 more)'
    assert command_summary((b"COMMAND", b"DOCS"), flat, 200) == summary
    as_map = resp.Map(tuple(tuple(docs(i)) for i in range(240)))  # RESP3
    assert command_summary((b"command", b"docs"), as_map, 200) == summary
    infos = [[b"cmd%d" % i, -2, resp.Set((resp.Simple(b"write"),))] for i in range(240)]
    assert command_summary((b"COMMAND",), infos, 200) == summary
    assert command_summary((b"COMMAND", b"LIST"), [b"cmd%d" % i for i in range(240)],
                           200) == summary
    assert command_summary((b"COMMAND", b"INFO", b"get"), infos[:1], 200) is None  # small
    assert command_summary((b"LRANGE", b"k", b"0", b"-1"), flat, 200) is None
    keys = [b"k%d" % i for i in range(20)]
    assert command_summary((b"COMMAND", b"GETKEYS", b"MSET"), keys, 200) is None
    assert command_summary((b"COMMAND", b"HELP"), keys, 200) is None
    f = ConsoleFormatter(False, 200)
    [line] = f.lines(R.RedisExchange(2, 0.0, "127.0.0.1:1", (b"COMMAND", b"DOCS"), flat, 0.05))
    assert line == f"#2 127.0.0.1:1 COMMAND DOCS -> {summary} (50.0 ms)"
    evil = [b"\x1b[2J" * 30] * 20
    safe([command_summary((b"COMMAND", b"LIST"), evil, 200)])


@pytest.mark.pure
def test_long_simple_strings_and_errors_show_their_length():
    """Like every other value, a simple string or error longer than --max-value (a MONITOR
    line, an error a server built from a long argument; the decoder cuts those over 64 KiB)
    is shown cut with its full length, so a cut is never taken for the whole."""
    line = b"1700000000.123456 [0 127.0.0.1:5] \"SET\" \"k\" \"" + b"v" * 300 + b'"'
    cut = resp.Truncated(line[:11], 70_000)
    for value, mark in ((resp.Simple(line), "+"), (resp.Error(line), "-"),
                        (resp.Error(line, bulk=True), "-")):
        shown = format_value(value, 10)
        assert shown == mark + "1700000000... (%d bytes)" % len(line)
    assert format_value(resp.Simple(cut), 10) == "+1700000000... (70000 bytes)"
    assert format_value(resp.Simple(b"OK"), 10) == "+OK"
    assert format_value(resp.Error(b"ERR 0123456"), 11) == "-ERR 0123456"


@pytest.mark.pure
def test_bare_command_words_and_keys_show_their_length_when_cut():
    """The command word and a simple key are shown bare, not quoted; cut at --max-value they
    still say their full length (a command word the decoder streamed as well)."""
    from playground.sinks.console import format_args

    assert format_args((b"GET", b"k" * 60), 10) == "GET kkkkkkkkkk... (60 bytes)"
    assert format_args((b"X" * 30, b"k"), 10) == "XXXXXXXXXX... (30 bytes) k"
    name = resp.Truncated(b"Y" * 11, 70_000)
    assert format_args((name, b"k"), 10) == "YYYYYYYYYY... (70000 bytes) k"
    assert format_args((b"GET", b"k" * 10), 10) == "GET kkkkkkkkkk"


@pytest.mark.pure
def test_aggregates_are_bounded_in_characters():
    deep = [[[b"v" * 200] * 8] * 8] * 8  # 512 strings of 200 bytes, three levels
    text = format_value(deep, 200)
    assert len(text) < 2 * MAX_AGGREGATE + 3 * 250, len(text)
    assert text.endswith("... (8 items)]")
    assert format_value([b"a", 1, None], 10) == '["a", (integer) 1, (nil)]'  # small: whole


@pytest.mark.twistd
def test_redis_cli_command_docs_through_the_proxy(twistd, redis_server):
    """redis-cli 7 reading commands from stdin first asks for COMMAND DOCS (160 KiB): one line."""
    cli = need("redis-cli")
    proc, port = start_proxy(twistd, redis_server.port, "--color", "never")
    out = subprocess.run([cli, "-p", str(port)], input=b"PING\n", capture_output=True,
                         timeout=30, check=True)
    assert out.stdout == b"PONG\n"
    proc.wait_for(" PING -> +PONG")
    lines = [line for line in proc.output().splitlines() if " COMMAND DOCS -> " in line]
    assert len(lines) == 1, lines
    assert len(lines[0]) < 160 and " commands: " in lines[0], lines[0]
    assert proc.terminate() == 0


@pytest.mark.twistd
def test_curl_through_the_proxy_at_each_level(twistd):
    curl = need("curl")
    http_port = free_port()
    twistd(["http", "--listen", str(http_port)]).wait_for("listening on")
    seen = {}
    for level in ("", "-v", "-vv"):
        extra = [level] if level else []
        proc, port = start_proxy(twistd, http_port, "--color", "never", "--http-filter",
                                 "POST", *extra)
        base = f"http://127.0.0.1:{port}"
        subprocess.run([curl, "-sf", "-o", "/dev/null", f"{base}/get"], check=True, timeout=30)
        subprocess.run([curl, "-sf", "-o", "/dev/null", "-H", "Authorization: Bearer s3cr3t",
                        "-d", "a=1&b=2", f"{base}/post"], check=True, timeout=30)
        proc.wait_for("POST /post (7 B) -> 200 OK application/json")
        assert proc.terminate() == 0
        text = proc.output()
        assert "s3cr3t" not in text
        console = [line for line in text.splitlines() if line.startswith(("#", "    "))]
        # the filter keeps the POST alone; with a filter the lifecycle lines are hidden (auto)
        [line] = [line for line in console if line.startswith("#")]
        seen[level] = [re.sub(r"^#\d+ 127\.0\.0\.1:\d+ | \([\d.]+ m?s\)$", "",
                              re.sub(r"json \d+ B", "json N B", line))
                       for line in console]  # pair, client, latency, size (its port) vary
    assert seen[""] == ['POST /post (7 B) -> 200 OK application/json N B '
                        '"{\\"args\\": {}, \\"data\\": \\"\\", \\"files\\": {}, \\"f..."']
    v = seen["-v"]
    assert v[0] == seen[""][0]
    assert "    > Authorization: (redacted)" in v
    assert "    > Content-Type: application/x-www-form-urlencoded" in v
    assert "    < Content-Type: application/json" in v
    assert "    > a=1&b=2" not in v
    vv = seen["-vv"]
    assert "    > a=1&b=2" in vv and "    >" in vv and "    <" in vv
    assert any(line.startswith('    < {"args": {}') for line in vv)
    assert any(line.startswith("    < ... (") and line.endswith(" bytes)") for line in vv)


@pytest.mark.pure
def test_demo_passes_verbose_to_its_proxies():
    from playground.examples import demo

    opts = demo.Options()
    opts.parseOptions(["-vv", "--redis", "0", "--http", "1"])
    assert demo.DemoService(opts)._proxy_options("tcp:0", 1)["verbose"] == 2
    opts = demo.Options()
    opts.parseOptions([])
    assert demo.DemoService(opts)._proxy_options("tcp:0", 1).get("verbose", 0) == 0
