"""Requests/s of tcpplay's HTTP responder against a twisted.web Site, both measured with wrk.

    python bench/http_bench.py [--rounds 3] [--duration 10] [--connections 50] [--threads 2]
                               [--quiet]

Starts ``twistd -n tcpplay http`` and ``bench/twweb_get.py`` (a twisted.web ``Site`` whose
``/get`` builds the same JSON) on free loopback ports and runs ``wrk -tT -cC -dDs`` against
``/get`` on each, in interleaved rounds (the first server alternating). Prints, per round and
server, requests/s, errors (non-2xx/3xx responses and socket errors as wrk reports them), the
server's CPU per request and wrk's own (the load generator, written in C, must cost well below
the server it drives); then the spread of the rounds, the ratio per round and the ratio of the
worst rounds, which the target (1.5x, zero errors) is judged on. By default both servers log
one line per request to their stdout (tcpplay's access log; twisted.web's access log through
twisted.logger); ``--quiet`` turns both off. Exits 2 when wrk is missing, 1 when a server fails
to start or wrk fails.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchsupport import HERE, ROOT, free_port

TARGET_RATIO = 1.5


def _bin(name: str) -> str:
    for folder in (Path(sys.executable).parent, ROOT / ".venv" / "bin"):
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"http_bench: {name} not found (run from the project venv: make venv)")
    return found


class Server:
    """A server subprocess whose output goes to a temporary file (never a full pipe)."""

    def __init__(self, name: str, args: list[str], port: int):
        self.name = name
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix=f"http-bench-{name}-", suffix=".log",
                                               delete=False)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=str(ROOT), env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   + self.tail())
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} not listening on {self.port} after {timeout}s:\n"
                           + self.tail())

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server process has used (Linux /proc), else None."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 20) -> str:
        text = Path(self.log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        os.unlink(self.log.name)


def parse_wrk(text: str) -> dict:
    out = {"rps": None, "non2xx": 0, "socket_errors": 0, "requests": None, "latency": None}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m:
        out["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", text)
    if m:
        out["requests"] = int(m.group(1))
    m = re.search(r"Latency\s+(\S+)", text)
    if m:
        out["latency"] = m.group(1)
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        out["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = sum(int(g) for g in m.groups())
        out["socket_detail"] = m.group(0)
    return out


def run_wrk(wrk: str, url: str, args) -> dict:
    """One wrk run; also wrk's own CPU time (the load generator must not be the bottleneck)."""
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", url]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    result = parse_wrk(proc.stdout)
    if result["rps"] is None:
        raise RuntimeError(f"cannot read wrk output:\n{proc.stdout}")
    result["wrk_cpu"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return result


def measure(server: Server, wrk: str, args) -> dict:
    """One wrk run against ``server``, with the server's and wrk's CPU per request."""
    url = f"http://127.0.0.1:{server.port}{args.path}"
    cpu_before = server.cpu_seconds()
    r = run_wrk(wrk, url, args)
    cpu_after = server.cpu_seconds()
    r["cpu_us"] = r["wrk_us"] = None
    if r["requests"]:
        r["wrk_us"] = r["wrk_cpu"] / r["requests"] * 1e6
        if cpu_before is not None and cpu_after is not None:
            r["cpu_us"] = (cpu_after - cpu_before) / r["requests"] * 1e6
    if server.proc.poll() is not None:
        raise RuntimeError(f"{server.name} exited during the run:\n{server.tail()}")
    return r


def _us(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds, each running wrk once against each server (default 3)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    ap.add_argument("--path", default="/get", help="path to request (default /get)")
    ap.add_argument("--quiet", action="store_true",
                    help="no per-request log lines on either server")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.duration < 1:
        ap.error("--rounds and --duration must be at least 1")

    wrk = shutil.which("wrk")
    if wrk is None:
        print("http_bench: wrk is not installed (apt-get install wrk, or make bench-tools)",
              file=sys.stderr)
        return 2
    python = sys.executable
    twistd = _bin("twistd")

    p1, p2 = free_port(), free_port()
    tcpplay_cmd = [twistd, "-n", "--pidfile=", "tcpplay", "http", "--listen", f"127.0.0.1:{p1}"]
    if args.quiet:
        tcpplay_cmd.append("--no-access-log")
    web_cmd = [python, str(HERE / "twweb_get.py"), str(p2)] + (["--quiet"] if args.quiet else [])
    servers = [Server("tcpplay", tcpplay_cmd, p1), Server("twisted.web", web_cmd, p2)]
    rounds: list[dict[str, dict]] = []
    try:
        for server in servers:
            server.wait_ready()
        for n in range(args.rounds):
            # interleaved, the first server alternating, so a load change hits both alike
            order = servers if n % 2 == 0 else servers[::-1]
            results = {}
            for server in order:
                print(f"round {n + 1}/{args.rounds}: wrk -t{args.threads} -c{args.connections} "
                      f"-d{args.duration}s http://127.0.0.1:{server.port}{args.path}  "
                      f"({server.name})", flush=True)
                results[server.name] = measure(server, wrk, args)
            rounds.append(results)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"http_bench: {e}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()

    logging = "no access logs" if args.quiet else "both log one line per request"
    print(f"\n{args.path}, {args.rounds} rounds of {args.duration}s each, {logging}")
    print(f"{'round':<7}{'server':<14}{'requests/s':>12}{'requests':>10}{'latency':>10}"
          f"{'non-2xx':>9}{'sock err':>10}{'CPU us/req':>12}{'wrk us/req':>12}")
    for n, results in enumerate(rounds, 1):
        for name in ("tcpplay", "twisted.web"):
            r = results[name]
            print(f"{n:<7}{name:<14}{r['rps']:>12.0f}{r['requests'] or 0:>10}"
                  f"{r['latency'] or '-':>10}{r['non2xx']:>9}{r['socket_errors']:>10}"
                  f"{_us(r['cpu_us']):>12}{_us(r['wrk_us']):>12}")
    ratios = [r["tcpplay"]["rps"] / r["twisted.web"]["rps"] for r in rounds]
    worst = {name: min(r[name]["rps"] for r in rounds) for name in ("tcpplay", "twisted.web")}
    best = {name: max(r[name]["rps"] for r in rounds) for name in ("tcpplay", "twisted.web")}
    errors = sum(r[name]["non2xx"] + r[name]["socket_errors"] for r in rounds for name in r)
    print("spread (worst-best requests/s): "
          + ", ".join(f"{name} {worst[name]:.0f}-{best[name]:.0f}" for name in worst))
    print("ratio per round: " + ", ".join(f"{x:.2f}x" for x in ratios))
    worst_ratio = worst["tcpplay"] / worst["twisted.web"]
    met = worst_ratio >= TARGET_RATIO and errors == 0
    print(f"ratio of the worst rounds, tcpplay / twisted.web: {worst_ratio:.2f}x "
          f"(lowest round {min(ratios):.2f}x; target {TARGET_RATIO}x with zero errors: "
          f"{'met' if met else 'NOT met'}; errors {errors})")
    cpu = [r["twisted.web"]["cpu_us"] / r["tcpplay"]["cpu_us"] for r in rounds
           if r["tcpplay"]["cpu_us"] and r["twisted.web"]["cpu_us"]]
    if cpu:
        # server CPU per request depends less on how busy the rest of the machine is
        print("server CPU per request, twisted.web / tcpplay, per round: "
              + ", ".join(f"{x:.2f}x" for x in cpu))
    return 0


if __name__ == "__main__":
    sys.exit(main())
