"""The runner over a memory reactor: request by request, pipelined, the recorded gaps kept or
compressed, timeouts."""

from __future__ import annotations

import errno
import os

import pytest
from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from playground.codec.encoder import encode_command
from playground.codec.values import Simple
from playground.replay.compare import Request
from playground.replay.run import ReplyBudget, Session, replay

pytestmark = pytest.mark.memory

TARGET = "tcp:host=127.0.0.1:port=6379"
SET = encode_command("SET", "k", "v")
GET = encode_command("GET", "k")


def _requests(*gaps):
    """SET, GET, GET... sent ``gaps`` seconds after the first."""
    out = [Request(SET, 100.0, True)]
    out += [Request(GET, 100.0 + g, True) for g in gaps]
    return out


def _connect(clock):
    """Accept the session's pending connection: the protocol and its transport."""
    _, _, factory, _, _ = clock.tcpClients[-1]
    proto = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 6379))
    transport = StringTransport()
    proto.makeConnection(transport)
    return proto, transport


def test_request_by_request_waits_for_each_reply():
    clock = MemoryReactorClock()
    session = Session(1, "resp", _requests(0.0, 0.0), TARGET, speed=None, reactor=clock)
    done = session.start()
    proto, transport = _connect(clock)
    assert transport.value() == SET
    proto.dataReceived(b"+O")
    assert transport.value() == SET  # half a reply is no reply
    proto.dataReceived(b"K\r\n")
    assert transport.value() == SET + GET
    proto.dataReceived(b"$1\r\nv\r\n$1\r")
    assert transport.value() == SET + GET + GET
    proto.dataReceived(b"\nv\r\n")
    assert transport.disconnecting
    proto.connectionLost(None)
    result = done.result
    assert result.error is None and result.sent == 3
    assert [x.reply for x in result.decoded.exchanges] == [Simple(b"OK"), b"v", b"v"]


def test_pipelined_sends_everything_as_recorded():
    clock = MemoryReactorClock()
    session = Session(1, "resp", _requests(0.0, 0.0), TARGET, speed=None, pipelined=True,
                      reactor=clock)
    session.start()
    _, transport = _connect(clock)
    assert transport.value() == SET + GET + GET


def test_the_recorded_gaps_are_kept_or_divided_by_speed():
    for speed, first_wait in ((1.0, 5.0), (10.0, 0.5)):
        clock = MemoryReactorClock()
        session = Session(1, "resp", _requests(5.0), TARGET, speed=speed, reactor=clock)
        session.start()
        proto, transport = _connect(clock)
        proto.dataReceived(b"+OK\r\n")
        assert transport.value() == SET
        clock.advance(first_wait * 0.9)
        assert transport.value() == SET
        clock.advance(first_wait * 0.2)
        assert transport.value() == SET + GET


def test_no_reply_within_the_timeout_aborts():
    clock = MemoryReactorClock()
    session = Session(3, "resp", _requests(0.0), TARGET, speed=None, timeout=2.0, reactor=clock)
    done = session.start()
    proto, transport = _connect(clock)
    clock.advance(1.9)
    assert not done.called
    clock.advance(0.2)
    assert transport.disconnecting  # aborted
    proto.connectionLost(None)
    assert done.result.error == "no reply within 2 s (1 awaited)"


def test_bytes_that_complete_no_reply_do_not_extend_the_wait():
    # a target streaming RESP3 pushes (or an endless body) held the replay forever: each byte
    # restarted the reply timeout
    clock = MemoryReactorClock()
    session = Session(3, "resp", _requests(), TARGET, speed=None, timeout=2.0, reactor=clock)
    done = session.start()
    proto, transport = _connect(clock)
    push = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"
    for _ in range(30):
        clock.advance(0.1)
        proto.dataReceived(push)
    assert transport.disconnecting  # aborted after 2 s, not kept alive by the pushes
    proto.connectionLost(None)
    assert done.result.error == "no reply within 2 s (1 awaited)"


def test_no_connection_within_the_timeout():
    clock = MemoryReactorClock()
    done = Session(1, "resp", _requests(), TARGET, timeout=3.0, reactor=clock).start()
    clock.advance(3.1)
    assert done.result.error == "no connection within 3 s"


def test_the_server_closing_early_is_reported():
    clock = MemoryReactorClock()
    done = Session(1, "resp", _requests(0.0), TARGET, speed=None, reactor=clock).start()
    proto, _ = _connect(clock)

    proto.connectionLost(Failure(error.ConnectionDone()))
    assert done.result.error == ("the server closed the connection after 1 of 2 requests "
                                 "(Connection was closed cleanly.)")


