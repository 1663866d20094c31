"""The connection pool's bookkeeping: a pure state machine, the clock passed in, no I/O at all.

:class:`PoolCore` knows which connections exist and in what state, and who waits for one. The
adapter (``playground.examples.pool.pool``) tells it what happened, each step with the time
(``acquire``, ``cancel``, ``connected``, ``checked``, ``sent``, ``answered``, ``release``,
``fail``, ``tick``, ``drain``), and carries out the actions it returns, in order:

- :class:`Connect`: open connection ``conn`` (the adapter answers ``connected`` or ``fail``);
- :class:`Check`: health-check idle connection ``conn`` before it is handed out (a ``PING``;
  the adapter answers ``checked`` or ``fail``);
- :class:`HandOut`: give connection ``conn`` to waiter ``waiter``;
- :class:`Close`: close connection ``conn`` (the core has already forgotten it); for
  ``REQUEST_TIMEOUT`` the adapter fails the requests in flight on it first;
- :class:`FailWaiter`: waiter ``waiter`` gets no connection (``reason``: see ``FAIL_REASONS``).

The rules:

- At most ``max_size`` connections exist (connecting, being checked, idle or in use).
- Waiters are served first come, first served, by an idle connection when there is one (even
  while connects are under way: they will idle instead). A connection is opened only for a
  waiter that no connection being opened or checked will serve, and only while there is room.
- An idle connection is taken most recently released first, so a surplus idles out. One idle for
  ``check_after`` seconds or more is checked first (0: always; None: never); one older than
  ``max_lifetime`` is closed instead of handed out, and so is one at its release.
- ``tick(now)`` closes connections idle for ``idle_timeout`` seconds or older than
  ``max_lifetime``, gives up on connects and checks taking over ``connect_timeout``, and fails
  waiters that waited ``acquire_timeout``. ``next_deadline()`` says when the next tick is due.
- A connection in use tells the core of each request it sends (``sent``) and each reply it
  reads (``answered``; replies come in order). One whose oldest unanswered request has waited
  ``request_timeout`` seconds (None: no limit) is closed by ``tick`` (``REQUEST_TIMEOUT``) and
  forgotten, so a late reply can never reach the next user; a waiter gets a new connection.
  A connection released with requests unanswered is closed (``UNANSWERED``), never handed out.
- ``fail`` (an error, a half-close or a lost connection, in any state) forgets the connection; a
  connect that failed or took too long fails the oldest waiter at once (the target is not
  answering: better a quick error than a wait for the acquire timeout), a failed check only
  means another connection is opened. Unknown connections are ignored: ids are never reused,
  so a late report about a connection the core closed is harmless.
- ``drain`` fails every waiter, closes every connection not in use, and each in-use one when it
  is released or fails; ``drained`` says when none is left. ``acquire`` then fails at once.
- At most ``max_waiters`` wait at once; the next ``acquire`` fails at once ("queue full").
"""

from __future__ import annotations

from collections import deque

import attrs

# --- actions -------------------------------------------------------------------------------------


@attrs.frozen
class Connect:
    """Open a new connection; report it with ``connected(conn, now)`` or ``fail(conn, ...)``."""

    conn: int


@attrs.frozen
class Check:
    """Health-check idle connection ``conn``; report ``checked(conn, now)`` or ``fail(...)``."""

    conn: int


@attrs.frozen
class HandOut:
    """Connection ``conn`` is now waiter ``waiter``'s, until it is released or fails."""

    conn: int
    waiter: int


@attrs.frozen
class Close:
    """Close connection ``conn``: ``idle``, ``lifetime``, ``timeout`` (a connect or check that
    took too long), ``request timeout`` (a reply that took too long), ``unanswered`` (released
    with requests in flight) or ``drain``."""

    conn: int
    reason: str


@attrs.frozen
class FailWaiter:
    """Waiter ``waiter`` gets no connection: ``reason`` is one of ``FAIL_REASONS``; ``detail``
    says more (the connect error)."""

    waiter: int
    reason: str
    detail: str = ""


Action = Connect | Check | HandOut | Close | FailWaiter

TIMEOUT = "timeout"  # waited acquire_timeout
CLOSED = "closed"  # the pool is draining or drained
QUEUE_FULL = "queue full"  # max_waiters were already waiting
CONNECT_FAILED = "connect failed"  # a connect opened for the waiters failed
FAIL_REASONS = (TIMEOUT, CLOSED, QUEUE_FULL, CONNECT_FAILED)

REQUEST_TIMEOUT = "request timeout"  # Close: a request in use waited request_timeout
UNANSWERED = "unanswered"  # Close: released with requests in flight

# connection states
CONNECTING, CHECKING, IDLE, IN_USE = "connecting", "checking", "idle", "in use"


@attrs.define
class _Conn:
    state: str
    created: float
    since: float  # when it entered its state
    # in use: when each unanswered request was sent, oldest first (replies come in order)
    sent: deque[float] = attrs.field(factory=deque)


