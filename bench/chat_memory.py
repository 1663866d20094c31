"""Chat server memory with clients that do not read: RSS at start and at peak.

    python bench/chat_memory.py [--clients 1000] [--senders 100] [--seconds 10] [--rounds 3]
                                [--line 4000] [--budget 64m] [--max-sendq 1g] [--targets 20]
                                [--mode room,private] [--compare]

A fresh ``twistd -n tcpplay chat --flood-rate 0`` per round. ``--clients`` connections take a
nick and sit in ``#lobby``; ``--senders`` of them send ``--line``-byte lines as fast as the
server takes them for ``--seconds`` and read everything they are sent; the others never read
(their receive buffer is set to 4 KiB, so the kernel holds little and the server's own queues
fill). ``room``: the lines go to the room, so every reader's queue holds the same lines (their
bytes are shared); ``private``: each line is a ``/msg`` to the next of ``--targets`` non-readers
in turn, so every queued byte is its own (the case the budget is for; few targets, so that their
kernel buffers, a few MiB each, fill within the run). The server's RSS is sampled every 20 ms from /proc. Prints, per configuration, the RSS
before the clients connect and the worst peak over the rounds, with the lines sent and how many
clients the server dropped ("SendQ exceeded"). ``--compare`` adds a round set with an unbounded
budget (``--send-budget 1024g``), the behaviour before the budget. Only loopback traffic; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

from benchsupport import ROOT, TWISTD, free_port, rss_mib, stop, wait_port


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, rss_mib(self.pid))
            except OSError:
                return
            self.stop.wait(0.02)


def one_round(args, budget: str, mode: str) -> dict:
    port = free_port()
    cmd = [TWISTD, "-n", "--pidfile=", "tcpplay", "chat", "--listen", str(port),
           "--flood-rate", "0", "--max-connections", str(args.clients + 100),
           "--max-line", str(args.line + 64), "--send-budget", budget,
           "--max-sendq", args.max_sendq]
    log = open(os.devnull, "w")
    server = subprocess.Popen(cmd, cwd=str(ROOT), stdout=log, stderr=subprocess.STDOUT)
    socks: list[socket.socket] = []
    try:
        wait_port(port, what="chat server not")
        time.sleep(0.5)  # let the probe connection's close settle before the baseline
        start = rss_mib(server.pid)
        sampler = Sampler(server.pid)
        sampler.start()
        sel = selectors.DefaultSelector()
        senders = set(range(args.senders))
        for i in range(args.clients):
            s = socket.socket()
            if i not in senders:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(b"/nick u%d\n" % i)
            s.setblocking(False)
            socks.append(s)
            if i in senders:
                sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
        text = b"x" * args.line
        sent = received = 0
        out = {i: b"" for i in senders}
        got = dict.fromkeys(senders, 0)  # lines each sender has received
        mine = dict.fromkeys(senders, 0)  # lines each sender has sent
        window = 2 * args.senders  # lines sent and not yet seen by a sender: the server's pace
        target = args.senders  # the next non-reader to get a private line
        t_end = time.monotonic() + args.seconds
        while time.monotonic() < t_end:
            for key, events in sel.select(timeout=0.1):
                s = key.fileobj
                if events & selectors.EVENT_READ:
                    try:
                        for _ in range(64):
                            chunk = s.recv(1 << 20)
                            if not chunk:  # the server dropped a sender: it stops sending
                                sel.unregister(s)
                                events = 0
                                break
                            received += len(chunk)
                            got[key.data] += chunk.count(b"\n")
                    except (BlockingIOError, ConnectionError):
                        pass
                if events & selectors.EVENT_WRITE:
                    i = key.data
                    if not out[i]:
                        if (sent if mode == "room" else mine[i]) - got[i] >= window:
                            continue
                        if mode == "room":
                            out[i] = text + b"\n"
                        else:
                            out[i] = b"/msg u%d %s\n" % (target, text)
                            target += 1
                            if target >= min(args.clients, args.senders + args.targets):
                                target = args.senders
                    buf = out[i]
                    try:
                        n = s.send(buf)
                    except (BlockingIOError, ConnectionError):
                        continue
                    out[i] = buf[n:]
                    if not out[i]:
                        sent += 1
                        mine[i] += 1
        sampler.stop.set()
        sampler.join(2)
        dropped = sum(1 for i, s in enumerate(socks) if i not in senders and _closed(s))
        return {"start": start, "peak": sampler.peak, "sent": sent, "received": received,
                "dropped": dropped, "delivered": min(got.values())}
    finally:
        for s in socks:
            s.close()
        stop(server)
        log.close()


def _closed(s: socket.socket) -> bool:
    """Whether the server closed (or reset) this never-reading connection."""
    try:
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--senders", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--line", type=int, default=4000, help="bytes of text per line")
    p.add_argument("--targets", type=int, default=20,
                   help="non-readers that get the private lines")
    p.add_argument("--mode", default="room,private",
                   help="room (lines to the room), private (/msg to non-readers), or both")
    p.add_argument("--budget", default="64m", help="the server's --send-budget")
    p.add_argument("--max-sendq", default="1g",
                   help="the server's --max-sendq (default 1g: the budget alone bounds queues)")
    p.add_argument("--compare", action="store_true",
                   help="also run with an unbounded budget (the behaviour before it)")
    args = p.parse_args(argv)
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.clients + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.clients + 1000), hard))
    configs = [(mode, budget) for mode in args.mode.split(",")
               for budget in [args.budget] + (["1024g"] if args.compare else [])]
    print(f"chat: {args.clients} clients, {args.senders} senders of {args.line}-byte lines for "
          f"{args.seconds:g}s, the rest never read; {args.rounds} rounds, worst peak")
    print(f"{'mode':>8} {'--send-budget':>14} {'RSS start':>10} {'RSS peak':>10} {'growth':>8} "
          f"{'lines sent':>11} {'dropped':>8}")
    print("(lines sent: by all senders and read back by each; dropped: non-readers the server "
          "disconnected)")
    for mode, budget in configs:
        results = [one_round(args, budget, mode) for _ in range(args.rounds)]
        worst = max(results, key=lambda r: r["peak"] - r["start"])
        print(f"{mode:>8} {budget:>14} {worst['start']:>8.1f}Mi {worst['peak']:>8.1f}Mi "
              f"{worst['peak'] - worst['start']:>6.1f}Mi {worst['sent']:>11} "
              f"{worst['dropped']:>8}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