def test_concurrency_one_runs_connections_one_after_the_other():
    clock = MemoryReactorClock()
    sessions = [Session(n, "resp", _requests(), TARGET, speed=None, reactor=clock)
                for n in (1, 2)]
    all_done = replay(sessions, [0.0, 0.0], None, 1, clock)
    assert len(clock.tcpClients) == 1
    proto, _ = _connect(clock)
    proto.dataReceived(b"+OK\r\n")
    proto.connectionLost(None)
    assert len(clock.tcpClients) == 2
    proto, _ = _connect(clock)
    proto.dataReceived(b"+OK\r\n")
    proto.connectionLost(None)
    assert [r.number for r in all_done.result] == [1, 2]


def test_an_http_response_ended_by_the_close_is_a_reply():
    clock = MemoryReactorClock()
    request = b"GET / HTTP/1.0\r\n\r\n"
    done = Session(1, "http", [Request(request, 0.0, True)], TARGET, speed=None,
                   reactor=clock).start()
    proto, transport = _connect(clock)
    assert transport.value() == request
    proto.dataReceived(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello")

    class Closed:
        def getErrorMessage(self):
            return "Connection was closed cleanly."

    proto.connectionLost(Closed())
    result = done.result
    assert result.error is None
    (x,) = result.decoded.exchanges
    assert (x.reply.status, x.reply.body) == (200, b"hello")


def _refuse(clock):
    """The target refuses the session's pending connection (as the kernel says it: ECONNREFUSED)."""
    _, _, factory, _, _ = clock.tcpClients[-1]
    refused = error.getConnectError((errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))
    factory.clientConnectionFailed(None, Failure(refused))


def test_a_target_refusing_the_first_connection_ends_the_replay_at_once():
    """Three connections recorded a minute apart: the first is refused, the other two are not
    tried (nor waited for: the clock does not move), each result names the reason."""
    clock = MemoryReactorClock()
    sessions = [Session(n, "resp", _requests(), TARGET, reactor=clock) for n in (1, 2, 3)]
    all_done = replay(sessions, [0.0, 60.0, 120.0], 1.0, 1, clock)
    _refuse(clock)
    results = all_done.result
    assert len(clock.tcpClients) == 1 and not clock.getDelayedCalls()
    assert [r.error for r in results] == ["cannot connect: Connection refused",
                                          "not replayed: Connection refused",
                                          "not replayed: Connection refused"]
    assert [r.unreachable for r in results] == ["Connection refused"] * 3
    assert [r.seconds for r in results] == [0.0] * 3


def test_a_refusal_after_a_connection_ends_only_its_own_session():
    """The target was reached: a later refusal (a listener's full backlog, a restart) is that
    connection's error, and the next connection is tried."""
    clock = MemoryReactorClock()
    sessions = [Session(n, "resp", _requests(), TARGET, speed=None, reactor=clock)
                for n in (1, 2, 3)]
    all_done = replay(sessions, [0.0, 0.0, 0.0], None, 1, clock)
    proto, _ = _connect(clock)
    proto.dataReceived(b"+OK\r\n")
    proto.connectionLost(None)
    _refuse(clock)
    proto, _ = _connect(clock)
    proto.dataReceived(b"+OK\r\n")
    proto.connectionLost(None)
    results = all_done.result
    assert [r.error for r in results] == [None, "cannot connect: Connection refused", None]
    assert len(clock.tcpClients) == 3


@pytest.mark.parametrize("protocol, request_, reply, error_", [
    ("resp", SET, b"\x00\xff garbage\r\n", "the server stream is not RESP"),
    ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
     "the server stream is not HTTP"),
])
def test_a_reply_that_is_not_the_protocol_ends_the_session_saying_so(protocol, request_, reply,
                                                                     error_):
    # it waited out the timeout and said 'no reply within 10 s', the garbage unmentioned
    clock = MemoryReactorClock()
    session = Session(1, protocol, [Request(request_, 100.0, True)], TARGET, speed=None,
                      reactor=clock)
    done = session.start()
    proto, transport = _connect(clock)
    proto.dataReceived(reply)
    assert transport.disconnecting  # aborted at once
    proto.connectionLost(None)
    assert done.result.error.startswith(error_), done.result.error


def test_replies_past_the_budget_end_the_session():
    # a target answering each GET with 100 MB grew the replay by 100 MB a reply (3 replies:
    # 460 MB), each kept whole for the comparison; the replies of all sessions now share
    # --max-bytes
    clock = MemoryReactorClock()
    budget = ReplyBudget(16)
    session = Session(1, "resp", _requests(0.0), TARGET, speed=None, reactor=clock,
                      budget=budget)
    done = session.start()
    proto, transport = _connect(clock)
    proto.dataReceived(b"+OK\r\n")
    assert not transport.disconnecting and budget.left == 11
    proto.dataReceived(b"$20\r\n" + b"v" * 20 + b"\r\n")
    assert transport.disconnecting
    proto.connectionLost(None)
    assert done.result.error == "the replies passed --max-bytes (16 bytes in all): not read further"
