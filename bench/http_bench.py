"""Requests/s of tcpplay's HTTP responder against a twisted.web Site, both measured with wrk.

    python bench/http_bench.py [--duration 10] [--connections 50] [--threads 2] [--quiet]

Starts ``twistd -n tcpplay http`` and ``bench/twweb_get.py`` (a twisted.web ``Site`` whose
``/get`` builds the same JSON) on free loopback ports, runs ``wrk -tT -cC -dDs`` against
``/get`` on each in turn, and prints requests/s, errors (non-2xx/3xx responses and socket errors
as wrk reports them) and the ratio. By default both servers log one line per request to their
stdout (tcpplay's access log; twisted.web's access log through twisted.logger); ``--quiet``
turns both off. Exits 2 when wrk is missing, 1 when a server fails to start or wrk fails.
"""

from __future__ import annotations

import argparse
import os
import re
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
    cmd = [wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.duration + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()}")
    result = parse_wrk(proc.stdout)
    if result["rps"] is None:
        raise RuntimeError(f"cannot read wrk output:\n{proc.stdout}")
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default 10)")
    ap.add_argument("--connections", type=int, default=50, help="wrk -c (default 50)")
    ap.add_argument("--threads", type=int, default=2, help="wrk -t (default 2)")
    ap.add_argument("--path", default="/get", help="path to request (default /get)")
    ap.add_argument("--quiet", action="store_true",
                    help="no per-request log lines on either server")
    args = ap.parse_args(argv)

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
    results = {}
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:
            url = f"http://127.0.0.1:{server.port}{args.path}"
            print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s {url}  "
                  f"({server.name})", flush=True)
            cpu_before = server.cpu_seconds()
            results[server.name] = r = run_wrk(wrk, url, args)
            cpu_after = server.cpu_seconds()
            r["cpu_us"] = None
            if cpu_before is not None and cpu_after is not None and r["requests"]:
                r["cpu_us"] = (cpu_after - cpu_before) / r["requests"] * 1e6
            if servers[0].proc.poll() is not None or servers[1].proc.poll() is not None:
                raise RuntimeError(f"a server exited during the run:\n{server.tail()}")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"http_bench: {e}", file=sys.stderr)
        return 1
    finally:
        for server in servers:
            server.stop()

    logging = "no access logs" if args.quiet else "both log one line per request"
    print(f"\n{args.path}, {args.duration}s each, {logging}")
    print(f"{'server':<14}{'requests/s':>12}{'requests':>10}{'latency':>10}{'non-2xx':>9}"
          f"{'sock err':>10}{'CPU us/req':>12}")
    for name, r in results.items():
        cpu = f"{r['cpu_us']:.1f}" if r["cpu_us"] is not None else "-"
        print(f"{name:<14}{r['rps']:>12.0f}{r['requests']:>10}{r['latency'] or '-':>10}"
              f"{r['non2xx']:>9}{r['socket_errors']:>10}{cpu:>12}")
    ratio = results["tcpplay"]["rps"] / results["twisted.web"]["rps"]
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"ratio tcpplay / twisted.web: {ratio:.2f}x (target {TARGET_RATIO}x: {verdict})")
    a, b = results["tcpplay"]["cpu_us"], results["twisted.web"]["cpu_us"]
    if a and b:
        # server CPU per request does not depend on how busy the rest of the machine is
        print(f"server CPU per request, twisted.web / tcpplay: {b / a:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
