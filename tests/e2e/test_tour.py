"""The guided tour (docs/tour.md) run for real, so it cannot rot silently.

The tour marks each console excerpt with ``<!-- tour: NAME -->``. This module reads those blocks,
runs their ``$`` commands (nc, curl, redis-cli, tshark, twistd ...) with every documented port
replaced by a free one, and checks the result against the excerpt:

* ``FULL`` blocks: every output line of the excerpt (``...`` skips, blank lines and volatile
  lines such as ``Date:`` aside) must appear, in order, in what the commands printed;
* other blocks: the listed key lines must appear both in the excerpt and in the real output
  (a server's log or a proxy's console for the blocks that show those).

Interactive sessions (lines typed after ``> ``) are replayed through pipes, one typed line at a
time, each waiting for the reply the tour shows next. ``SPEC`` must name every block of the page,
so a new excerpt cannot go unchecked.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.support.net import free_port, wait_port
from tests.support.paths import BIN, ROOT
from tests.support.processes import need
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(120)

DOC = ROOT / "docs" / "tour.md"
DOC_PORTS = (7000, 7001, 8080, 8081, 8082, 6379, 6380, 6479, 6481, 6482, 8478, 9100)
DEFAULT_LISTEN = {"echo": 7000, "chat": 7001, "http": 8080, "resp": 6380}
ENV = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONUNBUFFERED="1")
# Lines of an excerpt that differ on every run: never compared.
VOLATILE = re.compile(r"^(<?\s*Date: |(real|user|sys)\t)")
FULL = "full"

# name -> FULL, or the key lines (substrings; "^...$" = a whole line) that must still show.
SPEC: dict[str, object] = {
    # 1. echo
    "echo-server": ["echo listening on 127.0.0.1:7000"],
    "echo-nc": FULL,
    "echo-big": FULL,
    "echo-log": ["echo open 127.0.0.1:", "reason=client finished sending (half-close)"],
    "echo-interactive": FULL,
    "echo-reset": FULL,
    "echo-reset-log": ["reason=Connection to the other side was lost in a non-clean fashion."],
    # 2. chat
    "chat-server": ["chat listening on 127.0.0.1:7001"],
    "chat-alice": FULL,
    "chat-bob": FULL,
    "chat-raw": FULL,
    "chat-long": FULL,
    "chat-long-log": ["nick=long lines=1", "reason=line too long"],
    "chat-client": FULL,
    "chat-carol": FULL,
    # 3. http
    "http-server": ["http listening on 127.0.0.1:8080"],
    "http-index": FULL,
    "http-nc": FULL,
    "http-curl": ["> GET /get HTTP/1.1", "< HTTP/1.1 200 OK", "< Content-Type: application/json",
                  "left intact"],
    "http-keepalive": ["^HTTP/1.1 200 OK$", "^Content-Length: 101$"],
    "http-408": ["^HTTP/1.1 408 Request Timeout$", "^Connection: close$",
                 "408 Request Timeout: request head not complete within "],
    "http-400": FULL,
    "http-fake-server": FULL,
    "http-fake-curl": ["^hello$", "curl: (28) Operation timed out after "],
    "http-echo": FULL,
    "http-echo-curl": FULL,
    # 4. resp
    "resp-server": ["resp listening on 127.0.0.1:6380"],
    "resp-inline": FULL,
    "resp-inline-quotes": FULL,
    "resp-raw": FULL,
    "resp-binary": FULL,
    "resp-cli": FULL,
    # 5. proxy
    "proxy-server": ["proxy listening on 127.0.0.1:6479"],
    "proxy-cli": FULL,
    "proxy-console": ["protocol resp (detected)", 'SET foo "bar" -> +OK', 'GET foo -> "bar"',
                      'LRANGE letters "0" "-1" -> ["a", "b", "c"]',
                      "-> FIN (client finished sending)", "<- FIN (server finished sending)",
                      "c2s 31 B s2c 5 B"],
    "hex-server": [],
    "hex-cli": FULL,
    "hex-console": [
        "protocol hex (forced)", "#1 -> 31 bytes at offset 0", "#1 <- 5 bytes at offset 0",
        "    00000000  2a 33 0d 0a 24 33 0d 0a  53 45 54 0d 0a 24 33 0d  |*3..$3..SET..$3.|",
        "    00000010  0a 66 6f 6f 0d 0a 24 33  0d 0a 62 61 72 0d 0a     |.foo..$3..bar..|",
        "    00000000  2b 4f 4b 0d 0a                                    |+OK..|",
    ],
    "hexdump": FULL,
    "pipeline": FULL,
    "pipeline-console": ['SET a "1" -> +OK', "INCR a -> (integer) 2", 'GET a -> "2"',
                         "DEL a -> (integer) 1", 'SET k3 "v3" -> +OK', " ECHO \""],
    "subscribe": FULL,
    "publish": FULL,
    "pubsub-console": ['SUBSCRIBE news -> ["subscribe", "news", (integer) 1]',
                       'PUBLISH news "hello subscribers" -> (integer) 1',
                       '<- message news "hello subscribers"'],
    "proxy-http-server": [],
    "proxy-http-cli": FULL,
    "proxy-http-console": [
        "protocol http (detected)",
        "GET /status/418 -> 418 I'm a Teapot text/plain; charset=utf-8 13 B \"I'm a teapot\\n\"",
        "POST /post (5 B) -> 200 OK application/json",
        "GET /ip -> 200 OK application/json 24 B", "GET /uuid -> 200 OK application/json 49 B",
    ],
    "pcap-server": [],
    "pcap-cli": FULL,
    "tshark-plain": ["→ 6380 [SYN]", "[PSH, ACK]"],
    "tshark-resp": ["RESP 85 Request: SET foo bar", "RESP 59 Response: OK",
                    "RESP 76 Request: GET foo", "RESP 63 Response: bar"],
    "redis-server": ["Ready to accept connections"],
    "auth-server": [],
    "auth-cli": FULL,
    "auth-console": ['AUTH "(redacted)" -> +OK', 'SET foo "bar" -> +OK',
                     "GET foo -> -NOAUTH Authentication required."],
    "auth-tshark": ["Request: AUTH ******", "Request: SET foo bar",
                    "Response: Error: NOAUTH Authentication required."],
    "fault-latency-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-latency-cli": FULL,
    "fault-latency-console": [
        "proxy #1 toxic latency_downstream (latency, downstream) acts on this pair",
        "PING -> +PONG ("],  # and at least 200 ms: test_break_it_on_purpose reads the number
    "fault-reset-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-reset-cli": FULL,
    "fault-reset-console": ["(reset by toxic reset_peer_downstream)"],
    "fault-down-server": ["proxy listening on 127.0.0.1:6482",
                          "proxy down (toxic down_downstream): not listening"],
    "fault-down-cli": FULL,
    "fault-bandwidth-server": ["proxy listening on 127.0.0.1:8081"],
    "fault-bandwidth-cli": ["131072 bytes in "],
    "fault-bandwidth-console": [
        "proxy #1 toxic bandwidth_downstream (bandwidth, downstream) acts on this pair",
        "GET /bytes/131072 -> 200 OK application/octet-stream 131072 B ("],
    "fault-hangup-reset-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-hangup-reset-cli": ["^PONG$", "^Error: Connection reset by peer$", "^exit 1$"],
    "fault-hangup-reset-console": ["proxy #1 closed by toxic reset_peer_downstream (rst)",
                                   "(reset by toxic reset_peer_downstream)"],
    "fault-hangup-timeout-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-hangup-timeout-cli": FULL,
    "fault-hangup-timeout-console": ["proxy #1 closed by toxic timeout_downstream (fin)",
                                     "PING -> (no reply before close)",
                                     "(fin by toxic timeout_downstream)"],
    "fault-hangup-half-open-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-hangup-half-open-cli": FULL,
    "fault-hangup-half-open-console": [
        "proxy #1 toxic half_open_downstream (half_open, downstream) acts on this pair",
        "#1 -> FIN (client finished sending)"],
    "fault-resp-server": ["proxy listening on 127.0.0.1:6482"],
    "fault-resp-cli": FULL,
    "fault-resp-console": [
        "fault resp_downstream injected -LOADING Redis is loading the dataset in memory for "
        "GET user:1 on pair 1",
        "GET user:1 -> -LOADING Redis is loading the dataset in memory ("],
    # 6. connection pools
    "pool-demo": ["proxy redis listening on 127.0.0.1:6479"],
    "pool-no-pool": ["200 requests to 6479, 4 at a time, a new connection per request",
                     "^  200 TCP connection(s) opened$", "^  0 request(s) failed$"],
    "pool-no-pool-console": ['SET tcpplay:pool:0 "tcpplay-pool-val" -> +OK',
                             "(via 127.0.0.1:6479)", "#200 close 127.0.0.1:", "(fin by client)"],
    "pool-pooled": ["200 requests to 6479, 4 at a time, a pool of 2 connections",
                    "^  2 TCP connection(s) opened$", "^  0 health check(s) (PING)$",
                    "^  0 request(s) failed$"],
    "pool-pooled-console": ["#201 open 127.0.0.1:", "#202 open 127.0.0.1:",
                            "#202 close 127.0.0.1:"],
    "pool-resp-server": ["resp listening on 127.0.0.1:6380"],
    "pool-proxy-server": ["proxy listening on 127.0.0.1:6479"],
    "pool-check": ["round 2: 100 requests to 6479", "^  0 TCP connection(s) opened$",
                   "^  2 health check(s) (PING)$"],
    "pool-check-console": ["PING -> +PONG"],
    "pool-restart": ["round 2: 100 requests to 6479", "^  0 request(s) failed$"],
    "pool-resp-restart": ["resp listening on 127.0.0.1:6380"],
    "pool-restart-console": ["<- FIN (server finished sending)", "(fin by server)"],
    "pool-idle": ["round 2: 100 requests to 6479", "^  2 TCP connection(s) opened$"],
    "pool-idle-log": ["reason=idle timeout (3s)"],
    "pool-idle-console": ["(reset by server)"],
    "pool-max-server": ["resp listening on 127.0.0.1:6380"],
    "pool-max": ["a pool of 2 connections", "x ReplyError: ERR max number of clients reached",
                 "a pool of 1 connection", "^  1 TCP connection(s) opened$",
                 "^  0 request(s) failed$"],
    "pool-max-log": ["max-connections (1) reached (refused so far: 1)"],
    "pool-max-console": ["-ERR max number of clients reached", "(fin by server)"],
    # 7. layer 4 and layer 7
    "l4-resp-server": ["resp listening on 127.0.0.1:6380"],
    "l7-proxy": ["proxy listening on 127.0.0.1:6479"],
    "l4-proxy": ["proxy listening on 127.0.0.1:6481"],
    "l4-l7-cli": FULL,
    # The server's offsets depend on the size of COMMAND DOCS' reply: only the client's are keys.
    "l4-console": [
        "#1 protocol hex (forced)", "#1 -> 27 bytes at offset 0",
        "    00000000  2a 32 0d 0a 24 37 0d 0a  43 4f 4d 4d 41 4e 44 0d  |*2..$7..COMMAND.|",
        "#1 -> 38 bytes at offset 27",
        "    0000001b  2a 33 0d 0a 24 33 0d 0a  53 45 54 0d 0a 24 38 0d  |*3..$3..SET..$8.|",
        "    0000002b  0a 67 72 65 65 74 69 6e  67 0d 0a 24 35 0d 0a 68  |.greeting..$5..h|",
        "    0000003b  65 6c 6c 6f 0d 0a                                 |ello..|",
        "  2b 4f 4b 0d 0a                                    |+OK..|",
        "#1 -> 27 bytes at offset 65",
        "  24 35 0d 0a 68 65 6c 6c  6f 0d 0a                 |$5..hello..|",
        " c2s 92 B s2c ",
    ],
    "l7-console": ["#1 protocol resp (forced)", " COMMAND DOCS -> (", 'SET greeting "hello" -> +OK',
                   'GET greeting -> "hello"', " c2s 92 B s2c "],
    "k8s-service": FULL,
    "k8s-probes": FULL,
    "k8s-probes-log": ["cannot reach tcp:host=127.0.0.1:port=6380: Connection was refused"],
    # 8. resource limits
    "limit-server": ["echo listening on 127.0.0.1:7000"],
    "limit-clients": FULL,
    "limit-log": ["echo open 127.0.0.1:",
                  ": max-connections (2) reached (refused so far: 1)"],
    "slow-resp-server": ["resp listening on 127.0.0.1:6380"],
    "slow-proxy": ["proxy listening on 127.0.0.1:6479"],
    "slow-set": FULL,
    "slow-reader": ["VmRSS:"],
    "slow-console": ["GET big -> (no reply before close)", "(reset by client)"],
    "ulimit-server": ["echo listening on 127.0.0.1:7000"],
    "ulimit-clients": FULL,
    "ulimit-log": ["EMFILE encountered; releasing reserved file descriptor.",
                   "EMFILE recovery: Closed socket from ('127.0.0.1', ",
                   "Re-reserving EMFILE recovery file descriptor."],
    # 9. running it for real
    "daemon": ["^still here$", "Another twistd server is running, PID ",
               "echo listening on 127.0.0.1:7000", "Received SIGTERM, shutting down.",
               "echo stopped listening", "Server Shut Down."],
    "metrics-server": ["metrics listening on 127.0.0.1:9100", "echo listening on 127.0.0.1:7000",
                       "stats echo: conns open=0 total=1 refused=0 bytes c2s=3 s2c=3"],
    "metrics-curl": ["^hi$", 'tcpplay_connections_total{service="echo"} 1',
                     'tcpplay_bytes_total{service="echo",direction="c2s"} 3',
                     '"connections":{"open":0,"total":1,"refused":0}'],
    "serve-server": ["metrics listening on 127.0.0.1:9100", "proxy listening on 127.0.0.1:6479",
                     "echo listening on 127.0.0.1:7000", "http listening on 127.0.0.1:8080",
                     "resp listening on 127.0.0.1:6380", "chat listening on 127.0.0.1:7001"],
    "serve-metrics": FULL,
    "serve-drain": ["Received SIGTERM, shutting down.", "proxy stopped listening",
                    "proxy draining 1 open pair(s) for up to ",
                    "proxy drain time over: aborting 1 pair(s)", "how=shutdown",
                    "Server Shut Down."],
}


# -- the page ---------------------------------------------------------------------------------

class Block:
    def __init__(self, name: str, body: str):
        self.name = name
        self.body = body
        self.lines = body.splitlines()
        self.commands: list[str] = []
        for line in self.lines:
            if line.startswith("$ "):
                self.commands.append(line[2:])
            elif self.commands and self.commands[-1].endswith("\\"):
                self.commands[-1] = self.commands[-1][:-1] + line

    @property
    def typed(self) -> list[str]:
        return [line[2:] for line in self.lines if line.startswith("> ")]

    def output(self, interactive: bool = False) -> list[str]:
        """The excerpt's output lines (typed lines left out of interactive sessions)."""
        return [line for line in self.lines
                if not line.startswith("$ ") and not (interactive and line.startswith("> "))]

    def after(self, typed: str) -> str:
        """The line shown right after ``> typed``: the reply to wait for."""
        i = self.lines.index("> " + typed)
        return self.lines[i + 1]


