"""Splitting recorded connections into requests and holding a replay's replies against them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from playground.codec.encoder import encode_command
from playground.replay.compare import (
    DIFFERENT,
    EXACT,
    IGNORED,
    MISSING,
    Rules,
    Secrets,
    compare,
    decode,
    drop_paths,
    plan,
)
from playground.replay.reassembly import C2S, S2C

pytestmark = pytest.mark.pure

SET = encode_command("SET", "user:1", "alice")
GET = encode_command("GET", "user:1")
TIME = encode_command("TIME")


def _chunks(*pairs):
    """``(request, reply)`` pairs as a connection's chunks, request then reply, 1 s apart."""
    out = []
    for i, (req, rep) in enumerate(pairs):
        out.append((C2S, float(i), req))
        if rep is not None:
            out.append((S2C, i + 0.5, rep))
    return out


RECORDED = _chunks((SET, b"+OK\r\n"), (GET, b"$5\r\nalice\r\n"),
                   (TIME, b"*2\r\n$10\r\n1700000000\r\n$1\r\n1\r\n"))


def test_requests_cover_the_client_stream_and_wait_for_replies():
    decoded = decode(RECORDED)
    requests, missing = plan(decoded, SET + GET + TIME + b"PING\r\n", Secrets())
    assert [r.data for r in requests] == [SET, GET, TIME, b"PING\r\n"]
    assert [r.expects_reply for r in requests] == [True, True, True, False]
    assert [r.sent_at for r in requests[:3]] == [0.0, 1.0, 2.0] and missing == []


