"""tcpplay's JSON lines read back: Redis streams rebuilt from whole values; cut values and HTTP
records say why they cannot be replayed; damaged lines are a CaptureError."""

from __future__ import annotations

import io
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.codec.encoder import encode_command
from playground.codec.values import Error, Map, Simple, Verbatim
from playground.decode import records as R
from playground.replay.capture import read_capture
from playground.replay.compare import decode
from playground.replay.jsonlines import read_jsonlines
from playground.replay.reassembly import C2S, CaptureError, Tracker

pytestmark = pytest.mark.pure

REPLIES = [Simple(b"OK"), b"alice", None, 7, [b"a", [b"b", 1]], Error(b"ERR no"),
           Map(((b"k", 1.5),)), Verbatim(b"txt", b"hi"), b"\xff\x00binary", True]


def _write(path, records, limit=0):
    path.write_text("".join(json.dumps(R.to_json(r, limit)) + "\n" for r in records))
    return str(path)


def test_redis_records_rebuild_both_streams(tmp_path):
    records = [R.Open(7, 10.0, "127.0.0.1:50000", "127.0.0.1:6479", "127.0.0.1:6379", "6379")]
    records += [R.RedisExchange(7, 11.0 + i, "127.0.0.1:50000", (b"CMD", b"%d" % i), reply, 0.001)
                for i, reply in enumerate(REPLIES)]
    records.append(R.RedisUnanswered(7, 30.0, "127.0.0.1:50000", (b"BLPOP", b"q", b"0")))
    capture = read_capture(_write(tmp_path / "ev.jsonl", records))
    (conn,) = capture.connections
    assert capture.kind == "jsonl" and conn.client == ("127.0.0.1", 50000) and conn.number == 7
    assert conn.server == ("127.0.0.1", 6379) and conn.problem is None
    decoded = decode(conn.chunks)
    assert [x.reply for x in decoded.exchanges] == REPLIES
    assert [x.args[1] for x in decoded.exchanges] == [b"%d" % i for i in range(len(REPLIES))]
    assert conn.stream(C2S).endswith(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n")


def test_cut_values_and_http_records_are_not_replayed(tmp_path):
    records = [R.RedisExchange(1, 1.0, "c:1", (b"GET", b"k"), b"x" * 300, 0.001),
               R.HttpExchange(2, 1.0, "c:2", b"GET", b"/", b"HTTP/1.1", 200, b"OK", 0.1, (), (),
                              0, 0, None, b"", b"")]
    first, second = read_capture(_write(tmp_path / "cut.jsonl", records, limit=200)).connections
    assert (first.number, second.number) == (1, 2)  # the pair ids
    assert first.problem.startswith("line 1: the JSON lines cut a value")
    assert "HTTP records keep only a preview" in second.problem


def test_the_web_views_jsonl_download_is_not_replayed_as_an_empty_connection(tmp_path):
    """The web view's .jsonl keeps an exchange as the text its table shows ("request"), not the
    command's arguments: such a record was replayed as "*0" (nothing), "0 replies ... same",
    exit status 0. Now the connection says why it is not replayed."""
    (tmp_path / "tcpplay-1.jsonl").write_text(
        '{"type":"open","pair":1,"ts":1.0,"client":"127.0.0.1:48428","listen":"127.0.0.1:6479",'
        '"server":"127.0.0.1:36799","target":"tcp:host=127.0.0.1:port=36799"}\n'
        '{"type":"redis","pair":1,"ts":1.1,"client":"127.0.0.1:48428","index":1,'
        '"request":"set foo \\"bar\\"","reply":"+OK","latency":0.0004,"error":false}\n')
    (conn,) = read_capture(str(tmp_path / "tcpplay-1.jsonl")).connections
    assert conn.problem == (
        "line 2: a redis record without its command arguments (the web view's .jsonl has only "
        "their text): replay the proxy's --json file, its --pcap, or the view's .pcap")


def test_damaged_lines(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"type": "redis", "pair": 1}\n{not json\n')
    with pytest.raises(CaptureError, match="line 2 is not a tcpplay JSON record"):
        read_capture(str(tmp_path / "bad.jsonl"))


@given(data=st.binary(max_size=300))
def test_garbage_lines_raise_only_capture_error(data):
    try:
        read_jsonlines(io.BytesIO(b'{"type": "open", "pair": 1}\n' + data), "g.jsonl", Tracker())
    except CaptureError:
        pass


@pytest.mark.parametrize("line", [
    '{"type": "redis", "pair": 1, "command": ["GET"], "reply": {"verbatim": "x", "format": 5}}',
    '{"type": "redis", "pair": 1, "command": [{"text": 5}], "reply": 1}',
    '{"type": "redis", "pair": 1, "command": ["GET"], "reply": ' + "[" * 3000 + "]" * 3000 + "}",
    '{"type": "redis", "pair": 1e400, "command": ["GET"]}',
    '{"type": "open", "pair": 1, "client": "127.0.0.1:\\u00b2"}',
])
def test_odd_json_records_are_a_capture_error_or_read(tmp_path, line):
    # each was a traceback out of tcpplay-replay (AttributeError, RecursionError, OverflowError,
    # ValueError from int('²')) instead of "line 1: cannot read ..." and exit status 2
    (tmp_path / "odd.jsonl").write_text(line + "\n")
    try:
        capture = read_capture(str(tmp_path / "odd.jsonl"))
    except CaptureError as e:
        assert "line 1" in str(e)
    else:
        assert capture.connections[0].client == ("127.0.0.1", 0)


def test_a_pair_id_opened_again_is_another_connection(tmp_path):
    # --json appends: a file kept across two runs of the proxy holds pair 1 twice, and the
    # second run's commands were replayed on the first run's connection (after its SELECT 2)
    opened = '{"type":"open","pair":%d,"ts":%s,"client":"127.0.0.1:%d","server":"127.0.0.1:6379"}'
    redis = ('{"type":"redis","pair":%d,"ts":%s,"client":"127.0.0.1:%d","command":%s,'
             '"reply":%s,"latency":0.001}')
    (tmp_path / "runs.jsonl").write_text("\n".join([
        opened % (1, "1.0", 50001), redis % (1, "1.1", 50001, '["SELECT","2"]', '{"simple":"OK"}'),
        opened % (2, "1.2", 50002), redis % (2, "1.3", 50002, '["PING"]', '{"simple":"PONG"}'),
        opened % (1, "9.0", 50009), redis % (1, "9.1", 50009, '["GET","k"]', "null"),
        opened % (3, "9.2", 50010),  # a new id of the later run: 3 is taken, so 4
    ]) + "\n")
    first, second, again, third = read_capture(str(tmp_path / "runs.jsonl")).connections
    assert [c.number for c in (first, second, again, third)] == [1, 2, 3, 4]
    assert first.stream(C2S) == encode_command("SELECT", "2")
    assert again.client == ("127.0.0.1", 50009) and again.started == 9.0
    assert again.stream(C2S) == encode_command("GET", "k")