def parse_tour(text: str) -> dict[str, Block]:
    blocks = {}
    for m in re.finditer(r"<!-- tour: (\S+) -->\n```console\n(.*?)```", text, re.S):
        assert m.group(1) not in blocks, f"two blocks named {m.group(1)}"
        blocks[m.group(1)] = Block(m.group(1), m.group(2))
    return blocks


BLOCKS = parse_tour(DOC.read_text(encoding="utf-8"))


class Tour:
    """The page's blocks with documented ports and /tmp paths mapped to this run's."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.ports = {p: free_port() for p in DOC_PORTS}
        alternatives = "|".join(str(p) for p in DOC_PORTS)
        self._port_re = re.compile(rf"(?<![\d.])({alternatives})(?!\d)")

    def port(self, doc_port: int) -> int:
        return self.ports[doc_port]

    def sub(self, text: str) -> str:
        text = self._port_re.sub(lambda m: str(self.ports[int(m.group(1))]), text)
        return text.replace("/tmp/tcpplay-", f"{self.tmp}/tcpplay-")

    def block(self, name: str) -> Block:
        assert name in BLOCKS, f"docs/tour.md has no block {name!r}"
        return BLOCKS[name]

    def commands(self, name: str) -> list[str]:
        return [self.sub(c) for c in self.block(name).commands]

    def server_args(self, name: str, *extra: str) -> list[str]:
        """``twistd -n tcpplay SUB ...`` of a block as the twistd fixture's args."""
        (cmd,) = self.commands(name)
        prefix = "twistd -n tcpplay "
        assert cmd.startswith(prefix), cmd
        args = shlex.split(cmd[len(prefix):])
        if args[0] in DEFAULT_LISTEN and "--listen" not in args:
            args += ["--listen", str(self.port(DEFAULT_LISTEN[args[0]]))]
        return args + list(extra)


