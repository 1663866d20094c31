"""The pool's core over a fake clock: its rules one by one, then hypothesis's state machine
(any sequence of acquire, cancel, connect, check, request, reply, release, fail, time and drain
steps keeps the pool bounded, hands no connection out twice, starves no waiter past its timeout,
lets no request wait past the request timeout, never hands out a connection with a request in
flight, and the drain closes everything)."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from playground.examples.pool.core import (
    CHECKING,
    CLOSED,
    CONNECT_FAILED,
    CONNECTING,
    IDLE,
    IN_USE,
    QUEUE_FULL,
    REQUEST_TIMEOUT,
    TIMEOUT,
    UNANSWERED,
    Check,
    Close,
    Connect,
    FailWaiter,
    HandOut,
    PoolCore,
)

pytestmark = pytest.mark.pure


def ready(core: PoolCore, now: float = 0.0) -> tuple[int, int]:
    """Acquire a connection that must be opened; return (waiter, conn) once it is handed out."""
    waiter, actions = core.acquire(now)
    [connect] = actions
    assert isinstance(connect, Connect)
    assert core.connected(connect.conn, now) == [HandOut(connect.conn, waiter)]
    return waiter, connect.conn


def test_first_acquire_connects_and_the_connection_goes_to_the_waiter():
    core = PoolCore(max_size=2)
    waiter, conn = ready(core)
    assert core.count(IN_USE) == 1 and core.opened == 1 and core.waiting == 0


def test_a_released_connection_is_reused_without_a_check_while_fresh():
    core = PoolCore(max_size=2, check_after=5)
    _, conn = ready(core)
    assert core.release(conn, 1.0) == []
    waiter, actions = core.acquire(2.0)
    assert actions == [HandOut(conn, waiter)]
    assert core.opened == 1


def test_an_idle_connection_is_checked_before_it_is_handed_out():
    core = PoolCore(max_size=2, check_after=5, idle_timeout=60)
    _, conn = ready(core)
    core.release(conn, 1.0)
    waiter, actions = core.acquire(6.0)
    assert actions == [Check(conn)] and core.state(conn) == CHECKING
    assert core.checked(conn, 6.1) == [HandOut(conn, waiter)]


def test_a_failed_check_opens_a_new_connection_for_the_same_waiter():
    core = PoolCore(max_size=1, check_after=0)
    _, conn = ready(core)
    core.release(conn, 1.0)
    waiter, actions = core.acquire(2.0)
    assert actions == [Check(conn)]
    [connect] = core.fail(conn, 2.1, "connection lost")
    assert isinstance(connect, Connect) and connect.conn != conn
    assert core.connected(connect.conn, 2.2) == [HandOut(connect.conn, waiter)]


def test_the_most_recently_released_connection_is_taken_first():
    core = PoolCore(max_size=2, check_after=None)
    _, a = ready(core)
    _, b = ready(core)
    core.release(a, 1.0)
    core.release(b, 2.0)
    waiter, actions = core.acquire(3.0)
    assert actions == [HandOut(b, waiter)]


def test_waiters_beyond_max_size_queue_in_order_and_time_out():
    core = PoolCore(max_size=1, acquire_timeout=5, check_after=None)
    _, conn = ready(core)
    second, actions = core.acquire(1.0)
    third, more = core.acquire(2.0)
    assert actions == [] and more == [] and core.waiting == 2
    assert core.next_deadline() == 6.0
    assert core.tick(6.0) == [FailWaiter(second, TIMEOUT)]
    assert core.release(conn, 6.5) == [HandOut(conn, third)]


def test_a_failed_connect_fails_the_oldest_waiter_at_once():
    core = PoolCore(max_size=1)
    waiter, [connect] = core.acquire(0.0)
    assert core.fail(connect.conn, 0.1, "connection refused") == [
        FailWaiter(waiter, CONNECT_FAILED, "connection refused")]
    assert core.size == 0


def test_a_connect_that_takes_too_long_is_closed_and_its_waiter_failed():
    core = PoolCore(max_size=1, connect_timeout=2, acquire_timeout=10)
    waiter, [connect] = core.acquire(0.0)
    assert core.next_deadline() == 2.0
    assert core.tick(2.0) == [Close(connect.conn, TIMEOUT),
                              FailWaiter(waiter, CONNECT_FAILED, "no connection within 2s")]
    assert core.connected(connect.conn, 2.5) == []  # late: ignored


def test_a_connection_lost_in_use_is_forgotten_and_a_waiter_gets_a_new_one():
    core = PoolCore(max_size=1)
    _, conn = ready(core)
    waiter, actions = core.acquire(1.0)
    assert actions == []
    [connect] = core.fail(conn, 2.0, "connection reset")
    assert core.connected(connect.conn, 2.1) == [HandOut(connect.conn, waiter)]
    assert core.release(conn, 3.0) == []  # the lost one: ignored


def test_idle_connections_are_evicted_and_old_ones_retired():
    core = PoolCore(max_size=2, idle_timeout=10, max_lifetime=25, check_after=None)
    _, a = ready(core)
    _, b = ready(core)
    core.release(a, 1.0)
    assert core.tick(11.0) == [Close(a, "idle")]
    assert core.release(b, 25.0) == [Close(b, "lifetime")]
    assert core.size == 0


def test_an_idle_connection_past_its_lifetime_is_not_handed_out():
    core = PoolCore(max_size=1, max_lifetime=10, idle_timeout=None, check_after=None)
    _, conn = ready(core)
    core.release(conn, 1.0)
    assert core.next_deadline() == 10.0
    waiter, actions = core.acquire(10.0)
    assert actions[0] == Close(conn, "lifetime") and isinstance(actions[1], Connect)


def test_the_queue_is_bounded():
    core = PoolCore(max_size=1, max_waiters=1)
    core.acquire(0.0)
    waiter, actions = core.acquire(0.0)
    assert actions == [FailWaiter(waiter, QUEUE_FULL)]


def test_drain_fails_waiters_closes_what_is_not_in_use_then_what_is_released():
    core = PoolCore(max_size=3, check_after=0)
    _, a = ready(core)
    _, b = ready(core)
    core.release(b, 1.0)
    first, [check] = core.acquire(2.0)
    second, [connect] = core.acquire(2.0)
    third, nothing = core.acquire(2.0)
    assert check == Check(b) and isinstance(connect, Connect) and nothing == []
    assert core.drain(3.0) == [FailWaiter(first, CLOSED), FailWaiter(second, CLOSED),
                               FailWaiter(third, CLOSED), Close(b, "drain"),
                               Close(connect.conn, "drain")]
    assert not core.drained and core.connected(connect.conn, 3.1) == []
    assert core.release(a, 4.0) == [Close(a, "drain")]
    assert core.drained
    again, actions = core.acquire(5.0)
    assert actions == [FailWaiter(again, CLOSED)]


def test_an_idle_connection_serves_a_waiter_even_while_a_connect_is_under_way():
    core = PoolCore(max_size=2, check_after=None)
    _, a = ready(core)
    waiter, [connect] = core.acquire(1.0)
    core.cancel(waiter, 1.1)
    core.release(a, 1.2)
    again, actions = core.acquire(1.3)
    assert actions == [HandOut(a, again)]
    assert core.connected(connect.conn, 1.4) == [] and core.state(connect.conn) == IDLE


def test_releasing_twice_is_a_programming_error():
    core = PoolCore(max_size=1)
    _, conn = ready(core)
    core.release(conn, 1.0)
    with pytest.raises(ValueError, match="released twice"):
        core.release(conn, 2.0)


@pytest.mark.parametrize("kw", [{"max_size": 0}, {"acquire_timeout": 0}, {"idle_timeout": 0},
                                {"max_lifetime": -1}, {"check_after": -1}, {"max_waiters": -1},
                                {"connect_timeout": 0}, {"request_timeout": 0}])
def test_bad_settings_are_refused(kw):
    with pytest.raises(ValueError):
        PoolCore(**{"max_size": 1, **kw})


def test_a_request_without_a_reply_closes_its_connection_and_a_waiter_gets_a_new_one():
    core = PoolCore(max_size=1, request_timeout=2, acquire_timeout=10)
    _, conn = ready(core)
    core.sent(conn, 1.0)
    core.sent(conn, 1.5)
    core.answered(conn, 2.0)  # the first reply: the deadline follows the second request
    waiter, actions = core.acquire(2.0)
    assert actions == [] and core.next_deadline() == 3.5
    assert core.tick(3.4) == []
    [close, connect] = core.tick(3.5)
    assert close == Close(conn, REQUEST_TIMEOUT) and isinstance(connect, Connect)
    assert core.state(conn) is None
    assert core.connected(connect.conn, 3.6) == [HandOut(connect.conn, waiter)]
    core.answered(conn, 4.0)  # the late reply: ignored
    assert core.release(conn, 4.0) == []


def test_answered_requests_and_no_timeout_keep_the_connection():
    core = PoolCore(max_size=1, request_timeout=None, idle_timeout=None, check_after=None)
    _, conn = ready(core)
    core.sent(conn, 1.0)
    assert core.next_deadline() is None and core.tick(1000.0) == []
    timed = PoolCore(max_size=1, request_timeout=2, idle_timeout=None)
    _, conn = ready(timed)
    timed.sent(conn, 1.0)
    timed.answered(conn, 1.5)
    assert timed.next_deadline() is None and timed.tick(100.0) == []
    assert timed.state(conn) == IN_USE


def test_a_health_check_is_not_a_request():
    core = PoolCore(max_size=1, request_timeout=1, connect_timeout=5, check_after=0)
    _, conn = ready(core)
    core.release(conn, 0.0)
    core.acquire(1.0)
    core.sent(conn, 1.0)  # the PING: the connect timeout covers it
    assert core.next_deadline() == 6.0


def test_a_connection_released_with_a_request_in_flight_is_closed():
    core = PoolCore(max_size=1)
    _, conn = ready(core)
    core.sent(conn, 1.0)
    waiter, _ = core.acquire(1.0)
    [close, connect] = core.release(conn, 1.5)
    assert close == Close(conn, UNANSWERED) and isinstance(connect, Connect)


# ============================================================== the state machine

RELEASING = "releasing"  # the model's own state: between a release and its outcome
TIMES = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0])


class PoolMachine(RuleBasedStateMachine):
    """Plays the adapter and the users: carries out every action and checks it against a model
    of what each connection and waiter may be."""

    @initialize(max_size=st.integers(1, 4), acquire_timeout=st.sampled_from([1.0, 5.0, 20.0]),
                check_after=st.sampled_from([None, 0.0, 1.0, 5.0]),
                idle_timeout=st.sampled_from([None, 2.0, 10.0]),
                max_lifetime=st.sampled_from([None, 3.0, 20.0]),
                connect_timeout=st.sampled_from([1.0, 5.0]), max_waiters=st.sampled_from([8, 1, 0]),
                request_timeout=st.sampled_from([1.0, None, 5.0]))
    def start(self, **settings_):
        self.core = PoolCore(**settings_)
        self.now = 0.0
        self.conns: dict[int, str] = {}  # the model: conn -> state
        self.closed: set[int] = set()
        self.waiters: dict[int, float] = {}  # outstanding waiter -> deadline
        self.holder: dict[int, int] = {}  # conn in use -> waiter
        self.sent: dict[int, list[float]] = {}  # conn in use -> its unanswered requests' times

    def apply(self, actions):
        for a in actions:
            if isinstance(a, Connect):
                assert a.conn not in self.conns and a.conn not in self.closed
                self.conns[a.conn] = CONNECTING
            elif isinstance(a, Check):
                assert self.conns.get(a.conn) == IDLE
                self.conns[a.conn] = CHECKING
            elif isinstance(a, HandOut):
                assert a.waiter in self.waiters, "handed to a waiter that is not waiting"
                assert self.now < self.waiters.pop(a.waiter), "handed out past the deadline"
                assert self.conns.get(a.conn) in (CONNECTING, CHECKING, IDLE, RELEASING), (
                    "handed out twice")
                assert not self.sent.get(a.conn), "handed out with a request in flight"
                self.conns[a.conn] = IN_USE
                self.holder[a.conn] = a.waiter
            elif isinstance(a, Close):
                assert a.conn in self.conns, "closed twice or never opened"
                sent = self.sent.pop(a.conn, [])
                if a.reason == REQUEST_TIMEOUT:
                    assert sent and sent[0] + self.core.request_timeout <= self.now, (
                        "a request closed before its timeout")
                elif a.reason == UNANSWERED:
                    assert sent, "closed as unanswered with every reply read"
                elif self.conns[a.conn] == IN_USE:
                    raise AssertionError(f"a connection in use closed: {a.reason}")
                del self.conns[a.conn]
                self.holder.pop(a.conn, None)
                self.closed.add(a.conn)
            elif isinstance(a, FailWaiter):
                assert a.waiter in self.waiters, "a waiter answered twice"
                deadline = self.waiters.pop(a.waiter)
                if a.reason == TIMEOUT:
                    assert deadline <= self.now
            else:
                raise AssertionError(f"unknown action {a!r}")

    def settled(self, conn, was):
        """``conn`` was ``was`` and is usable now: handed out (by an action), else idle."""
        if self.conns.get(conn) == was:
            assert self.core.state(conn) == IDLE
            self.conns[conn] = IDLE

    def _with(self, state):
        return sorted(c for c, s in self.conns.items() if s == state)

    @rule()
    def acquire(self):
        waiter, actions = self.core.acquire(self.now)
        assert waiter not in self.waiters
        self.waiters[waiter] = self.now + self.core.acquire_timeout
        self.apply(actions)  # a refusal (closed, queue full) answers it at once

    @precondition(lambda self: self.waiters)
    @rule(data=st.data())
    def cancel(self, data):
        waiter = data.draw(st.sampled_from(sorted(self.waiters)))
        del self.waiters[waiter]
        self.apply(self.core.cancel(waiter, self.now))

    @precondition(lambda self: any(s == CONNECTING for s in self.conns.values()))
    @rule(data=st.data(), ok=st.booleans())
    def connect_done(self, data, ok):
        conn = data.draw(st.sampled_from(self._with(CONNECTING)))
        if ok:
            self.apply(self.core.connected(conn, self.now))
            self.settled(conn, CONNECTING)
        else:
            self._lost(conn)

    @precondition(lambda self: any(s == CHECKING for s in self.conns.values()))
    @rule(data=st.data(), ok=st.booleans())
    def check_done(self, data, ok):
        conn = data.draw(st.sampled_from(self._with(CHECKING)))
        if ok:
            self.apply(self.core.checked(conn, self.now))
            self.settled(conn, CHECKING)
        else:
            self._lost(conn)

    @rule(data=st.data())
    def send(self, data):
        """A user sends a request on a connection it holds (first taking one, if it holds none:
        the random steps above seldom reach a hand-out)."""
        if not self.holder:
            self.acquire()
            self.every_connect_and_check_succeeds()
        if not self.holder:
            return
        conn = data.draw(st.sampled_from(sorted(self.holder)))
        self.sent.setdefault(conn, []).append(self.now)
        self.core.sent(conn, self.now)

    @precondition(lambda self: any(self.sent.values()))
    @rule(data=st.data())
    def reply(self, data):
        conn = data.draw(st.sampled_from(sorted(c for c, s in self.sent.items() if s)))
        self.sent[conn].pop(0)
        self.core.answered(conn, self.now)

    def every_connect_and_check_succeeds(self):
        for conn, state in sorted(self.conns.items()):
            if state == CONNECTING:
                self.apply(self.core.connected(conn, self.now))
                self.settled(conn, CONNECTING)
            elif state == CHECKING:
                self.apply(self.core.checked(conn, self.now))
                self.settled(conn, CHECKING)

    @precondition(lambda self: self.holder)
    @rule(data=st.data())
    def release(self, data):
        conn = data.draw(st.sampled_from(sorted(self.holder)))
        del self.holder[conn]
        self.conns[conn] = RELEASING
        self.apply(self.core.release(conn, self.now))
        self.settled(conn, RELEASING)

    @precondition(lambda self: self.conns)
    @rule(data=st.data())
    def lost(self, data):
        self._lost(data.draw(st.sampled_from(sorted(self.conns))))

    def _lost(self, conn):
        del self.conns[conn]
        self.holder.pop(conn, None)
        self.sent.pop(conn, None)
        self.closed.add(conn)
        self.apply(self.core.fail(conn, self.now, "lost"))

    @rule(dt=TIMES)
    def time_passes(self, dt):
        self.now += dt
        self.apply(self.core.tick(self.now))

    @precondition(lambda self: self.core.next_deadline() is not None)
    @rule()
    def time_reaches_the_next_deadline(self):
        self.now = self.core.next_deadline()
        self.apply(self.core.tick(self.now))

    @precondition(lambda self: not self.core.closing)
    @rule()
    def drain(self):
        self.apply(self.core.drain(self.now))

    @invariant()
    def bounded(self):
        if not hasattr(self, "core"):
            return
        core = self.core
        counted = sum(core.count(s) for s in (CONNECTING, CHECKING, IDLE, IN_USE))
        assert counted == core.size <= core.max_size
        assert core.size == len(self.conns)
        assert core.waiting == len(self.waiters) <= core.max_waiters

    @invariant()
    def no_waiter_is_past_its_deadline(self):
        if hasattr(self, "core"):
            assert all(d > self.now for d in self.waiters.values())
            deadline = self.core.next_deadline()
            assert deadline is None or deadline > self.now

    @invariant()
    def no_request_waits_past_the_request_timeout(self):
        if not hasattr(self, "core") or self.core.request_timeout is None:
            return
        for conn, sent in self.sent.items():
            if sent:
                assert self.conns.get(conn) == IN_USE
                assert sent[0] + self.core.request_timeout > self.now

    @invariant()
    def waiters_are_being_served(self):
        """No connection sits idle while someone waits; a waiter is promised a connect or check,
        or the pool is full."""
        if not hasattr(self, "core") or not self.waiters:
            return
        core = self.core
        promised = core.count(CONNECTING) + core.count(CHECKING)
        assert core.count(IDLE) == 0 or core.waiting <= core.count(CHECKING)
        assert promised >= core.waiting or core.size == core.max_size

    @invariant()
    def drain_leaves_only_connections_in_use(self):
        if hasattr(self, "core") and self.core.closing:
            assert not self.waiters
            assert all(s == IN_USE for s in self.conns.values())

    def teardown(self):
        if not hasattr(self, "core"):
            return
        self.apply(self.core.drain(self.now))
        for conn in list(self.holder):
            self.conns[conn] = RELEASING
            del self.holder[conn]
            self.apply(self.core.release(conn, self.now))
        assert self.core.drained


PoolMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40)
TestPoolMachine = PoolMachine.TestCase