class PoolCore:
    """A bounded pool's bookkeeping; see the module docstring for the rules."""

    def __init__(self, max_size: int, acquire_timeout: float = 5.0,
                 check_after: float | None = 5.0, idle_timeout: float | None = 60.0,
                 max_lifetime: float | None = None, connect_timeout: float = 5.0,
                 max_waiters: int = 10_000, request_timeout: float | None = 5.0):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if max_waiters < 0:
            raise ValueError("max_waiters must not be negative")
        for name, value in (("acquire_timeout", acquire_timeout),
                            ("connect_timeout", connect_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be positive")
        if check_after is not None and check_after < 0:
            raise ValueError("check_after must not be negative")
        for name, value in (("idle_timeout", idle_timeout), ("max_lifetime", max_lifetime),
                            ("request_timeout", request_timeout)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive (None: never)")
        self.max_size = max_size
        self.acquire_timeout = acquire_timeout
        self.check_after = check_after
        self.idle_timeout = idle_timeout
        self.max_lifetime = max_lifetime
        self.connect_timeout = connect_timeout
        self.max_waiters = max_waiters
        self.request_timeout = request_timeout
        self.closing = False
        self._conns: dict[int, _Conn] = {}
        self._idle: list[int] = []  # most recently released last
        self._waiters: dict[int, float] = {}  # waiter -> deadline, oldest first
        self._next_conn = 1
        self._next_waiter = 1
        self.opened = 0  # connections asked for, ever

    # --- what the adapter reads ---------------------------------------------------------------

    def count(self, state: str) -> int:
        """How many connections are in ``state`` (CONNECTING, CHECKING, IDLE, IN_USE)."""
        if state == IDLE:
            return len(self._idle)
        return sum(1 for c in self._conns.values() if c.state == state)

    @property
    def size(self) -> int:
        """Every connection the pool holds, whatever its state."""
        return len(self._conns)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def drained(self) -> bool:
        """Draining, and no connection is left."""
        return self.closing and not self._conns

    def state(self, conn: int) -> str | None:
        """A connection's state; None once it is forgotten."""
        c = self._conns.get(conn)
        return None if c is None else c.state

    def next_deadline(self) -> float | None:
        """The earliest time at which ``tick`` has something to do (None: nothing pending)."""
        times = []
        if self._waiters:
            times.append(next(iter(self._waiters.values())))  # deadlines grow with the queue
        for c in self._conns.values():
            if c.state in (CONNECTING, CHECKING):
                times.append(c.since + self.connect_timeout)
            elif c.state == IDLE and self.idle_timeout is not None:
                times.append(c.since + self.idle_timeout)
            elif c.sent and self.request_timeout is not None:
                times.append(c.sent[0] + self.request_timeout)
            if self.max_lifetime is not None and c.state == IDLE:
                times.append(c.created + self.max_lifetime)
        return min(times) if times else None

    # --- steps ----------------------------------------------------------------------------------

    def acquire(self, now: float) -> tuple[int, list[Action]]:
        """A new waiter: its id and what to do (it may be served at once)."""
        waiter = self._next_waiter
        self._next_waiter += 1
        if self.closing:
            return waiter, [FailWaiter(waiter, CLOSED)]
        if len(self._waiters) >= self.max_waiters:
            return waiter, [FailWaiter(waiter, QUEUE_FULL)]
        self._waiters[waiter] = now + self.acquire_timeout
        actions: list[Action] = []
        self._settle(now, actions)
        return waiter, actions

    def cancel(self, waiter: int, now: float) -> list[Action]:
        """The waiter gave up (its caller cancelled); unknown waiters are ignored."""
        self._waiters.pop(waiter, None)
        return []

    def connected(self, conn: int, now: float) -> list[Action]:
        """A connect succeeded."""
        return self._ready(conn, CONNECTING, now)

    def checked(self, conn: int, now: float) -> list[Action]:
        """A health check succeeded."""
        return self._ready(conn, CHECKING, now)

    def sent(self, conn: int, now: float) -> None:
        """A request went out on ``conn``; only those in use count (a check has its own
        timeout), others and unknown connections are ignored."""
        c = self._conns.get(conn)
        if c is not None and c.state == IN_USE:
            c.sent.append(now)

    def answered(self, conn: int, now: float) -> None:
        """The reply to ``conn``'s oldest request came."""
        c = self._conns.get(conn)
        if c is not None and c.sent:
            c.sent.popleft()

    def release(self, conn: int, now: float) -> list[Action]:
        """The user is done with ``conn`` (every reply read). A connection the core forgot (it
        failed while in use) is ignored; releasing one not in use is a programming error."""
        c = self._conns.get(conn)
        if c is None:
            return []
        if c.state != IN_USE:
            raise ValueError(f"connection {conn} is {c.state}, not in use: released twice?")
        actions: list[Action] = []
        if c.sent:
            self._forget(conn, actions, UNANSWERED)
        elif self.closing:
            self._forget(conn, actions, "drain")
        elif self._too_old(c, now):
            self._forget(conn, actions, "lifetime")
        else:
            self._become(conn, c, now, actions)
        self._settle(now, actions)
        return actions

    def fail(self, conn: int, now: float, detail: str = "") -> list[Action]:
        """``conn`` errored, was half-closed or lost, in whatever state: it is forgotten (the
        adapter closes it). Unknown connections are ignored."""
        c = self._conns.pop(conn, None)
        actions: list[Action] = []
        if c is None:
            return actions
        if c.state == IDLE:
            self._idle.remove(conn)
        elif c.state == CONNECTING:
            self._fail_oldest(detail, actions)
        self._settle(now, actions)
        return actions

    def tick(self, now: float) -> list[Action]:
        """Everything due at ``now``: waiters past their deadline, idle and old connections,
        connects, checks and requests that took too long."""
        actions: list[Action] = []
        while self._waiters:
            waiter, deadline = next(iter(self._waiters.items()))
            if deadline > now:
                break
            del self._waiters[waiter]
            actions.append(FailWaiter(waiter, TIMEOUT))
        for conn, c in list(self._conns.items()):
            if c.state in (CONNECTING, CHECKING) and c.since + self.connect_timeout <= now:
                self._forget(conn, actions, TIMEOUT)
                if c.state == CONNECTING:
                    self._fail_oldest(f"no connection within {self.connect_timeout:g}s", actions)
            elif c.state == IDLE:
                if self._too_old(c, now):
                    self._forget(conn, actions, "lifetime")
                elif self.idle_timeout is not None and c.since + self.idle_timeout <= now:
                    self._forget(conn, actions, "idle")
            elif (c.sent and self.request_timeout is not None
                  and c.sent[0] + self.request_timeout <= now):
                self._forget(conn, actions, REQUEST_TIMEOUT)
        self._settle(now, actions)
        return actions

    def drain(self, now: float) -> list[Action]:
        """Shut down: fail every waiter, close every connection not in use (those in use are
        closed when released)."""
        self.closing = True
        actions: list[Action] = [FailWaiter(w, CLOSED) for w in self._waiters]
        self._waiters.clear()
        for conn, c in list(self._conns.items()):
            if c.state != IN_USE:
                self._forget(conn, actions, "drain")
        return actions

    # --- the rules ------------------------------------------------------------------------------

    def _too_old(self, c: _Conn, now: float) -> bool:
        return self.max_lifetime is not None and c.created + self.max_lifetime <= now

    def _ready(self, conn: int, expected: str, now: float) -> list[Action]:
        c = self._conns.get(conn)
        actions: list[Action] = []
        if c is None:
            return actions  # closed meanwhile (a timeout, the drain): the Close is on its way
        if c.state != expected:
            raise ValueError(f"connection {conn} is {c.state}, not {expected}")
        self._become(conn, c, now, actions)
        self._settle(now, actions)
        return actions

    def _become(self, conn: int, c: _Conn, now: float, actions: list[Action]) -> None:
        """A usable connection: to the oldest waiter, or idle."""
        c.since = now
        if self._waiters:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            c.state = IN_USE
            actions.append(HandOut(conn, waiter))
        else:
            c.state = IDLE
            self._idle.append(conn)

    def _forget(self, conn: int, actions: list[Action], reason: str) -> None:
        c = self._conns.pop(conn)
        if c.state == IDLE:
            self._idle.remove(conn)
        actions.append(Close(conn, reason))

    def _fail_oldest(self, detail: str, actions: list[Action]) -> None:
        if self._waiters:
            waiter = next(iter(self._waiters))
            del self._waiters[waiter]
            actions.append(FailWaiter(waiter, CONNECT_FAILED, detail))

    def _settle(self, now: float, actions: list[Action]) -> None:
        """Serve the waiters no check in progress will serve with idle connections (checked
        when idle long enough), even while connects are under way (those will idle instead);
        then open connections, while there is room, for the waiters no connect or check in
        progress will serve."""
        if self.closing:
            return
        promised = self.count(CHECKING)
        while len(self._waiters) > promised and self._idle:
            conn = self._idle.pop()
            c = self._conns[conn]
            if self._too_old(c, now):
                del self._conns[conn]
                actions.append(Close(conn, "lifetime"))
            elif self.check_after is not None and now - c.since >= self.check_after:
                c.state, c.since = CHECKING, now
                promised += 1
                actions.append(Check(conn))
            else:
                self._become(conn, c, now, actions)
        promised += self.count(CONNECTING)
        while len(self._waiters) > promised and len(self._conns) < self.max_size:
            conn = self._next_conn
            self._next_conn += 1
            self._conns[conn] = _Conn(CONNECTING, now, now)
            self.opened += 1
            promised += 1
            actions.append(Connect(conn))