def check(tour: Tour, name: str, actual: str, interactive: bool = False,
          mapped: bool = True) -> None:
    """The block's FULL lines (in order) or key lines appear in ``actual``; ``mapped=False``:
    the excerpt's ports as printed (a file's contents, not a running server's)."""
    block = tour.block(name)
    sub = tour.sub if mapped else str
    got = [line.rstrip("\r").rstrip() for line in actual.splitlines()]
    spec = SPEC[name]
    if spec == FULL:
        at = 0
        for line in block.output(interactive):
            if line in ("", "...") or VOLATILE.match(line):
                continue
            want = sub(line).rstrip()
            try:
                at = got.index(want, at) + 1
            except ValueError:
                shown = "\n".join(got[-60:])
                pytest.fail(f"[{name}] line {want!r} not found (in order) in the output:\n{shown}")
        return
    for key in spec:
        exact = key.startswith("^") and key.endswith("$")
        text = key[1:-1] if exact else key
        doc_lines = block.output(interactive)
        assert (text in doc_lines) if exact else (text in block.body), (
            f"[{name}] key {key!r} is no longer shown in docs/tour.md")
        want = sub(text)
        found = (want in got) if exact else (want in actual)
        assert found, f"[{name}] {want!r} not in the output:\n" + "\n".join(got[-60:])


