"""The zero-copy splice: a pair's bytes moved kernel to kernel with ``splice(2)``.

Taken at pair start (``Pair.upstream_connected``) when nothing looks at the bytes (no observer:
``--decode none`` and no pcap or web view; no toxics) and both legs are plain TCP sockets of
``twisted.internet.tcp`` on a reactor with ``IReactorFDSet``; anywhere else (no ``os.splice``, a
TLS or UNIX leg, no fds left for the pipes) the pair keeps the ordinary path, and the reason is
logged once per process.

A pair that has an observer (decoding, pcap, web view) but no toxics, its legs both plain TCP,
forwards here too, by copy (``start_copy``, ``_CopyDirection``): its sockets are handed over
and watched as a spliced pair's are, but each direction reads into Python (``os.read``, at most
``COPY_READ``; a full one is its last in the reactor's turn, as Twisted reads once a turn),
writes at once to the other socket (``os.write``), keeps what it did not take
(the source then not read until it is written: one read per direction held at most), and only
then hands the bytes to the observer (``factory.observe_data``, as ``_Observed.dataReceived``
does on Twisted's path). The observer's backpressure stops and restarts the reads of the leg
(``Splicer.hold``), never through the transport (which would give the socket back to the
reactor); a FIN is told to the observer (``half_closed``) as it is passed on. Such a pair keeps
``connectTCP`` (its ``PairInfo`` needs both transports' addresses) and needs no pipes (two fds).
It spares the pair Twisted's dispatch per read (``callWithLogger``, ``doRead``, ``dataReceived``,
the write), the part of its cost that is not the observer's.

Such a pair whose target is an IP literal is also connected here (``connector``, ``Connector``):
its pipes made first, a non-blocking socket and ``connect`` in the private epoll, not
``connectTCP`` (whose Connector, Deferred, transport and extra reactor turn cost a pair more
than its splice); the socket stays out of Twisted (``UpstreamSocket``), and a refusal or no
answer is reported to the pair as ``connectTCP`` reports it. A host name (resolved by
``connectTCP``) or another kind of target keeps the pair's ordinary connect.

Each direction has its own pipe: ``splice`` moves what the source socket holds into the pipe,
then from the pipe into the destination socket; Python never sees the bytes. The sockets are
handed over from their transports (stopped; they take the sockets back only to close them) to
one private ``epoll`` per reactor (``_Dispatcher``), which the reactor watches as a single
reader: each reactor turn it takes at most ``EVENTS_PER_TURN`` ready sockets and runs their
handlers in one loop (the rest on the next turn: its fd stays readable), rather than the
reactor's dispatch per socket (``callWithLogger``, ``_doReadOrWrite``: costly per event). The
common event (a socket readable, its pipe empty, its destination not waiting to be writable:
every request and reply of a request/response protocol) is handled in that loop itself, two
``splice`` calls and little else; every other case goes through ``_Direction``'s methods.

* readable: a read of what the pipe has room for, then the pipe is drained into the other
  socket; again while the socket had more, up to ``READS_PER_TURN`` reads: bounded work per
  reactor turn. A new pipe holds 64 KiB (``PIPE_CHUNK``); the first read that fills it grows it
  to ``PIPE_SIZE`` (1 MiB, or ``/proc/sys/fs/pipe-max-size`` if less; where the kernel refuses,
  the pipe stays as it is, quietly), so bulk moves more per call while pairs of small messages
  never ask the kernel for more.
* backpressure: while the destination takes less than the pipe holds (EAGAIN), it is watched
  for writability and the source is still read while the pipe has room (so the destination
  has a full pipe to take when it is writable); once the pipe is full (its bytes, or its
  slots: a pipe's poll says so) the source is not read until the destination takes some. A
  slow reader holds at most ``PIPE_SIZE`` per direction, in the kernel; then TCP holds the
  sender back.
* half-close: a read of 0 bytes (FIN) is passed on as ``shutdown(SHUT_WR)`` of the other socket
  once the pipe is drained; the other direction goes on; when both are done both sockets are
  closed in that call (``_close_now``: the transport's ``connectionLost``, as its
  ``loseConnection`` does once its write half is closed; nothing is queued in it).
* reset: an error on either socket aborts both (SO_LINGER 0: RST); the close record says
  ``reset`` and who did it. Also on a socket not read at the time (its reads held back while
  the other side does not read, or its FIN in): it stays in the epoll for its errors
  (``_Dispatcher.watch``), so a peer's reset is not left to ``--idle-timeout``. An exception in one pair's handler aborts that pair (logged), not
  the dispatcher; the reactor letting go of the dispatcher (its shutdown) aborts every pair.
* byte counts, idle timeout, the close log line and the drain on shutdown are the pair's own
  (``playground.proxy.splice.Pair``): the sides' ``nbytes`` are counted here; ``Pair.abort`` and
  ``Pair.close`` stop the splicer before they close the sockets.

Cost per pair: two pipes, so four more file descriptors (six in all with the two sockets;
``reserve_fds``, at the factory's start, raises the soft open files limit to cover six per pair
of ``--max-connections`` where the hard limit allows, and says how many it covers when not; a
pair that cannot get its pipes forwards in Python) and,
in the kernel, a pipe's bookkeeping (about 2 KiB each; a grown pipe's slot ring about 10 KiB)
plus, only while bytes are in flight, page references for at most its size (64 KiB, 1 MiB once
grown: 2 MiB per pair at most, beside what the two sockets' own buffers hold); in Python, one
slotted ``Splicer`` with two ``_Direction`` and two ``_Leg`` objects (about 0.6 KiB), and for
an upstream connected here an ``UpstreamSocket`` in place of a Twisted transport (lighter).
Copying small reads (``recv_into``, ``send``) instead of splicing them was measured and costs
the same (``bench/proxy_bench.py --only copy``): every read goes through its pipe. A copy pair
(observed) costs no pipes; in Python its two ``_CopyDirection`` objects, and while a destination
is full the one read (at most ``COPY_READ``) each direction keeps. ``os.read`` and ``os.write``
cost about 4% less per call than ``socket.recv`` and ``socket.send`` here (no socket object,
no timeout check).
Unprivileged, grown pipes count against ``/proc/sys/fs/pipe-user-pages-soft`` (256 pages
each); past it the kernel refuses to grow more, and gives new pipes 2 pages (slower, working).
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import select
import socket
import struct

from twisted.internet import address, error, tcp
from twisted.internet.interfaces import IReactorFDSet, IReadDescriptor, ISSLTransport
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from playground.common import openfiles

log = Logger()

AVAILABLE = hasattr(os, "splice") and hasattr(select, "epoll")  # Linux
_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if AVAILABLE else 0
_splice = getattr(os, "splice", None)
PIPE_CHUNK = 64 * 1024  # a Linux pipe's default size: what a new pipe holds
PIPE_SIZE = 1 << 20  # what a pipe a read filled is grown to (F_SETPIPE_SZ)
READS_PER_TURN = 4  # reads one readable socket may take per reactor turn
COPY_READ = 64 * 1024  # what one read of a copy direction (an observed pair's) takes at most
EVENTS_PER_TURN = 256  # ready sockets handled per reactor turn
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
FDS_PER_PAIR = 6  # two sockets, two pipes of two ends each

_logged: set[str] = set()  # the reasons already logged (once per process)


def _once(key: str, text: str, **fields) -> None:
    if key not in _logged:
        _logged.add(key)
        log.info(text, **fields)


def _plain_tcp(transport) -> bool:
    return (type(transport) in (tcp.Server, tcp.Client) and not getattr(transport, "TLS", False)
            and not ISSLTransport.providedBy(transport)
            and IReactorFDSet.providedBy(getattr(transport, "reactor", None)))


def start(pair) -> Splicer | None:
    """Splice ``pair`` (just connected, the client still paused) kernel to kernel; None when that
    does not apply to it (the caller takes the ordinary path; the reason is logged once)."""
    ct, st = pair.client.transport, pair.server.transport
    if type(st) is UpstreamSocket:  # connected here, its pipes made before the connect
        pipes, st.pipes = st.pipes, None
        return Splicer(pair, pipes)
    if not AVAILABLE:
        _once("platform", "proxy: no splice(2) on this platform (os.splice): forwarding in Python")
        return None
    if not (_plain_tcp(ct) and _plain_tcp(st)):
        _once("transport", "proxy: a TLS or UNIX leg: its pairs forward in Python, not with "
                           "splice(2)")
        return None
    pipes = _pipes_or_none()
    return None if pipes is None else Splicer(pair, pipes)


def start_copy(pair) -> Splicer | None:
    """Forward observed ``pair`` (just connected, the client still paused) by copy in the
    dispatcher (``_CopyDirection``: no pipes, the observer told after each send); None when
    that does not apply to it (the caller takes the ordinary path; the reason is logged once)."""
    ct, st = pair.client.transport, pair.server.transport
    if not hasattr(select, "epoll"):
        _once("platform-copy", "proxy: no epoll on this platform: observed pairs forward "
                               "through Twisted")
        return None
    if not (_plain_tcp(ct) and _plain_tcp(st)):
        _once("transport-copy", "proxy: a TLS or UNIX leg: its observed pairs forward through "
                                "Twisted, not in the zero-copy dispatcher")
        return None
    _once("copy", "proxy: observed plain pairs forward by copy in the zero-copy dispatcher "
                  "(--no-zero-copy turns it off)")
    return Splicer(pair, None)


def _pipes_or_none() -> list[tuple[int, int]] | None:
    """A pair's two pipes, or None (the reason logged once: the pair forwards in Python)."""
    try:
        pipes = _pipes()
    except OSError as e:
        _once(f"pipe-{e.errno}", "proxy: cannot create pipes for splice(2) ({why}): such pairs "
                                 "forward in Python (raise the open files limit, ulimit -n)",
              why=e.strerror)
        return None
    _once("on", "proxy: plain pairs forward kernel to kernel (splice(2), 4 pipe fds per pair; "
                "--no-zero-copy turns it off)")
    return pipes


