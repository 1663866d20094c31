"""The web view's cost, side by side in one run: redis-benchmark through the decoding proxy with
``--web`` off, on with no browser, and on with one headless chromium showing the page.

    python bench/web_bench.py [--quick] [--rounds 3] [--requests N] [--no-browser]
                              [--decode-inline]

Rows, at ``redis-benchmark -P 1`` and ``-P 16`` (``-q -t set,get -c 50``) against a real
redis-server: direct; the proxy decoding RESP into the console sink (written to a file, as
``bench/proxy_bench.py --decode`` does) with ``--web`` off; the same with ``--web`` on and no
browser; the same with Debian's chromium (headless, driven by Selenium through chromium-driver,
as ``tests/web/test_browser.py``) open on the page, live, during the run (the row is skipped,
with the reason, when chromium, chromedriver or selenium is missing). Each row: the worst
round's SET/GET requests per second, its ratio to ``--web`` off (worst against worst), and the
proxy's memory (``/proc/PID/status``: VmRSS at the end of the run, VmHWM its peak, each with its
decoder child's; the largest over the rounds). The settings are interleaved in each round, the
machine being shared. The proxy decodes, and serves the view, where it does by default: in its
decoder child on more than one core; ``--decode-inline``: in its own process.

Each proxy row also has the proxy's CPU per request, its child's included (median of the
rounds). Target: ``--web`` on without a browser within 5% of ``--web`` off, in the worst
round's rate and in CPU per request (web off's over web on's: the share of the rate a CPU-bound
proxy keeps); when the web-off rounds themselves differ by more than 5%, the verdict says the
rates are inconclusive. Exits 2 when a
peer is missing. Only loopback traffic; every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time

from benchsupport import children, free_port, wait_port
from proxy_bench import Proc, redis_benchmark, start_proxy

DECODING = ["--decode", "resp", "--color", "never"]  # proxy_bench's tcpplay+console row
CHROMEDRIVER = "/usr/bin/chromedriver"
TARGET = 0.95  # --web on, no browser: at least this share of --web off


def memory_kib(pid: int) -> tuple[int, int]:
    """VmRSS and VmHWM (peak) of process ``pid`` and its live children (the decoder process,
    where the view is kept by default), summed, in KiB."""
    found = {"VmRSS": 0, "VmHWM": 0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in found:
                found[name] = int(value.split()[0])
    for child in children(pid):
        rss, hwm = memory_kib(child)
        found["VmRSS"] += rss
        found["VmHWM"] += hwm
    return found["VmRSS"], found["VmHWM"]


class Browser:
    """One headless chromium (Selenium), reused for every browser row."""

    def __init__(self, profile: str):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = shutil.which("chromium")
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,860", f"--user-data-dir={profile}", "--no-first-run",
                    "--disable-extensions"):
            options.add_argument(arg)
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(20)

    def show(self, url: str) -> None:
        """Open the page and wait until its event feed is live."""
        from selenium.webdriver.common.by import By

        self.driver.get(url)
        deadline = time.monotonic() + 15
        while self.driver.find_element(By.ID, "status").text != "live":
            if time.monotonic() > deadline:
                raise SystemExit(f"the page at {url} did not go live in 15 s")
            time.sleep(0.05)

    def rows(self) -> int:
        from selenium.webdriver.common.by import By

        return len(self.driver.find_elements(By.CSS_SELECTOR, "#connections tbody tr"))

    def blank(self) -> None:
        self.driver.get("about:blank")

    def quit(self) -> None:
        self.driver.quit()


def browser_missing() -> str:
    """Why the browser rows cannot run, or ``""``."""
    missing = [t for t in ("chromium", "chromedriver") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} not installed (Debian: chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed in this Python (pip install -e '.[test]')"
    return ""


def one_run(setting: str, pipeline: int, n: int, rport: int, tmp: str,
            browser: Browser | None) -> tuple[dict[str, float], int, int]:
    """``setting``'s figures: ({SET, GET: req/s, cpu_us: the proxy's CPU per request}, VmRSS,
    VmHWM in KiB; 0 for direct)."""
    if setting == "direct":
        return redis_benchmark(rport, pipeline, n), 0, 0
    extra = list(DECODING)
    web = 0
    if setting != "web off":
        web = free_port()
        extra += ["--web", f"tcp:{web}:interface=127.0.0.1"]
    with open(f"{tmp}/console.txt", "wb") as console:
        proxy, port = start_proxy("tcpplay", rport, tmp, extra, stdout=console)
        try:
            if web:
                wait_port(web, what="the web view")
            if browser is not None:
                browser.show(f"http://127.0.0.1:{web}/")
            cpu = proxy.cpu()
            figures = redis_benchmark(port, pipeline, n)
            figures["cpu_us"] = (proxy.cpu() - cpu) / (2 * n) * 1e6
            if browser is not None and browser.rows() == 0:
                raise SystemExit("the page listed no connection during the run")
            rss, hwm = memory_kib(proxy.pid)
        finally:
            if browser is not None:
                browser.blank()
            proxy.stop()
    return figures, rss, hwm


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 requests per run (a smoke run)")
    ap.add_argument("--requests", type=int, default=0,
                    help="requests per run (default 100,000 at -P 1, 800,000 at -P 16)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the worst is shown")
    ap.add_argument("--no-browser", action="store_true", help="skip the chromium rows")
    ap.add_argument("--decode-inline", action="store_true",
                    help="decode (and serve the view) in the proxy's process, not in the decoder "
                         "child that is the default on more than one core")
    args = ap.parse_args(argv)
    if args.decode_inline:
        DECODING.append("--decode-inline")
    # SIGTERM stops like Ctrl-C: the proxy, redis-server and chromium are stopped on the way out
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    missing = [t for t in ("redis-server", "redis-benchmark") if not shutil.which(t)]
    if missing:
        print(f"missing peers: {', '.join(missing)} (Debian: apt-get install redis-server "
              "redis-tools; or run 'make bench')", file=sys.stderr)
        return 2
    base = args.requests or (20000 if args.quick else 100000)

    def requests(pipeline: int) -> int:
        """-n at ``pipeline``: 8 times more at -P 16 (0.25 s a test at -n 100000 was too short
        to be more than the scheduler's luck), so each test lasts a few seconds."""
        return base if args.requests else base * max(1, pipeline // 2)
    settings = ["direct", "web off", "web on, no browser", "web on, one browser"]
    why_not = "--no-browser" if args.no_browser else browser_missing()
    if why_not:
        settings.remove("web on, one browser")
    tmp = tempfile.mkdtemp(prefix="tcpplay-webbench-")
    rport = free_port()
    redis = Proc(["redis-server", "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no", "--maxclients", "10000"], rport, cwd=tmp)
    browser = None
    lines = []
    try:
        if "web on, one browser" in settings:
            browser = Browser(f"{tmp}/chromium")
        print(f"machine: {os.cpu_count()} cores; redis-benchmark -q -t set,get -c 50, -P 1 -n "
              f"{requests(1)}, -P 16 -n {requests(16)}; "
              f"proxy: tcpplay proxy {' '.join(DECODING)} > file; worst of {args.rounds} rounds",
              flush=True)
        for pipeline in (1, 16):
            runs: dict[str, list] = {s: [] for s in settings}
            for r in range(args.rounds):
                for setting in settings:
                    fig, rss, hwm = one_run(setting, pipeline, requests(pipeline), rport, tmp,
                                            browser if setting.endswith("browser") else None)
                    runs[setting].append((fig, rss, hwm))
                    print(f"  round {r + 1} -P {pipeline:<2} {setting:<20} "
                          f"SET {fig['SET']:>9,.0f} GET {fig['GET']:>9,.0f} req/s"
                          + (f"  CPU {fig['cpu_us']:.2f} us/req  RSS {rss / 1024:.1f} MiB (peak "
                             f"{hwm / 1024:.1f})" if rss else ""),
                          flush=True)
            worst = {s: min(((f["SET"] + f["GET"]) / 2, f) for f, _, _ in rs)
                     for s, rs in runs.items()}
            off = worst["web off"][0]
            # the proxy's CPU per request, median of the rounds: what the view costs it, steadier
            # than a rate on two shared cores; its ratio is the rate a CPU-bound proxy would keep
            cpu = {s: statistics.median(f["cpu_us"] for f, _, _ in rs)
                   for s, rs in runs.items() if s != "direct"}
            rates = [(f["SET"] + f["GET"]) / 2 for f, _, _ in runs["web off"]]
            swing = max(rates) / min(rates) - 1  # how much the web-off rounds differ
            for setting in settings:
                mean, fig = worst[setting]
                rss = max(x[1] for x in runs[setting])
                hwm = max(x[2] for x in runs[setting])
                ratio = f"{mean / off:6.1%} of web off"
                if setting in cpu:
                    ratio += f"; CPU {cpu[setting]:.2f} us/req"
                if setting == "web on, no browser":
                    kept = cpu["web off"] / cpu[setting]  # the share of the rate CPU alone leaves
                    met = mean >= TARGET * off and kept >= TARGET
                    verdict = "met" if met else "NOT met"
                    if swing > 1 - TARGET:
                        verdict += f"; web-off rounds differ by {swing:.0%}: rates inconclusive"
                    ratio += f" = {kept:.1%} by CPU (target >= {TARGET:.0%}: {verdict})"
                memory = f"{rss / 1024:6.1f} MiB / {hwm / 1024:6.1f} MiB" if rss else ""
                lines.append(f"-P {pipeline:<2} {setting:<20} {fig['SET']:>9,.0f}/{fig['GET']:<9,.0f}"
                             f" {ratio:<44} {memory}")
    finally:
        if browser is not None:
            browser.quit()
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print("\n" + "=" * 110)
    print(f"{'':<23} {'SET/GET req/s':<19} {'ratio (worst round); proxy CPU (median)':<44} "
          "RSS end / peak")
    for line in lines:
        print(line)
    if why_not:
        print(f"web on, one browser: skipped: {why_not}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