@given(cuts=st.lists(st.integers(0, len(SET + GET + TIME)), max_size=8))
def test_any_segmentation_gives_the_same_exchanges(cuts):
    client = SET + GET + TIME
    bounds = sorted({0, len(client), *cuts})
    chunks = [(C2S, 0.0, client[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    chunks.append((S2C, 1.0, b"+OK\r\n$5\r\nalice\r\n*2\r\n$10\r\n1700000000\r\n$1\r\n1\r\n"))
    whole = decode(RECORDED).exchanges
    assert [(x.start, x.end, x.reply) for x in decode(chunks).exchanges] == \
        [(x.start, x.end, x.reply) for x in whole]


def test_a_different_reply_is_one_line_and_volatile_commands_are_ignored():
    now = decode(_chunks((SET, b"+OK\r\n"), (GET, b"$-1\r\n"),
                         (TIME, b"*2\r\n$10\r\n1700000555\r\n$1\r\n9\r\n"))).exchanges
    outcomes = compare(decode(RECORDED).exchanges, now, Rules.parse(["TIME,info"]))
    assert [o.verdict for o in outcomes] == [EXACT, DIFFERENT, IGNORED]
    assert outcomes[1].line == '#2 GET user:1: recorded "alice", now (nil)'
    strict = compare(decode(RECORDED).exchanges, now, Rules())
    assert strict[2].verdict == DIFFERENT and strict[2].line.startswith("#3 TIME: recorded [")


def test_a_reply_that_never_came():
    now = decode(_chunks((SET, b"+OK\r\n"))).exchanges
    outcomes = compare(decode(RECORDED).exchanges, now, Rules())
    assert [o.verdict for o in outcomes] == [EXACT, MISSING, MISSING]
    assert outcomes[1].line == '#2 GET user:1: recorded "alice", now (no reply)'


AUTH_MASKED = encode_command("AUTH", "******")


def test_a_masked_password_needs_auth_and_is_never_shown():
    decoded = decode(_chunks((AUTH_MASKED, b"+OK\r\n"), (GET, b"$5\r\nalice\r\n")))
    requests, missing = plan(decoded, AUTH_MASKED + GET, Secrets())
    assert missing == ["#1 AUTH (redacted): the capture masks its password; give --auth"]
    requests, missing = plan(decoded, AUTH_MASKED + GET, Secrets(auth=b"hunter2!"))
    assert missing == [] and requests[0].data == encode_command("AUTH", "hunter2!")
    assert requests[1].data == GET
    replayed = decode(_chunks((requests[0].data, b"+OK\r\n"), (GET, b"$3\r\nbob\r\n")))
    lines = [o.line for o in compare(decoded.exchanges, replayed.exchanges, Rules()) if o.line]
    assert lines == ['#2 GET user:1: recorded "alice", now "bob"']
    assert "hunter2" not in repr(replayed.exchanges[0].label)


def test_a_reply_echoing_the_password_is_shown_without_it():
    # "#1 AUTH (redacted): recorded +OK, now -ERR unknown command 'AUTH', with args beginning
    # with: 'sup3r..." printed the password the server echoed
    echo = b"-ERR unknown command 'AUTH', with args beginning with: 'hunter2!' \r\n"
    for recorded_auth, sent in ((encode_command("AUTH", "hunter2!"), None),
                                (AUTH_MASKED, b"hunter2!")):
        config_get = encode_command("CONFIG", "GET", "requirepass")
        decoded = decode(_chunks((recorded_auth, b"+OK\r\n"), (
            config_get, b"*2\r\n$11\r\nrequirepass\r\n$8\r\nhunter2!\r\n")))
        requests, _ = plan(decoded, recorded_auth + config_get, Secrets(auth=sent))
        replayed = decode(_chunks((requests[0].data, echo),
                                  (requests[1].data, b"*2\r\n$11\r\nrequirepass\r\n$2\r\nx!\r\n")))
        lines = [o.line for o in compare(decoded.exchanges, replayed.exchanges, Rules())]
        assert len(lines) == 2 and all("hunter2" not in line for line in lines), lines
        assert "with args beginning with: '(reda" in lines[0]  # (redacted), cut for the line
        missing = compare(decoded.exchanges, [], Rules())
        assert all("hunter2" not in o.line for o in missing)


def _http(status=200, date=b"Mon, 01 Jan 2026 00:00:00 GMT", body=b'{"id": 1, "name": "a"}'):
    return (b"HTTP/1.1 %d OK\r\nDate: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, date, len(body), body))


REQ = b"GET /user/1 HTTP/1.1\r\nHost: old:80\r\nAuthorization: ************\r\n\r\n"


def test_http_status_headers_and_json_bodies():
    recorded = decode(_chunks((REQ, _http()))).exchanges
    same_but_date = decode(_chunks((REQ, _http(date=b"Tue")))).exchanges
    assert compare(recorded, same_but_date, Rules())[0].line == \
        '#1 GET /user/1: header date: recorded "Mon, 01 Jan 2026 00:00:00 GMT", now "Tue"'
    assert compare(recorded, same_but_date, Rules.parse(["Date"]))[0].verdict == IGNORED
    other_id = decode(_chunks((REQ, _http(body=b'{"id": 2, "name": "a"}')))).exchanges
    rules = Rules.parse(["Date"])
    assert compare(recorded, other_id, rules)[0].line == \
        "#1 GET /user/1: body $.id: recorded 1, now 2"
    assert compare(recorded, other_id, Rules.parse(["Date", "$.id"]))[0].verdict == IGNORED
    gone = decode(_chunks((REQ, _http(status=404)))).exchanges
    assert compare(recorded, gone, rules)[0].line == \
        "#1 GET /user/1: status: recorded 200, now 404"


def test_http_masked_header_and_host_are_supplied():
    decoded = decode(_chunks((REQ, _http())))
    _, missing = plan(decoded, REQ, Secrets())
    assert missing == ["#1 GET /user/1: the capture masks its Authorization header; give "
                       "--header 'Authorization: ...'"]
    requests, missing = plan(decoded, REQ, Secrets(headers=((b"Authorization", b"Bearer t"),),
                                                   host=b"new:8080"))
    assert missing == []
    assert requests[0].data == (b"GET /user/1 HTTP/1.1\r\nAuthorization: Bearer t\r\n"
                                b"Host: new:8080\r\n\r\n")


def test_an_http_body_echoing_the_credential_is_shown_without_it():
    # GET /headers (httpbin's echo) replayed with --header 'Authorization: Bearer s3cr3t-tok':
    # "body $.headers.Authorization: recorded "************", now "Bearer s3cr3t-tok""
    def echo(auth: bytes, extra: bytes = b""):
        body = b'{"headers": {"Authorization": "%s"%s}}' % (auth, extra)
        return _http(body=body)

    decoded = decode(_chunks((REQ, echo(b"************"))))
    requests, _ = plan(decoded, REQ, Secrets(headers=((b"Authorization", b"Bearer s3cr3t-tok"),)))
    for body in (echo(b"Bearer s3cr3t-tok"), echo(b"Bearer s3cr3t-tok", b', "x": 1')):
        replayed = decode(_chunks((requests[0].data, body))).exchanges
        outcome = compare(decoded.exchanges, replayed, Rules.parse(["Date"]))[0]
        assert outcome.verdict == DIFFERENT and "s3cr3t" not in outcome.line, outcome.line


def test_json_paths():
    doc = {"id": 1, "items": [{"ts": 1, "v": 2}, {"ts": 3, "v": 4}], "deep": {"a": {"ts": 5}}}
    rules = Rules.parse(["$.id,$.items[*].ts", "$..ts"])
    assert drop_paths(doc, rules.json_paths) == {"items": [{"v": 2}, {"v": 4}], "deep": {"a": {}}}
    assert drop_paths(doc, Rules.parse(["$.items[0]"]).json_paths)["items"] == [{"ts": 3, "v": 4}]
    with pytest.raises(ValueError, match="cannot read the JSON path"):
        Rules.parse(["$.a b"])


def test_other_protocols_are_not_compared():
    assert decode([(C2S, 0.0, b"hello there\n")]).problem == \
        "the client speaks text: only Redis and HTTP replay"


POST = (b"POST /items HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
        b"Content-Length: 11\r\n\r\n{\"name\":1}\n")
GET_ITEMS = b"GET /items HTTP/1.1\r\nHost: h\r\n\r\n"


def test_http_requests_keep_their_bodies_and_blank_lines():
    created = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    listed = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]"
    client = b"\r\n" + POST + GET_ITEMS
    decoded = decode([(C2S, 0.0, client[:30]), (C2S, 0.1, client[30:len(POST) + 2]),
                      (S2C, 0.2, created), (C2S, 0.3, GET_ITEMS), (S2C, 0.4, listed)])
    requests, _ = plan(decoded, client, Secrets(host=b"new"))
    assert [r.data for r in requests] == [
        b"\r\nPOST /items HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b"Host: new\r\n\r\n{\"name\":1}\n",
        b"GET /items HTTP/1.1\r\nHost: new\r\n\r\n"]
    assert [x.reply.status for x in decoded.exchanges] == [201, 200]


@given(client=st.binary(max_size=200), server=st.binary(max_size=200),
       protocol=st.sampled_from(["resp", "http", None]))
def test_random_bytes_never_raise(client, server, protocol):
    decoded = decode([(C2S, 0.0, client), (S2C, 1.0, server)], protocol)
    requests, _ = plan(decoded, client, Secrets(auth=b"pw", headers=((b"X", b"y"),), host=b"h"))
    compare(decoded.exchanges, decoded.exchanges[:1], Rules.parse(["TIME,$.a"]))
    if decoded.exchanges:
        assert [x.label for x in decoded.exchanges]


def test_transactions_and_suppressed_replies_plan_as_the_server_answers():
    e = encode_command
    commands = [e("MULTI"), e("SET", "a", "1"), e("INCR", "a"), e("EXEC"),
                e("CLIENT", "REPLY", "OFF"), e("SET", "b", "2"), e("CLIENT", "REPLY", "ON"),
                e("GET", "b")]
    replies = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n:2\r\n+OK\r\n$1\r\n2\r\n"
    decoded = decode([(C2S, 0.0, b"".join(commands)), (S2C, 1.0, replies)])
    requests, _ = plan(decoded, b"".join(commands), Secrets())
    assert [r.data for r in requests] == commands
    # the runner waits after each but the two whose replies CLIENT REPLY OFF suppresses
    assert [r.expects_reply for r in requests] == [True] * 4 + [False, False, True, True]


def test_an_http_label_hides_a_credential_query_value():
    # a capture made with --no-redact holds it in clear: the difference line must not show it
    req = b"GET /cb?access_token=s3cr3t-tok&page=2 HTTP/1.1\r\nHost: h\r\n\r\n"
    recorded = decode(_chunks((req, _http()))).exchanges
    gone = decode(_chunks((req, _http(status=404)))).exchanges
    assert compare(recorded, gone, Rules())[0].line == \
        "#1 GET /cb?access_token=(redacted)&page=2: status: recorded 200, now 404"
    req = b"GET /cb#access_token=s3cr3t-tok&page=2 HTTP/1.1\r\nHost: h\r\n\r\n"  # a fragment's
    recorded = decode(_chunks((req, _http()))).exchanges
    gone = decode(_chunks((req, _http(status=404)))).exchanges
    assert compare(recorded, gone, Rules())[0].line == \
        "#1 GET /cb#access_token=(redacted)&page=2: status: recorded 200, now 404"