def ip_family(host: str | None) -> int | None:
    """``AF_INET`` or ``AF_INET6`` for an IP literal (what ``connector`` connects to); None for
    a host name (resolved by Twisted's ``connectTCP``) or no host."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host or "")
        except (OSError, ValueError):
            continue
        return family
    return None


def connector(client_transport, family: int) -> Connector | None:
    """A ``Connector`` for the upstream of a pair that will splice (no observer, no toxics:
    the caller's check), its pipes made; None where the splice does not apply to the client
    leg or no pipes are to be had (the caller takes ``connectTCP``; the reason is logged once)."""
    if not AVAILABLE or not _plain_tcp(client_transport):
        return None  # start() says why, once the upstream is up
    pipes = _pipes_or_none()
    return None if pipes is None else Connector(client_transport.reactor, family, pipes)


def reserve_fds(max_connections: int) -> None:
    """Raise the soft open files limit towards ``FDS_PER_PAIR`` per pair of ``--max-connections``
    (up to the hard limit); say once how many zero-copy pairs the limit covers when it falls
    short (pairs past it forward in Python, two fds each). 0 (no limit): nothing to size."""
    if not max_connections:
        return
    need = max_connections * FDS_PER_PAIR + openfiles.SPARE
    soft = openfiles.raise_open_files(need)
    if soft is not None and soft < need:
        _once("budget", "proxy: the open files limit ({limit}) covers about {pairs} zero-copy "
                        "pairs ({per} fds each) of --max-connections {max}; pairs past it forward "
                        "in Python (raise it: ulimit -n)",
              limit=soft, pairs=max(0, (soft - openfiles.SPARE) // FDS_PER_PAIR), per=FDS_PER_PAIR,
              max=max_connections)


def linger_zero(transport) -> None:
    """SO_LINGER {1, 0}: closing the socket then sends RST, not FIN (Twisted's abortConnection
    sets it too on TCP; set here so a reset never depends on that)."""
    try:
        transport.getHandle().setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
    except Exception:
        pass  # no socket of its own (a TLS wrapper over a test transport): abort alone


def _close_now(transport) -> None:
    """Close a spliced leg whose both directions are done, in this call: what
    ``loseConnection`` does for a transport whose write half is already closed (a stopped
    transport with nothing queued: the splice never writes through it), rather than watching
    it for writability to find its empty buffer on a later reactor turn (an epoll change, a
    dispatch and a turn per socket). The protocol hears ``connectionLost`` (ConnectionDone;
    the transport's own ``connectionLost`` stops its reading and writing)."""
    if transport.connected and not transport.disconnecting:
        transport.connectionLost(_DONE)


# The reason of every clean close of a spliced pair: one Failure, read (never changed) by the
# pair's handlers, not one built per leg.
_DONE = Failure(error.ConnectionDone())


def _max_pipe_size() -> int:
    """``PIPE_SIZE``, or less where ``/proc/sys/fs/pipe-max-size`` says so (above it only a
    privileged process may grow a pipe)."""
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            return max(PIPE_CHUNK, min(PIPE_SIZE, int(f.read())))
    except (OSError, ValueError):
        return PIPE_CHUNK


_pipe_size = _max_pipe_size()


def _pipes(n: int = 2) -> list[tuple[int, int]]:
    """``n`` non-blocking pipes, or an ``OSError`` with none of them left open."""
    made: list[tuple[int, int]] = []
    try:
        for _ in range(n):
            made.append(os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC))
    except OSError:
        _close_pipes(made)
        raise
    return made


def _close_pipes(pipes: list[tuple[int, int]]) -> None:
    """Close both ends of each of ``pipes`` (what they hold is dropped)."""
    for r, w in pipes:
        os.close(r)
        os.close(w)


@implementer(IReadDescriptor)
class _Dispatcher:
    """One private ``epoll`` for every zero-copy socket of a reactor, registered with the reactor
    as a single reader: its fd is readable while any socket in it is ready. ``doRead`` takes at
    most ``EVENTS_PER_TURN`` ready sockets and runs their handlers in one loop (the rest wait
    for the next turn: the fd stays readable), instead of a reactor dispatch
    (``callWithLogger``, ``_doReadOrWrite``) per socket."""

    __slots__ = ("reactor", "epoll", "legs", "registered", "turn")  # registered: with the
    # reactor; turn: doRead's calls, counted (a copy direction's full read ends its turn)

    def __init__(self, reactor):
        self.reactor = reactor
        self.epoll = select.epoll()
        self.legs: dict[int, _Leg] = {}  # fd -> the leg watched for it
        self.registered = False  # with the reactor: from the first leg on
        self.turn = 0

    def fileno(self) -> int:
        epoll = self.epoll  # -1 once closed (connectionLost): the reactor then looks it up
        return -1 if epoll.closed else epoll.fileno()

    def logPrefix(self) -> str:
        return "ZeroCopySplice"

    def watch(self, leg: _Leg) -> None:
        """Follow ``leg.reading`` and ``leg.writing``. A socket watched for neither (its reads
        held back: the other side does not read; or done: its FIN came) stays in the epoll for
        its errors alone (``EPOLLONESHOT`` and no events: the kernel reports ``EPOLLERR`` and
        ``EPOLLHUP`` whatever the mask), so a reset of the peer nobody reads is seen at once
        (``doRead``: a reset of the pair), not at ``--idle-timeout``; a hang-up without an
        error (shut both ways: its FIN, unread yet, after ours) is reported once and left for
        its reads. ``unwatch`` takes a socket out. The reactor watches the epoll from the first
        socket on, until it lets go (an epoll with nothing ready costs its poll nothing; adding
        and removing it per pair cost two ``epoll_ctl`` a pair)."""
        fd = leg.fd
        mask = (_EPOLLIN if leg.reading else 0) | (_EPOLLOUT if leg.writing else 0)
        if not mask:
            if fd in self.legs:
                self.epoll.modify(fd, _EPOLLONESHOT)  # its errors only, reported once
        elif fd in self.legs:
            self.epoll.modify(fd, mask)
        else:
            self.epoll.register(fd, mask)
            self.legs[fd] = leg
            if not self.registered:
                self.registered = True
                self.reactor.addReader(self)

    def unwatch(self, leg: _Leg) -> None:
        """Take ``leg``'s socket out of the epoll: it is the transport's again (a stopped
        splice), or a connect's that is over."""
        leg.reading = leg.writing = False
        if self.legs.pop(leg.fd, None) is not None:
            self.epoll.unregister(leg.fd)

    def forget(self, leg: _Leg) -> None:
        """``leg``'s socket is closed next, in this call: its fd leaves the epoll with the close
        (no ``epoll_ctl``); it is only taken out of ``legs``."""
        leg.reading = leg.writing = False
        self.legs.pop(leg.fd, None)

    def doRead(self):
        """The ready sockets' handlers, polled again while some were ready (bytes the peers
        sent meanwhile, with no reactor turn between), ``EVENTS_PER_TURN`` at most.

        The common event, a socket readable and nothing else, whose pipe is empty and whose
        destination is not waiting to be writable, is handled here in line (``_Direction.read``'s
        first read and its drain, with nothing looked up twice): a read into the pipe, then the
        pipe into the destination; anything else (the destination full, a FIN, a filled pipe,
        an error, a writable event) goes on in ``_Direction``'s own methods, as before. A copy
        direction (an observed pair's) takes the branch of a pipe with bytes (its ``pending`` is
        always true), so a spliced pair pays nothing for it; there, its destination not full, its
        read is in line too: a read, the write, the observer (5% less per event than a call of
        ``_CopyDirection.read``, in-process with 50 pairs; the spliced pairs' cost the same)."""
        legs = self.legs
        poll = self.epoll.poll
        splice = _splice
        flags = _FLAGS
        os_read, os_write = os.read, os.write
        seconds = self.reactor.seconds
        budget = EVENTS_PER_TURN
        self.turn = turn = self.turn + 1
        while budget > 0 and self.registered:  # not: a handler's close ended the reactor's
            ready = poll(0, budget)  # drain, whose shutdown let go of it (epoll closed)
            if not ready:
                return
            budget -= len(ready)
            served = 0  # copy directions that had their full read this turn, skipped
            for fd, events in ready:
                leg = legs.get(fd)
                if leg is None:
                    continue
                try:
                    if events == _EPOLLIN:  # readable, and nothing else
                        if not leg.reading:  # stopped by a handler earlier in this loop
                            continue
                        d = leg.out
                        dst = d.dst
                        if d.pending or dst.writing:
                            if d.pending is not True or dst.writing:  # a splice's, or full
                                d.read()
                                continue
                            # a copy direction (pending: always True) whose destination
                            # takes bytes: its read in line, as _CopyDirection.read's
                            if d.turn == turn:  # a full read this turn already: the next
                                served += 1  # turn's
                                continue
                            try:
                                data = os_read(fd, COPY_READ)
                            except BlockingIOError:
                                continue
                            except OSError:
                                d.splicer.reset(leg.role)
                                continue
                            n = len(data)
                            if 0 < n < COPY_READ:
                                side = d.side
                                side.nbytes += n
                                now = seconds()  # read now: the write may let the peer run
                                try:
                                    sent = os_write(dst.fd, data)
                                except BlockingIOError:
                                    sent = 0
                                except OSError:
                                    sent = -1
                                if sent == n:
                                    d.observe(side, data, now)
                                else:
                                    d.unsent(data, sent, now)
                            else:  # a full read (more on the next turn), or FIN
                                d.turn = turn
                                d.forward(data)
                            continue
                        size = d.size
                        try:
                            n = splice(fd, d.wfd, size, None, None, flags)
                        except BlockingIOError:  # the pipe is empty: so is the source
                            continue
                        except OSError:
                            d.splicer.reset(leg.role)
                            continue
                        if not 0 < n < size:  # a FIN, or a full pipe: the general way
                            if d.after_read(n, size):
                                d.read()
                            continue
                        d.side.nbytes += n
                        try:
                            moved = splice(d.rfd, dst.fd, n, None, None, flags)
                        except OSError:
                            moved = 0  # EAGAIN, or an error: drain() says which
                        if moved != n:
                            d.pending = n - moved
                            d.drain()
                        continue
                    if not (leg.reading or leg.writing):  # watched for its errors alone
                        if events & _EPOLLERR:  # a reset (or an error) of a peer not read
                            leg.splicer.reset(leg.role)
                        continue  # a hang-up alone: its reads, when they resume, say so
                    if leg.reading and events & _READY_IN:
                        leg.out.read()
                    if leg.writing and events & _READY_OUT:
                        leg.into.drain()
                except Exception:  # a bug in one pair's handler: that pair, not every pair
                    log.failure("zero-copy splice: {role} socket's handler failed",
                                role=leg.role)
                    leg.splicer.reset(leg.role)
            if served == len(ready):  # only those are ready: polling again would find
                return  # them again; the next turn reads them

    def connectionLost(self, reason):
        """The reactor let go of the epoll (its shutdown): every pair in it is aborted."""
        self.registered = False
        _dispatchers.pop(self.reactor, None)
        for leg in list(self.legs.values()):
            leg.splicer.reset(leg.role)
        self.legs.clear()
        self.epoll.close()


_dispatchers: dict = {}  # reactor -> its _Dispatcher
_EPOLLIN, _EPOLLOUT = getattr(select, "EPOLLIN", 0), getattr(select, "EPOLLOUT", 0)
_EPOLLERR, _EPOLLONESHOT = getattr(select, "EPOLLERR", 0), getattr(select, "EPOLLONESHOT", 0)
_HANGUP = getattr(select, "EPOLLHUP", 0) | _EPOLLERR
_READY_IN = _EPOLLIN | _HANGUP  # a hang-up or an error: the read or the drain says which
_READY_OUT = _EPOLLOUT | _HANGUP


def _dispatcher(reactor) -> _Dispatcher:
    d = _dispatchers.get(reactor)
    if d is None:
        d = _dispatchers[reactor] = _Dispatcher(reactor)
    return d


class _Leg:
    """One socket: readable moves bytes out of it (``out``), writable drains the pipe into it
    (``into``); watched in its reactor's ``_Dispatcher``."""

    __slots__ = ("fd", "transport", "dispatcher", "out", "into", "reading", "writing", "role",
                 "splicer")

    def __init__(self, splicer: Splicer, transport, role: str, dispatcher: _Dispatcher):
        self.splicer = splicer
        self.transport = transport
        self.fd = transport.fileno()
        self.dispatcher = dispatcher
        self.role = role
        self.reading = False
        self.writing = False
        self.out: _Direction | None = None
        self.into: _Direction | None = None

    def want_read(self, on: bool) -> None:
        if on != self.reading:
            self.reading = on
            self.dispatcher.watch(self)

    def want_write(self, on: bool) -> None:
        if on != self.writing:
            self.writing = on
            self.dispatcher.watch(self)


class _Direction:
    """Bytes read from ``src`` go through one pipe into ``dst``; counted on ``side.nbytes``."""

    __slots__ = ("splicer", "side", "src", "dst", "rfd", "wfd", "pending", "fin", "size")

    def __init__(self, splicer: Splicer, side, src: _Leg, dst: _Leg, pipe: tuple[int, int]):
        self.splicer = splicer
        self.side = side
        self.src = src
        self.dst = dst
        self.rfd, self.wfd = pipe
        self.size = PIPE_CHUNK  # what the pipe holds: grown once a read fills it
        self.pending = 0  # bytes in the pipe
        self.fin = False  # the source sent FIN

    def read(self):
        """Up to ``READS_PER_TURN`` reads into the pipe while it has room, each followed by a
        drain into the destination unless that is known to be full."""
        src = self.src
        for _ in range(READS_PER_TURN):
            pending = self.pending
            room = self.size - pending  # bytes: a pipe's slot may hold more than a page
            if room <= 0:
                src.want_read(False)  # until the writable destination takes some
                return
            try:
                n = _splice(src.fd, self.wfd, room, None, None, _FLAGS)
            except BlockingIOError:  # the source is empty, or the pipe's slots are full
                if pending and self._pipe_full():  # then the writable destination's drain
                    src.want_read(False)  # resumes the reads
                return
            except OSError:
                self.splicer.reset(src.role)
                return
            if not self.after_read(n, room):
                return

    def after_read(self, n: int, room: int) -> bool:
        """``n`` bytes were read into the pipe, which had ``room``: pass them on (or the FIN);
        whether to read the source again."""
        if n == 0:
            self.fin = True
            if not self.dst.writing:
                self.drain()  # the last FIN closes both sockets (their close leaves the epoll)
            if not self.splicer.stopped:
                self.src.want_read(False)
            return False
        self.side.nbytes += n
        if n == self.size and self.size < _pipe_size:
            self._grow()
        pending = self.pending
        if not pending and not self.dst.writing:  # the common case: straight through
            try:
                moved = _splice(self.rfd, self.dst.fd, n, None, None, _FLAGS)
            except OSError:
                moved = 0  # EAGAIN, or an error: drain() below tries again and says which
            if moved == n:
                return n >= room  # a read that took all the room may have left more
            self.pending = n - moved
        else:
            self.pending = pending + n
            if self.dst.writing:
                return True  # its writability drains the pipe; read on while it has room
        self.drain()
        return not self.splicer.stopped and (n >= room or bool(self.pending))

    def _pipe_full(self) -> bool:
        """Whether the pipe has no slot left (EAGAIN does not say whether it was the source or
        the pipe; the pipe's own poll does; a source read while the pipe is full would wake
        the dispatcher on every poll)."""
        poll = select.poll()
        poll.register(self.wfd, select.POLLOUT)
        return not poll.poll(0)

    def _grow(self) -> None:
        """A read filled the pipe: give it ``PIPE_SIZE`` (where the kernel allows), so one call
        moves more. Once per direction; a refusal keeps the pipe as it is, quietly (the kernel
        then stops the reads when its slots are full; the bytes held stay <= ``PIPE_SIZE``)."""
        try:
            self.size = fcntl.fcntl(self.wfd, _F_SETPIPE_SZ, _pipe_size)
        except OSError:
            self.size = _pipe_size  # not asked again

    def close(self) -> None:
        os.close(self.rfd)  # what the pipe holds is dropped
        os.close(self.wfd)

    def drain(self):
        pending = self.pending
        while pending:
            try:
                pending -= _splice(self.rfd, self.dst.fd, pending, None, None, _FLAGS)
            except BlockingIOError:
                break
            except OSError:
                self.pending = pending
                self.splicer.reset(self.dst.role)
                return
        moved = pending != self.pending
        self.pending = pending
        if pending:  # the destination is full: watched until it takes the rest
            self.dst.want_write(True)
            if moved and not self.fin:  # the pipe has room again
                self.src.want_read(True)
            return
        self.dst.want_write(False)
        if self.fin:
            self.splicer.passed_fin(self)
        else:
            self.src.want_read(True)


class _CopyDirection:
    """An observed pair's way: bytes read from ``src`` into Python (``os.read``, at most
    ``COPY_READ``), written to ``dst`` at once (``os.write``, non-blocking), then handed to the
    pair's observer (``factory.observe_data``, after the write: decoding never holds forwarding
    back); counted on ``side.nbytes``. What ``dst`` did not take is kept (``buf`` from ``off``),
    ``dst`` watched for writability and ``src`` not read until it is written: a slow reader holds
    at most one read per direction here. ``held``: the observer's backpressure stopped the reads
    (``Splicer.hold``); they start again only once it lets go and nothing is kept."""

    __slots__ = ("splicer", "side", "src", "dst", "buf", "off", "fin", "held", "observe", "turn")
    pending = True  # never a pipe: the dispatcher's in-line splice is not for it (its own
    # in-line copy is)

    def __init__(self, splicer: Splicer, side, src: _Leg, dst: _Leg, observe):
        self.splicer = splicer
        self.side = side
        self.src = src
        self.dst = dst
        self.buf: bytes | None = None  # what dst has not taken yet, from off
        self.off = 0
        self.fin = False  # the source sent FIN
        self.held = False  # paused by the observer's backpressure
        self.observe = observe  # factory.observe_data(side, data, now)
        self.turn = -1  # the dispatcher's turn of its last full read (then none more in it)

    def read(self):
        """A read, written on at once, then observed; a full one (``COPY_READ``: the source
        has more) is its last this reactor turn, as Twisted's ``doRead`` reads once a turn: a
        flooding source takes no more of a turn than on Twisted's path (more reads, a
        megabyte at once up to its observer's bound, made the server's replies come in bursts
        whose records held another client's PING behind them), while short reads (requests
        and replies) go on in the dispatcher's polls of the turn. (The dispatcher's loop does
        the read of a readable source in line, as here.)"""
        src = self.src
        turn = src.dispatcher.turn
        if self.turn == turn:
            return
        try:
            data = os.read(src.fd, COPY_READ)
        except BlockingIOError:
            return
        except OSError:
            self.splicer.reset(src.role)
            return
        if len(data) == COPY_READ:
            self.turn = turn
        self.forward(data)

    def forward(self, data: bytes) -> bool:
        """``data`` was read: write it on, then observe it (an empty read: the FIN); whether
        the source may be read again."""
        n = len(data)
        if not n:
            self.fin = True
            self.src.want_read(False)
            if self.buf is None:
                self._pass_fin()
            return False
        side = self.side
        side.nbytes += n
        now = self.splicer.pair.reactor.seconds()  # read now: the write may let the peer run
        try:
            sent = os.write(self.dst.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            sent = -1
        if sent != n:
            return self.unsent(data, sent, now)
        self.observe(side, data, now)  # may pause the source (hold)
        return True

    def unsent(self, data: bytes, sent: int, now: float) -> bool:
        """The destination took ``sent`` bytes of ``data`` (-1: it failed): keep the rest and
        watch it for writability, the source not read meanwhile; then observe ``data`` (read at
        ``now``). False: the source is not to be read now."""
        if sent < 0:  # read and counted: observed too, as on Twisted's path, then the reset
            self.observe(self.side, data, now)
            self.splicer.reset(self.dst.role)
            return False
        self.buf = data
        self.off = sent
        self.dst.want_write(True)
        self.src.want_read(False)
        self.observe(self.side, data, now)
        return False

    def drain(self):
        """The destination is writable (or failed): write what it did not take; all written,
        read the source again (unless the observer holds it) or pass its FIN on."""
        buf = self.buf
        if buf is not None:
            off = self.off
            try:
                off += os.write(self.dst.fd, memoryview(buf)[off:])
            except BlockingIOError:
                return
            except OSError:
                self.splicer.reset(self.dst.role)
                return
            if off < len(buf):
                self.off = off
                return
            self.buf = None
        self.dst.want_write(False)
        if self.fin:
            self._pass_fin()
        elif not self.held:
            self.src.want_read(True)

    def hold(self, on: bool) -> None:
        """The observer's backpressure on the source: stop its reads (``on``) or let them go
        on (unless bytes are still kept: then the drain starts them)."""
        self.held = on
        if not (self.fin or self.buf is not None or self.splicer.stopped):
            self.src.want_read(not on)

    def _pass_fin(self) -> None:
        """Everything read is written: tell the observer of the FIN (as ``Pair._pass_fin``
        does), then pass it on."""
        pair = self.splicer.pair
        if pair.info is not None:
            pair.factory.notify("half_closed", pair.id, self.side.direction,
                                pair.reactor.seconds())
        self.splicer.passed_fin(self)

    def close(self) -> None:
        self.buf = None  # what it kept is dropped, as a pipe's bytes are


class Connector:
    """An upstream connect in the private epoll, in place of ``connectTCP`` (whose Connector,
    Deferred, transport and extra reactor turn cost a pair more than its splice does): a
    non-blocking socket, ``connect``, and at once a second ``connect`` (on loopback the handshake
    is done by then: connected in this call, nothing watched); else the socket is watched for
    writability in the dispatcher (as a ``_Leg`` is, ``drain`` its handler) and ``SO_ERROR`` says
    how it went. Connected: ``factory.buildProtocol(addr).makeConnection(UpstreamSocket)``;
    refused or no answer within ``timeout`` (a ``TimeoutError``, 0: none of ours):
    ``factory.clientConnectionFailed(self, reason)``, what ``connectTCP`` reports.
    ``stopConnecting`` (the pair aborted meanwhile: the drain's deadline, a second signal)
    closes it quietly."""

    __slots__ = ("reactor", "family", "pipes", "sock", "fd", "factory", "addr", "timer",
                 "dispatcher", "reading", "writing", "role", "into", "splicer")

    def __init__(self, reactor, family: int, pipes: list[tuple[int, int]]):
        self.reactor = reactor
        self.family = family
        self.pipes = pipes
        self.sock: socket.socket | None = None
        self.fd = -1
        self.factory = None
        self.addr = None
        self.timer = None
        self.dispatcher: _Dispatcher | None = None
        # as a _Leg, for the dispatcher: watched for writability, which calls into.drain()
        self.reading = False
        self.writing = False
        self.role = "server"
        self.into = self.splicer = self

    def connect(self, host: str, port: int, factory, timeout: float) -> None:
        self.factory = factory
        self.addr = (host, port)
        try:
            self.sock = sock = socket.socket(self.family,
                                             socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
            err = sock.connect_ex((host, port))
            if err == errno.EINPROGRESS:
                err = sock.connect_ex((host, port))  # 0 once the handshake is done
        except OSError as e:
            err = e.errno or errno.EIO
        if err in (0, errno.EISCONN):
            self._connected()
        elif err in (errno.EINPROGRESS, errno.EALREADY):
            self.fd = self.sock.fileno()
            self.dispatcher = _dispatcher(self.reactor)
            self.writing = True
            self.dispatcher.watch(self)
            if timeout:
                self.timer = self.reactor.callLater(timeout, self._timed_out)
        else:
            self._failed(error.getConnectError((err, os.strerror(err))))

    def drain(self) -> None:
        """Writable (or an error): the connect is done, one way or the other."""
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._unwatch()
        if err:
            self._failed(error.getConnectError((err, os.strerror(err))))
        else:
            self._connected()

    def reset(self, role: str) -> None:
        """The dispatcher let go of the socket (the reactor's shutdown), or its handler raised."""
        self._unwatch()
        self._failed(error.ConnectionLost())

    def stopConnecting(self) -> None:
        self._unwatch()
        self._close()

    def _timed_out(self) -> None:
        self.timer = None
        self._unwatch()
        self._failed(error.TimeoutError())

    def _unwatch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.writing:
            self.dispatcher.unwatch(self)

    def _close(self) -> None:
        if self.pipes is not None:
            _close_pipes(self.pipes)
            self.pipes = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _failed(self, exc: Exception) -> None:
        self._close()
        self.factory.clientConnectionFailed(self, Failure(exc))

    def _connected(self) -> None:
        transport = UpstreamSocket(self.sock, self.reactor, self.pipes)
        self.sock = self.pipes = None
        protocol = self.factory.buildProtocol(_address(self.family, *self.addr))
        transport.protocol = protocol
        protocol.makeConnection(transport)


@functools.lru_cache(maxsize=64)
def _address(family: int, host: str, port: int):
    """The target's address for ``buildProtocol``: the same for every pair of a target."""
    kind = address.IPv4Address if family == socket.AF_INET else address.IPv6Address
    return kind("TCP", host, port)


def _socket_address(name: tuple):
    """A socket's address (``getsockname``, ``getpeername``) as Twisted's ``getHost`` has it."""
    kind = address.IPv6Address if len(name) == 4 else address.IPv4Address
    return kind("TCP", name[0], name[1])


class UpstreamSocket:
    """The upstream leg of a pair a ``Connector`` connected: what the pair and the splicer ask
    of a transport, over a socket the reactor never sees (the splicer takes ``pipes``). Closing
    is ``close`` alone (no ``shutdown`` first: the splice has passed any FIN already, and a
    close with unread bytes resets as Twisted's ``shutdown`` then ``close`` does);
    ``loseConnection`` and ``abortConnection`` (SO_LINGER 0: RST) close on the next reactor turn,
    as Twisted's transports do; ``connectionLost`` at once (``_close_now``)."""

    __slots__ = ("socket", "reactor", "pipes", "protocol", "connected", "disconnecting")

    def __init__(self, sock: socket.socket, reactor, pipes):
        self.socket = sock
        self.reactor = reactor
        self.pipes = pipes
        self.protocol = None
        self.connected = True
        self.disconnecting = False

    def fileno(self) -> int:
        return self.socket.fileno()

    def getHandle(self) -> socket.socket:
        return self.socket

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, enabled)

    def getPeer(self):
        return _socket_address(self.socket.getpeername())

    def getHost(self):
        return _socket_address(self.socket.getsockname())

    def stopReading(self) -> None:
        """Never in the reactor: nothing to stop (the splicer watches the socket)."""

    stopWriting = stopReading

    def unregisterProducer(self) -> None:
        """Nothing is ever registered: the splice moves the bytes."""

    def loseConnection(self) -> None:
        self._close_later(error.ConnectionDone())

    def abortConnection(self) -> None:
        linger_zero(self)
        self._close_later(error.ConnectionAborted())

    def _close_later(self, exc: Exception) -> None:
        if self.connected and not self.disconnecting:
            self.disconnecting = True
            self.reactor.callLater(0, self.connectionLost, Failure(exc))

    def connectionLost(self, reason: Failure) -> None:
        if not self.connected:
            return
        self.connected = False
        self.disconnecting = True
        if self.pipes is not None:  # never spliced (the client left first)
            _close_pipes(self.pipes)
            self.pipes = None
        self.socket.close()
        self.protocol.connectionLost(reason)


class Splicer:
    """The zero-copy state of one pair: a leg per socket, a direction per way: through a pipe
    each (``pipes``: spliced), or by copy (``pipes`` None: an observed pair, ``start_copy``)."""

    __slots__ = ("pair", "legs", "directions", "stopped")

    def __init__(self, pair, pipes):
        self.pair = pair
        self.stopped = False
        client, server = pair.client, pair.server
        ct, st = client.transport, server.transport
        for t in (ct, st):  # the transports hand their sockets over until the close
            t.stopReading()
            t.stopWriting()
        dispatcher = _dispatcher(ct.reactor)
        cleg = _Leg(self, ct, client.role, dispatcher)
        sleg = _Leg(self, st, server.role, dispatcher)
        if pipes is None:
            observe = pair.factory.observe_data
            c2s = _CopyDirection(self, client, cleg, sleg, observe)
            s2c = _CopyDirection(self, server, sleg, cleg, observe)
        else:
            c2s = _Direction(self, client, cleg, sleg, pipes[0])
            s2c = _Direction(self, server, sleg, cleg, pipes[1])
        cleg.out, cleg.into = c2s, s2c
        sleg.out, sleg.into = s2c, c2s
        self.legs = (cleg, sleg)
        self.directions = (c2s, s2c)
        cleg.want_read(True)
        sleg.want_read(True)

    def stop(self, closing: bool = False) -> None:
        """Unregister the legs and close the pipes (what they hold is dropped); the transports
        are the pair's again. Idempotent; called while the sockets are still open.
        ``closing``: both sockets are closed next, in this call (``_close_now``): an open leg
        is only forgotten (``_Dispatcher.forget``), its close takes it out of the epoll."""
        if self.stopped:
            return
        self.stopped = True
        for leg in self.legs:
            t = leg.transport
            if closing and t.connected and not t.disconnecting:
                leg.dispatcher.forget(leg)
            else:
                leg.dispatcher.unwatch(leg)
        for d in self.directions:
            d.close()

    def kept(self) -> list[tuple[object, bytes]]:
        """What a copy pair's directions read but their destinations have not taken yet: (the
        destination's transport, the bytes) each; nothing for a spliced pair (its pipes' bytes
        are the kernel's). ``Pair.close`` hands them to the transports before a FIN."""
        return [(d.dst.transport, bytes(memoryview(d.buf)[d.off:])) for d in self.directions
                if type(d) is _CopyDirection and d.buf is not None]

    def hold(self, role: str, on: bool) -> None:
        """The observer's backpressure on ``role``'s reads (a copy pair's: ``ProxyFactory._pause``
        and ``_resume_paused``), in place of the transport's ``pauseProducing`` and
        ``resumeProducing`` (which would give the socket back to the reactor)."""
        self.directions[0 if role == self.legs[0].role else 1].hold(on)

    def passed_fin(self, direction: _Direction) -> None:
        """``direction``'s source sent FIN and the pipe is drained: half-close the other socket;
        close both once both ways are done."""
        pair = self.pair
        role = direction.src.role
        bit = 1 if direction is self.directions[0] else 2
        if pair.read_closed & bit:
            return
        pair.read_closed |= bit
        if pair.closed_first is None:
            pair.closed_first = (role, "fin")
        if pair.read_closed == 3:
            self.stop(closing=True)
            try:
                _close_now(pair.client.transport)
            finally:  # closed even if the first close's handlers raised (logged by doRead)
                _close_now(pair.server.transport)
            return
        try:
            direction.dst.transport.getHandle().shutdown(socket.SHUT_WR)
        except OSError:
            self.reset(direction.dst.role)

    def reset(self, role: str) -> None:
        """``role``'s socket failed (reset, or the reactor let go of it): abort both, by RST."""
        if self.stopped:
            return
        pair = self.pair
        if pair.closed_first is None:
            pair.closed_first = (role, "reset")
        self.stop()
        for leg in self.legs:
            transport = leg.transport
            linger_zero(transport)
            transport.abortConnection()