# -- running things ---------------------------------------------------------------------------

def run(cmd: str, timeout: float = 20.0, tty: bool = False) -> tuple[str, int]:
    """Run a shell command (stdout and stderr together); ``tty``: on a terminal, as typed."""
    if not tty:
        p = subprocess.run(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, cwd=ROOT, env=ENV, timeout=timeout)
        return p.stdout.decode("utf-8", "replace"), p.returncode
    master, slave = pty.openpty()
    p = subprocess.Popen(["bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=slave, cwd=ROOT, env=ENV, start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.killpg(p.pid, signal.SIGKILL)
                raise TimeoutError(f"{cmd!r} still running after {timeout}s")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal is gone
                    data = b""
                if not data:
                    break
                chunks.append(data)
        code = p.wait(5)
    finally:
        os.close(master)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n"), code


def run_block(tour: Tour, name: str, tty: bool = False, timeout: float = 20.0) -> str:
    out = []
    for cmd in tour.commands(name):
        text, _ = run(cmd, timeout, tty)
        out.append(text)
    return "".join(out)


class Session:
    """A long-running command whose output is collected: pipes, or a terminal with ``tty``."""

    def __init__(self, cmd: str, tty: bool = False, stdin: bool = True):
        self.lines: list[str] = []
        self._buf = b""
        self._cond = threading.Condition()
        self.master = None
        if tty:
            self.master, slave = pty.openpty()
            self.proc = subprocess.Popen(["bash", "-c", "exec " + cmd], stdin=subprocess.DEVNULL,
                                         stdout=slave, stderr=slave, cwd=ROOT, env=ENV,
                                         start_new_session=True)
            os.close(slave)
            self._read = lambda: _read_fd(self.master)
        else:
            self.proc = subprocess.Popen(
                ["bash", "-c", "exec " + cmd],
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=ENV,
                start_new_session=True)
            self._read = lambda: self.proc.stdout.read1(65536)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self):
        while True:
            data = self._read()
            if not data:
                break
            with self._cond:
                self._buf += data
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def text(self) -> str:
        with self._cond:
            return self._buf.decode("utf-8", "replace").replace("\r\n", "\n")

    def wait_for(self, text: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while text not in self._buf.decode("utf-8", "replace").replace("\r\n", "\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not self._reader.is_alive():
                    raise AssertionError(f"{text!r} not seen; got:\n{self.text()}")
                self._cond.wait(min(left, 0.2))

    def send(self, line: str) -> None:
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def close_stdin(self) -> None:  # what Ctrl-D does at a terminal
        self.proc.stdin.close()

    def wait(self, timeout: float = 10.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self, sig=signal.SIGINT) -> None:  # Ctrl-C
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        if self.master is not None:
            os.close(self.master)
            self.master = None


def _read_fd(fd) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""


def listening(port: int) -> bool:
    """Something listens on 127.0.0.1:port (read from /proc: connecting would be accepted)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(path).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


@pytest.fixture
def tour(tmp_path):
    return Tour(tmp_path)


@pytest.fixture
def sessions():
    started: list[Session] = []

    def start(cmd, **kw) -> Session:
        s = Session(cmd, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop(signal.SIGKILL)


def start_server(twistd, tour: Tour, name: str, *extra: str, check_now: bool = True):
    """Start a block's ``twistd -n tcpplay ...`` and wait until it listens."""
    t = twistd(tour.server_args(name, *extra))
    t.wait_for("listening on")
    if check_now and SPEC[name]:
        await_keys(tour, name, t)
    return t


def await_keys(tour: Tour, name: str, server) -> None:
    """Wait for each key line of a console/log block in a twistd's output, then check it."""
    for key in SPEC[name]:
        server.wait_for(tour.sub(key))
    check(tour, name, server.output())


# -- the page itself --------------------------------------------------------------------------

@pytest.mark.pure
def test_every_block_is_checked():
    assert set(BLOCKS) == set(SPEC), (
        f"blocks without a check: {sorted(set(BLOCKS) - set(SPEC))}; "
        f"checks without a block: {sorted(set(SPEC) - set(BLOCKS))}")
    for name, spec in SPEC.items():
        if spec != FULL:
            for key in spec:
                text = key.strip("^$") if key.startswith("^") else key
                assert text in BLOCKS[name].body, f"[{name}] key {key!r} not in the block"


@pytest.mark.pure
def test_readme_links_the_tour():
    assert "(docs/tour.md)" in (ROOT / "README.md").read_text(encoding="utf-8")


# -- 1. bytes over TCP ------------------------------------------------------------------------

@pytest.mark.twistd
def test_echo(twistd, tour, sessions):
    need("nc")
    echo = start_server(twistd, tour, "echo-server")
    check(tour, "echo-nc", run_block(tour, "echo-nc"))
    check(tour, "echo-big", run_block(tour, "echo-big"))
    await_keys(tour, "echo-log", echo)

    # Typing into nc; Ctrl-D without -N sends nothing: the connection stays open.
    block = tour.block("echo-interactive")
    (cmd,) = tour.commands("echo-interactive")
    start = len(echo.lines)
    nc = sessions(cmd)
    for line in block.typed:
        nc.send(line)
        nc.wait_for(block.after(line) + "\n")
    check(tour, "echo-interactive", nc.text(), interactive=True)
    opened = echo.wait_for("echo open", start=start)
    nc.close_stdin()
    peer = opened.rsplit(" ", 1)[1]
    with pytest.raises(subprocess.TimeoutExpired):  # a bounded look for what must not happen
        nc.proc.wait(0.3)
    assert not any(f"echo close {peer}" in line for line in echo.lines[start:])
    nc.stop()  # Ctrl-C: now the connection closes
    echo.wait_for(f"echo close {peer}", start=start)

    start = len(echo.lines)
    check(tour, "echo-reset", run_block(tour, "echo-reset"))
    echo.wait_for("non-clean fashion", start=start)
    await_keys(tour, "echo-reset-log", echo)
    assert echo.terminate() == 0


# -- 2. a text protocol -----------------------------------------------------------------------

def _terminal(tour: Tour, sessions, block_name: str, ready: str) -> Session:
    """The block's one command started in its own terminal, once it shows ``ready``."""
    (cmd,) = tour.commands(block_name)
    session = sessions(cmd)
    session.wait_for(ready)
    return session


def _converse(tour: Tour, terminals: dict, steps: list) -> None:
    """Replay typed lines in the given order, each waiting for its reply in the tour."""
    for who, typed in steps:
        block_name, session = terminals[who]
        block = tour.block(block_name)
        assert typed in block.typed, f"{block_name} no longer types {typed!r}"
        session.send(typed)
        session.wait_for(tour.sub(block.after(typed)))


@pytest.mark.twistd
def test_chat(twistd, tour, sessions):
    need("nc")
    chat = start_server(twistd, tour, "chat-server")
    alice = _terminal(tour, sessions, "chat-alice", "= hello ")
    bob = _terminal(tour, sessions, "chat-bob", "= hello ")
    terms = {"alice": ("chat-alice", alice), "bob": ("chat-bob", bob)}
    _converse(tour, terms, [
        ("alice", "/nick alice"), ("bob", "/nick bob"),
        ("alice", "hi bob, this is plain text over TCP"), ("bob", "/me waves"),
        ("bob", "/msg alice psst"), ("alice", "/who"), ("bob", "/quit bye for now"),
    ])
    alice.wait_for("= quit bob bye for now")
    check(tour, "chat-alice", alice.text(), interactive=True)
    check(tour, "chat-bob", bob.text(), interactive=True)
    alice.stop()

    check(tour, "chat-raw", run_block(tour, "chat-raw"))
    # The server closes with the rest of the long line unread, so its kernel may answer with a
    # reset that discards the error line before nc reads it (a race, rare on an idle machine):
    # the excerpt must come out in one of three runs.
    for attempt in range(3):
        out = run_block(tour, "chat-long")
        if "! line-too-long" in out or attempt == 2:
            break
    check(tour, "chat-long", out)
    await_keys(tour, "chat-long-log", chat)

    # The Twisted client with carol on nc; Ctrl-D (end of input) makes it /quit and exit 0.
    dave = _terminal(tour, sessions, "chat-client", "= who #lobby dave")
    carol = _terminal(tour, sessions, "chat-carol", "= hello ")
    terms = {"dave": ("chat-client", dave), "carol": ("chat-carol", carol)}
    _converse(tour, terms, [("carol", "/nick carol"), ("dave", "hello carol"),
                            ("carol", "hi dave"), ("dave", "/who *")])
    dave.close_stdin()
    assert dave.wait() == 0
    carol.wait_for("= quit dave quit")
    check(tour, "chat-client", dave.text(), interactive=True)
    check(tour, "chat-carol", carol.text(), interactive=True)
    carol.stop()
    assert chat.terminate() == 0


# -- 3. HTTP ----------------------------------------------------------------------------------

@pytest.mark.twistd
def test_http(twistd, tour, sessions):
    need("nc")
    need("curl")
    # Shorter timeouts than the defaults the tour shows (15 s keep-alive, 5 s header).
    http = start_server(twistd, tour, "http-server",
                        "--keepalive-timeout", "1", "--header-timeout", "1")
    check(tour, "http-index", run_block(tour, "http-index"))
    check(tour, "http-nc", run_block(tour, "http-nc"))
    check(tour, "http-curl", run_block(tour, "http-curl", tty=True))

    t0 = time.monotonic()
    check(tour, "http-keepalive", run_block(tour, "http-keepalive"))
    assert time.monotonic() - t0 >= 0.9, "nc returned before the keep-alive timeout closed it"
    t0 = time.monotonic()
    check(tour, "http-408", run_block(tour, "http-408"))
    assert time.monotonic() - t0 >= 0.9, "408 before the header timeout"
    check(tour, "http-400", run_block(tour, "http-400"))

    # nc -l playing a server that sends no Content-Length and never closes: curl waits.
    (server_cmd,) = tour.commands("http-fake-server")
    fake = sessions(server_cmd, stdin=False)
    wait_until(lambda: listening(tour.port(8082)), what="nc -l to listen")
    check(tour, "http-fake-curl", run_block(tour, "http-fake-curl"))
    fake.wait_for("Accept: */*")
    check(tour, "http-fake-server", fake.text())
    fake.stop()

    check(tour, "http-echo", run_block(tour, "http-echo"))
    check(tour, "http-echo-curl", run_block(tour, "http-echo-curl"))
    assert http.terminate() == 0


# -- 4 and 5. RESP, the proxy -----------------------------------------------------------------

@pytest.mark.twistd
def test_resp_and_proxy(twistd, tour, sessions):
    for tool in ("nc", "curl", "redis-cli", "redis-server", "tshark", "hexdump"):
        need(tool)
    resp = start_server(twistd, tour, "resp-server")

    block = tour.block("resp-inline")
    (cmd,) = tour.commands("resp-inline")
    nc = sessions(cmd)
    for line in block.typed:
        nc.send(line)
        nc.wait_for(block.after(line))
    check(tour, "resp-inline", nc.text(), interactive=True)
    nc.stop()
    for name in ("resp-inline-quotes", "resp-raw", "resp-binary"):
        check(tour, name, run_block(tour, name))
    check(tour, "resp-cli", run_block(tour, "resp-cli", tty=True))

    # The decoding proxy, and the hex view beside it.
    proxy = start_server(twistd, tour, "proxy-server")
    check(tour, "proxy-cli", run_block(tour, "proxy-cli", tty=True))
    await_keys(tour, "proxy-console", proxy)
    hexproxy = start_server(twistd, tour, "hex-server")
    check(tour, "hex-cli", run_block(tour, "hex-cli", tty=True))
    await_keys(tour, "hex-console", hexproxy)
    assert hexproxy.terminate() == 0
    check(tour, "hexdump", run_block(tour, "hexdump"))

    check(tour, "pipeline", run_block(tour, "pipeline"))
    await_keys(tour, "pipeline-console", proxy)

    (sub_cmd,) = tour.commands("subscribe")
    sub = sessions(sub_cmd, tty=True)
    proxy.wait_for("SUBSCRIBE news -> ")
    check(tour, "publish", run_block(tour, "publish", tty=True))
    sub.wait_for('3) "hello subscribers"')
    check(tour, "subscribe", sub.text())
    sub.stop()
    await_keys(tour, "pubsub-console", proxy)

    # HTTP through the proxy.
    http = start_server(twistd, tour, "http-server")
    hproxy = start_server(twistd, tour, "proxy-http-server")
    check(tour, "proxy-http-cli", run_block(tour, "proxy-http-cli"))
    await_keys(tour, "proxy-http-console", hproxy)

    # A pcap, read by tshark (the proxy is stopped first so the file is complete).
    pproxy = start_server(twistd, tour, "pcap-server")
    check(tour, "pcap-cli", run_block(tour, "pcap-cli", tty=True))
    pproxy.wait_for("proxy #2 close")
    assert pproxy.terminate() == 0
    check(tour, "tshark-plain", run_block(tour, "tshark-plain"))
    check(tour, "tshark-resp", run_block(tour, "tshark-resp"))

    # A real Redis with a password behind the proxy: AUTH is redacted everywhere.
    redis = start_doc_redis(tour, sessions)
    assert proxy.terminate() == 0
    aproxy = start_server(twistd, tour, "auth-server")
    check(tour, "auth-cli", run_block(tour, "auth-cli", tty=True))
    await_keys(tour, "auth-console", aproxy)
    assert aproxy.terminate() == 0
    assert "s3cret" not in aproxy.output()
    cmds = tour.commands("auth-tshark")
    if tour.port(6379) != 6379:  # tshark decodes RESP by itself on 6379 only
        cmds = [c + f" -d tcp.port=={tour.port(6379)},resp" for c in cmds]
    out = "".join(run(c)[0] for c in cmds)
    check(tour, "auth-tshark", out)
    assert "s3cret" not in out
    assert b"s3cret" not in (tour.tmp / "tcpplay-auth.pcap").read_bytes()
    redis.stop(signal.SIGTERM)
    for server in (http, resp):
        assert server.terminate() == 0


@pytest.mark.twistd
def test_break_it_on_purpose(twistd, tour):
    for tool in ("nc", "redis-cli"):
        need(tool)
    resp = start_server(twistd, tour, "resp-server")
    proxy = start_server(twistd, tour, "fault-latency-server")
    started = time.monotonic()
    check(tour, "fault-latency-cli", run_block(tour, "fault-latency-cli", tty=True))
    assert time.monotonic() - started >= 0.2
    await_keys(tour, "fault-latency-console", proxy)
    # the latency shown holds the toxic's 200 ms (on a loaded machine the timer fires a few ms
    # late: "(213.5 ms)" as well as the page's "(201.3 ms)")
    m = re.search(r"PING -> \+PONG \(([\d.]+) (ms|s)\)", proxy.output())
    assert m, proxy.output()
    assert float(m.group(1)) * (1 if m.group(2) == "ms" else 1000) >= 200, m.group(0)
    assert proxy.terminate() == 0
    proxy = start_server(twistd, tour, "fault-reset-server")
    check(tour, "fault-reset-cli", run_block(tour, "fault-reset-cli"))
    await_keys(tour, "fault-reset-console", proxy)
    assert proxy.terminate() == 0
    proxy = start_server(twistd, tour, "fault-down-server")
    check(tour, "fault-down-cli", run_block(tour, "fault-down-cli"))
    assert proxy.terminate() == 0
    _bandwidth_and_hangups(twistd, tour)
    proxy = start_server(twistd, tour, "fault-resp-server")
    check(tour, "fault-resp-cli", run_block(tour, "fault-resp-cli", tty=True))
    await_keys(tour, "fault-resp-console", proxy)
    assert proxy.terminate() == 0
    assert resp.terminate() == 0


def _bandwidth_and_hangups(twistd, tour: Tour) -> None:
    """curl under a 64 KB/s toxic; one redis-cli under reset_peer, timeout and half_open."""
    need("curl")
    http = start_server(twistd, tour, "http-server")
    proxy = start_server(twistd, tour, "fault-bandwidth-server")
    out = run_block(tour, "fault-bandwidth-cli")
    check(tour, "fault-bandwidth-cli", out)
    m = re.search(r"^131072 bytes in ([\d.]+) s: (\d+) B/s$", out, re.M)
    assert m, out
    assert float(m.group(1)) >= 1.8 and int(m.group(2)) <= 64 * 1024 * 1.1, out
    await_keys(tour, "fault-bandwidth-console", proxy)
    assert proxy.terminate() == 0
    assert http.terminate() == 0
    for name, lasted in (("reset", (0.9, 2.0)), ("timeout", (0.9, 2.0)),
                         ("half-open", (2.9, 3.5))):
        proxy = start_server(twistd, tour, f"fault-hangup-{name}-server")
        started = time.monotonic()
        check(tour, f"fault-hangup-{name}-cli", run_block(tour, f"fault-hangup-{name}-cli"))
        took = time.monotonic() - started
        assert lasted[0] <= took <= lasted[1], (name, took)
        await_keys(tour, f"fault-hangup-{name}-console", proxy)
        if name == "half-open":  # the proxy closed nothing
            assert "#1 close" not in proxy.output()
        assert proxy.terminate() == 0


def start_doc_redis(tour: Tour, sessions) -> Session:
    """The tour's redis-server command (password s3cret), on this run's port."""
    (cmd,) = tour.commands("redis-server")
    redis = sessions(cmd + f" --dir {tour.tmp}", stdin=False)
    redis.wait_for("Ready to accept connections")
    check(tour, "redis-server", redis.text())
    wait_port(tour.port(6379))
    return redis


# -- 6. connection pools ----------------------------------------------------------------------

def _round_2(text: str) -> str:
    """What ``tcpplay-pool --rounds 2`` printed for its second round."""
    assert "round 2: " in text, text
    return text.split("round 2: ", 1)[1]


@pytest.mark.twistd
def test_pool(twistd, tour, sessions):
    p = tour.port
    demo = start_server(twistd, tour, "pool-demo", "--redis", str(p(6479)),
                        "--http", str(p(8081)), "--web", str(p(8478)))
    check(tour, "pool-no-pool", run_block(tour, "pool-no-pool", timeout=90))
    await_keys(tour, "pool-no-pool-console", demo)
    check(tour, "pool-pooled", run_block(tour, "pool-pooled", timeout=90))
    demo.wait_for("#202 close")
    await_keys(tour, "pool-pooled-console", demo)
    assert "#203 open" not in demo.output()  # two pairs carried the 200 requests
    assert demo.terminate() == 0

    resp = start_server(twistd, tour, "pool-resp-server")
    proxy = start_server(twistd, tour, "pool-proxy-server")
    out = run_block(tour, "pool-check", timeout=90)
    check(tour, "pool-check", out)
    assert "  2 health check(s) (PING)" in _round_2(out)
    await_keys(tour, "pool-check-console", proxy)

    # Restart the server while the pool idles between its rounds.
    (cmd,) = tour.commands("pool-restart")
    pooled = sessions(cmd, stdin=False)
    pooled.wait_for("request(s) failed", timeout=60)  # round 1 is done
    assert resp.terminate() == 0
    resp = start_server(twistd, tour, "pool-resp-restart")
    assert pooled.wait(60) == 0
    check(tour, "pool-restart", pooled.text())
    second = _round_2(pooled.text())
    assert "  2 TCP connection(s) opened" in second and "  0 request(s) failed" in second
    await_keys(tour, "pool-restart-console", proxy)

    # The server's idle timeout (3 s) closes them during a 5-second pause.
    out = run_block(tour, "pool-idle", timeout=90)
    check(tour, "pool-idle", out)
    assert "  2 TCP connection(s) opened" in _round_2(out)
    await_keys(tour, "pool-idle-log", resp)
    await_keys(tour, "pool-idle-console", proxy)

    # A server with room for one client: a pool of two keeps being refused, a pool of one fits.
    assert resp.terminate() == 0
    resp = start_server(twistd, tour, "pool-max-server")
    first, second = tour.commands("pool-max")
    out, code = run(first, 90)
    assert code == 1 and "request(s) failed" in out
    refused = re.search(r"^    (\d+) x ReplyError: ERR max number of clients reached$", out, re.M)
    assert refused and int(refused.group(1)) >= 1, out
    more, code = run(second, 90)
    assert code == 0
    check(tour, "pool-max", out + more)
    await_keys(tour, "pool-max-log", resp)
    await_keys(tour, "pool-max-console", proxy)
    for server in (proxy, resp):
        assert server.terminate() == 0


# -- 7. layer 4 and layer 7 -------------------------------------------------------------------

@pytest.mark.twistd
def test_layer4_and_layer7(twistd, tour):
    for tool in ("nc", "redis-cli"):
        need(tool)
    resp = start_server(twistd, tour, "l4-resp-server")
    l7 = start_server(twistd, tour, "l7-proxy")
    l4 = start_server(twistd, tour, "l4-proxy")
    check(tour, "l4-l7-cli", run_block(tour, "l4-l7-cli"))
    await_keys(tour, "l4-console", l4)
    await_keys(tour, "l7-console", l7)

    # The Service file as the page quotes it: its ports are the file's, not this run's.
    (grep,) = tour.block("k8s-service").commands
    check(tour, "k8s-service", run(grep)[0], mapped=False)

    # With the server stopped, the proxy still accepts (layer 4) but nothing answers (layer 7).
    assert resp.terminate() == 0
    check(tour, "k8s-probes", run_block(tour, "k8s-probes"))
    await_keys(tour, "k8s-probes-log", l7)
    for proxy in (l4, l7):
        assert proxy.terminate() == 0


# -- 8. resource limits -----------------------------------------------------------------------

def _count(server, text: str) -> int:
    return sum(text in line for line in server.lines)


@pytest.mark.twistd
def test_resource_limits(twistd, tour, sessions):
    for tool in ("nc", "redis-cli"):
        need(tool)
    # --max-connections 2: two clients held open, the third refused and logged, then room again.
    echo = start_server(twistd, tour, "limit-server")
    hold, third, fourth = tour.commands("limit-clients")
    started = time.monotonic()
    out = [run(hold)[0]]
    assert time.monotonic() - started < 2, "the background clients held the command"
    wait_until(lambda: _count(echo, "echo open") == 2, what="two clients in")
    out.append(run(third)[0])
    echo.wait_for("max-connections (2) reached")
    assert time.monotonic() - started < 3, "the third client came after the first two left"
    out.append(run(fourth)[0])
    check(tour, "limit-clients", "".join(out))
    await_keys(tour, "limit-log", echo)
    assert echo.terminate() == 0

    # A client that never reads 50 MB of replies: the proxy's resident memory stays put.
    resp = start_server(twistd, tour, "slow-resp-server")
    proxy = start_server(twistd, tour, "slow-proxy")
    check(tour, "slow-set", run_block(tour, "slow-set"))
    before, after = (run(c, timeout=30)[0] for c in tour.commands("slow-reader"))
    check(tour, "slow-reader", before + after)
    kib = [int(re.search(r"^VmRSS:\s+(\d+) kB$", text, re.M).group(1)) for text in (before, after)]
    assert kib[1] - kib[0] < 8 * 1024, f"the proxy grew from {kib[0]} to {kib[1]} KiB"
    await_keys(tour, "slow-console", proxy)
    closed = re.search(r"#1 close \S+ c2s 450 B s2c (\d+) B", proxy.output())
    assert closed and 0 < int(closed.group(1)) < 40_000_000, proxy.output()[-2000:]
    for server in (proxy, resp):
        assert server.terminate() == 0

    # ulimit -n 24: accept() fails with EMFILE, Twisted closes the extra clients, then recovers.
    (cmd,) = tour.commands("ulimit-server")
    limited = sessions("bash -c " + shlex.quote(cmd), stdin=False)
    limited.wait_for(tour.sub(SPEC["ulimit-server"][0]))
    check(tour, "ulimit-server", limited.text())
    clients, again = tour.commands("ulimit-clients")
    out = [run(clients)[0]]
    for key in SPEC["ulimit-log"]:
        limited.wait_for(tour.sub(key))
    check(tour, "ulimit-log", limited.text())
    out.append(run(again)[0])
    check(tour, "ulimit-clients", "".join(out))
    assert "Traceback" not in limited.text()
    assert limited.text().count("EMFILE encountered") < 50, "accept() retried in a loop"
    limited.stop(signal.SIGTERM)


# -- 9. running it for real -------------------------------------------------------------------

@pytest.mark.twistd
def test_daemon(tour):
    need("nc")
    cmds = tour.commands("daemon")
    start, cat_pid, talk, again, kill, cat_log = cmds
    # the tour's echo listens on its default port: move it (and the refused second start) here
    start, again = (c + f" --listen {tour.port(7000)}" for c in (start, again))
    pidfile = tour.tmp / "tcpplay-echo.pid"
    logfile = tour.tmp / "tcpplay-echo.log"
    out, code = run(start)
    assert code == 0, out
    try:
        wait_until(pidfile.exists, what="the pid file")
        wait_until(lambda: logfile.exists() and "listening on" in logfile.read_text(),
                   what="the daemon to listen")
        pid_text, _ = run(cat_pid)
        pid = int(pid_text.strip())
        said, _ = run(talk)
        refused, code = run(again)
        assert code == 1
        assert f"Another twistd server is running, PID {pid}" in refused
        run(kill)
        wait_until(lambda: not pidfile.exists(), what="the pid file to go")
        wait_until(lambda: not Path(f"/proc/{pid}").exists(), what="the daemon to exit")
        log, _ = run(cat_log)
        check(tour, "daemon", "\n".join([pid_text, said, refused, log]))
        assert log.rstrip().endswith("Server Shut Down.")
    finally:
        if pidfile.exists():
            os.kill(int(pidfile.read_text().strip()), signal.SIGKILL)


@pytest.mark.twistd
def test_metrics(twistd, tour):
    need("nc")
    need("curl")
    echo = start_server(twistd, tour, "metrics-server", check_now=False)
    check(tour, "metrics-curl", run_block(tour, "metrics-curl"))
    echo.wait_for(tour.sub(SPEC["metrics-server"][-1]), timeout=10)
    check(tour, "metrics-server", echo.output())
    assert echo.terminate() == 0


@pytest.mark.twistd
def test_serve_and_drain(twistd, tour, sessions):
    for tool in ("redis-cli", "redis-server", "curl"):
        need(tool)
    redis = start_doc_redis(tour, sessions)
    p = tour.port
    overrides = {
        "proxy.redis.listen": p(6479), "proxy.redis.target": p(6379),
        "proxy.redis.drain-timeout": 1, "echo.echo.listen": p(7000), "http.web.listen": p(8080),
        "resp.cache.listen": p(6380), "chat.lobby.listen": p(7001), "metrics": p(9100),
    }
    extra = [arg for k, v in overrides.items() for arg in ("--set", f"{k}={v}")]
    serve = start_server(twistd, tour, "serve-server", *extra)
    check(tour, "serve-metrics", run_block(tour, "serve-metrics", tty=True))

    # SIGTERM with a subscriber still connected through the proxy: drain, then abort.
    sub = sessions(tour.sub("redis-cli -p 6479 --no-auth-warning -a s3cret SUBSCRIBE news"),
                   tty=True)
    sub.wait_for('1) "subscribe"')
    assert serve.terminate() == 0
    check(tour, "serve-drain", serve.output())
    sub.wait_for("Connection reset by peer")
    sub.stop()
    redis.stop(signal.SIGTERM)
