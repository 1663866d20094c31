"""The web view in a real browser: Debian's chromium, headless, driven by Selenium through Debian's
chromium-driver (no Selenium Manager download), the proxy in front of a real redis-server.

A failing test saves a screenshot under its pytest tmp dir and prints the path. With
``TCPPLAY_WEB_SCREENSHOT=docs/web.png`` the test also saves the page it ends on there (the
README's picture).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from playground.web.site import stream_text
from tests.support.net import free_port
from tests.support.paths import ROOT
from tests.support.processes import need, start_proxy
from tests.support.waiting import wait_until
from tests.support.web import api_get, web_url

pytestmark = pytest.mark.twistd

CHROMEDRIVER = "/usr/bin/chromedriver"


def _chromium(tmp_path, request, *extra: str):
    """Headless chromium with ``extra`` flags; a screenshot when the test failed."""
    need("chromium")
    need("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = need("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,860", f"--user-data-dir={tmp_path / 'chromium'}",
                "--no-first-run", "--disable-extensions", *extra):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            shot = tmp_path / "failure.png"
            driver.save_screenshot(str(shot))
            print(f"\nweb view screenshot of the failure: {shot}")
        driver.quit()


@pytest.fixture
def browser(tmp_path, request):
    yield from _chromium(tmp_path, request)


# The network off: every request that is not to loopback goes to a proxy that is not there
# (port 9, refused; loopback bypasses a proxy by default), and no name resolves but loopback's.
OFFLINE = ("--proxy-server=http://127.0.0.1:9",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
           "--disable-background-networking", "--disable-component-update",
           "--disable-domain-reliability", "--disable-sync", "--no-pings")


@pytest.fixture
def offline_browser(tmp_path, request):
    yield from _chromium(tmp_path, request, *OFFLINE)


@pytest.fixture
def evil_browser(tmp_path, request):
    """A browser in which ``evil.test`` names a page server on loopback: a site of its own."""
    yield from _chromium(tmp_path, request, "--host-resolver-rules=MAP evil.test 127.0.0.1")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report


def redis_cli(port: int, *args: str, stdin: bytes | None = None) -> str:
    out = subprocess.run([need("redis-cli"), "-p", str(port), *args], input=stdin,
                         capture_output=True, timeout=20, check=True)
    return out.stdout.decode().strip()


def listed_ids(browser) -> list[str]:
    """The ids of the list's rows in the page, in order (read at once: rows come and go)."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#connections tbody tr'), "
        "(tr) => tr.dataset.id)")


def drawn_exchanges(browser) -> list[int]:
    """The indexes of the exchanges table's rows in the page, in order."""
    return browser.execute_script(
        "return Array.from(document.querySelectorAll('#exchanges tbody tr'), "
        "(tr) => Number(tr.dataset.index))")


def table_rows(browser, selector: str) -> list[tuple[str | None, tuple[str, ...]]]:
    """The rows ``selector`` finds, read at once in the page (the live tables redraw while a
    test reads them: row by row through Selenium, a row redrawn meanwhile is a stale element):
    ``(its data-key, its cells' rendered text)`` each."""
    return [(key, tuple(cells)) for key, cells in browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), (tr) => [tr.dataset.key ?? null,"
        " Array.from(tr.cells, (td) => td.innerText.trim())])", selector)]


def list_at_end(browser) -> bool:
    """Whether the connections list is scrolled to its end (its newest rows in view)."""
    return browser.execute_script(
        "const p = document.getElementById('list-pane');"
        "return p.scrollTop + p.clientHeight >= p.scrollHeight - 4")


def status(browser) -> str:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, "status").text


def test_the_page_works_with_the_network_off(twistd, redis_server, offline_browser):
    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    url = web_url(proc)
    from selenium.common.exceptions import WebDriverException

    with pytest.raises(WebDriverException, match="net::ERR_PROXY_CONNECTION_FAILED"):
        offline_browser.get("http://192.0.2.1/")  # the switch works: elsewhere is out of reach
    offline_browser.get(url)
    wait_until(lambda: status(offline_browser) == "live", 10, "live feed")
    assert redis_cli(port, "set", "k", "v") == "OK"
    wait_until(lambda: listed_ids(offline_browser) == ["1"], 5, "the connection")
    styled = offline_browser.execute_script(
        "return getComputedStyle(document.querySelector('header')).display")
    assert styled == "flex"  # app.css came
    origin = url.split("/")[0] + "//" + url.split("/")[2]
    asked = offline_browser.execute_script(
        "return performance.getEntries().filter((e) => e.entryType === 'navigation' || "
        "e.entryType === 'resource').map((e) => e.name)")
    assert any(name.startswith(origin + "/static/app.js") for name in asked)
    assert [name for name in asked if not name.startswith(origin + "/")] == []
    assert proc.terminate() == 0


def test_the_filter_bar_says_what_it_is_and_shows_its_whole_hint(twistd, browser):
    """A newcomer sees an empty box in the header: its hint says it is a filter and fits in it
    (the full syntax is its tooltip)."""
    proc, _ = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1", "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    hint, room, needed = browser.execute_script(
        "const bar = document.getElementById('filter'), style = getComputedStyle(bar);"
        "const pen = document.createElement('canvas').getContext('2d'); pen.font = style.font;"
        "return [bar.placeholder, bar.clientWidth - parseFloat(style.paddingLeft)"
        " - parseFloat(style.paddingRight), pen.measureText(bar.placeholder).width]")
    assert hint.startswith("filter"), hint
    assert needed <= room, f"{hint!r} needs {needed:.0f} px, the bar shows {room:.0f}"
    assert proc.terminate() == 0


def test_an_empty_list_says_what_will_appear_there(twistd, browser):
    """Opened before any client came (as the demo's banner suggests), the page is not a bare
    table header: it says what will be listed; the note goes with the first connection."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    note = browser.find_element(By.ID, "empty-note")
    assert note.is_displayed() and note.text.startswith("No connections yet"), note.text
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert s.recv(10) == b""  # the target is down: closed by the proxy, listed all the same
    wait_until(lambda: listed_ids(browser) == ["1"], 5, "the connection")
    wait_until(lambda: not note.is_displayed(), 5, "the note gone")
    assert proc.terminate() == 0


def test_the_page_reconnects_after_a_restart(twistd, redis_server, browser):
    from selenium.webdriver.common.by import By

    listen, web = free_port(), free_port()
    argv = ("--web", f"tcp:{web}:interface=127.0.0.1", "--quiet")
    proc, port = start_proxy(twistd, redis_server.port, *argv,
                             listen=f"tcp:{listen}:interface=127.0.0.1")
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    assert redis_cli(port, "set", "before", "1") == "OK"
    assert redis_cli(port, "ping") == "PONG"
    wait_until(lambda: listed_ids(browser) == ["1", "2"], 5, "two connections")
    browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
    wait_until(lambda: "before" in browser.find_element(By.ID, "exchanges").text, 5, "its row")

    assert proc.terminate() == 0
    wait_until(lambda: status(browser) == "reconnecting…", 5, "the page to say it is gone")
    assert browser.find_element(By.ID, "status").get_attribute("class") == "status down"
    time.sleep(1.5)  # a retry or two against a closed port: still reconnecting, nothing lost
    assert status(browser) == "reconnecting…" and listed_ids(browser) == ["1", "2"]

    proc, port = start_proxy(twistd, redis_server.port, *argv,
                             listen=f"tcp:{listen}:interface=127.0.0.1")
    wait_until(lambda: status(browser) == "live", 10, "the feed back")
    # another process: its list replaces the old one once its first message is drawn (the feed
    # says "live" when the stream opens, a message and a frame before that)
    wait_until(lambda: listed_ids(browser) == [], 5, "the new process's empty list")
    assert browser.find_element(By.ID, "detail-pane").get_attribute("hidden") is not None
    assert redis_cli(port, "get", "before") == "1"
    wait_until(lambda: listed_ids(browser) == ["1"], 5, "the new connection")
    browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
    wait_until(lambda: "get before" in browser.find_element(By.ID, "exchanges").text, 5,
               "the new connection's exchanges, not the old one's")
    assert "set before" not in browser.find_element(By.ID, "exchanges").text
    assert proc.terminate() == 0


def _connections(port: int, count: int) -> None:
    """Open and close ``count`` connections to ``port``, a hundred at a time."""
    for start in range(0, count, 100):
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10)
                 for _ in range(min(100, count - start))]
        for s in socks:
            s.close()


def test_thousands_of_rows_stay_cheap_and_do_not_yank_the_view(twistd, redis_server, browser):
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--web-connections", "5000", "--quiet")
    _connections(port, 3000)
    browser.get(web_url(proc))
    wait_until(lambda: browser.find_element(By.ID, "totals").text.startswith(
        "3000 connection(s)"), 20, "3000 connections in the page")
    pane = browser.find_element(By.ID, "list-pane")

    def at_end():
        return list_at_end(browser)

    # it sticks to the newest: the last rows are drawn, and only a window of them
    wait_until(lambda: "3000" in listed_ids(browser), 5, "the newest row drawn")
    assert at_end()
    drawn = listed_ids(browser)
    assert 10 < len(drawn) < 200, len(drawn)  # what keeps a render cheap (timed in no test)

    # scrolled to the top: the first rows; new ones do not move it
    browser.execute_script("arguments[0].scrollTop = 0", pane)
    wait_until(lambda: listed_ids(browser)[:1] == ["1"], 5, "the first rows drawn")
    _connections(port, 20)
    wait_until(lambda: browser.find_element(By.ID, "totals").text.startswith(
        "3020 connection(s)"), 10, "the new connections")
    browser.execute_async_script("requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
    assert browser.execute_script("return arguments[0].scrollTop", pane) == 0
    assert listed_ids(browser)[:1] == ["1"] and "3020" not in listed_ids(browser)

    # the middle: the rows there are drawn, where they belong
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight / 2", pane)
    row = wait_until(lambda: browser.execute_script(
        "const p = arguments[0], r = p.getBoundingClientRect();"
        "const e = document.elementFromPoint(r.left + 20, r.top + r.height / 2);"
        "return e && e.closest('tr') && e.closest('tr').dataset.id", pane), 5, "a middle row")
    assert 1400 <= int(row) <= 1620, row

    # sorted newest first: the top row is the newest
    head = browser.find_element(By.CSS_SELECTOR, '#connections th[data-key="id"]')
    head.click()  # already sorted by id: the other way
    browser.execute_script("arguments[0].scrollTop = 0", pane)
    wait_until(lambda: listed_ids(browser)[:1] == ["3020"], 5, "the newest on top")

    # at the end again: it sticks to the newest as they come
    head.click()
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", pane)
    _connections(port, 5)
    wait_until(lambda: "3025" in listed_ids(browser), 10, "the newest row, followed")
    assert at_end()
    assert proc.terminate() == 0


def test_a_filter_finds_a_match_behind_more_rows_than_one_answer_reads(twistd, redis_server,
                                                                       browser):
    from playground.web.site import MAX_SCAN_ROWS

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    redis_cli(port, "get", "behind")  # connection 1: the GET
    sets = b"".join(b"set behind%d v\n" % i for i in range(MAX_SCAN_ROWS + 500))
    redis_cli(port, stdin=sets)  # connection 2: more SETs than one answer reads
    browser.get(web_url(proc) + "#cmd=GET")
    wait_until(lambda: listed_ids(browser) == ["1"], 10, "the GET connection, behind the SETs")
    assert proc.terminate() == 0


def test_the_page_follows_redis_cli_and_shows_traffic_as_text(twistd, redis_server, browser,
                                                              tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: browser.find_element(By.ID, "status").text == "live", 10, "live feed")

    def rows():
        return browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr")

    def row_of(pair_text):
        return [r for r in rows() if r.find_elements(By.TAG_NAME, "td")[0].text == pair_text]

    def pick(tr):
        tr.click()
        wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#exchanges tbody tr"), 5,
                   "the exchanges of the picked connection")

    def exchange_rows():
        return [cells for _, cells in table_rows(browser, "#exchanges tbody tr")]

    # 1. the connection shows within a second
    assert redis_cli(port, "set", "foo", "bar") == "OK"
    done = time.monotonic()
    wait_until(lambda: rows(), 1.0, "the connection in the list within a second")
    assert time.monotonic() - done <= 1.0
    wait_until(lambda: "closed" in rows()[0].text, 5, "its close")
    cells = [td.text for td in rows()[0].find_elements(By.TAG_NAME, "td")]
    assert cells[0] == "1" and cells[3] == "resp" and cells[4] == "closed"

    # 2. clicking it shows set foo "bar" -> +OK
    pick(rows()[0])
    (index, request, arrow, reply, latency, sizes), = exchange_rows()
    assert (index, request, arrow, reply) == ("1", 'set foo "bar"', "→", "+OK")
    assert latency.endswith(("µs", "ms")) and sizes == "31 B / 5 B"
    for kind in ("pcap", "jsonl"):  # the header's download links: this connection's files
        link = browser.find_element(By.ID, f"download-{kind}")
        assert link.get_attribute("href").split("?")[0].endswith(f"/api/connections/1.{kind}")
        assert link.get_attribute("download") is not None

    # 3. the follow view shows the exact bytes, client and server apart
    sent = b"*3\r\n$3\r\nset\r\n$3\r\nfoo\r\n$3\r\nbar\r\n"

    def spans(direction):
        return "".join(s.get_attribute("textContent")
                       for s in browser.find_elements(By.CSS_SELECTOR, f"#stream span.{direction}"))

    wait_until(lambda: spans("s2c"), 5, "the server's bytes")
    assert spans("c2s") == stream_text(sent)
    assert spans("s2c") == stream_text(b"+OK\r\n")
    marks = [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#stream .mark")]
    assert marks == ["── FIN from the client ──", "── FIN from the server ──",
                     "── closed from the client ──"]
    browser.find_element(By.ID, "view-hex").click()
    assert "00000000  2a 33 0d 0a 24 33 0d 0a 73 65 74 0d 0a 24 33 0d  *3..$3..set..$3." in \
        spans("c2s")
    browser.find_element(By.ID, "view-text").click()

    # 4. attacker data renders as text: a <script> value, an escape sequence
    redis_cli(port, "set", "x", "<script>alert(1)</script>")
    redis_cli(port, "set", "esc", "\x1b[31mred")
    wait_until(lambda: row_of("3"), 5, "the third connection")
    pick(row_of("2")[0])
    wait_until(lambda: exchange_rows() and "x" in exchange_rows()[0][1], 5, "connection 2")
    assert exchange_rows()[0][1] == 'set x "<script>alert(1)</script>"'
    assert browser.execute_script("return document.querySelectorAll('script').length") == 2  # app.js, plots.js
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    wait_until(lambda: "<script>alert(1)</script>" in spans("c2s"), 5, "the script as bytes")
    pick(row_of("3")[0])
    wait_until(lambda: exchange_rows() and "esc" in exchange_rows()[0][1], 5, "connection 3")
    assert exchange_rows()[0][1] == 'set esc "\\x1b[31mred"'
    wait_until(lambda: "\\x1b[31mred" in spans("c2s"), 5, "the escape as text")

    # the README's picture: a connection with a few kinds of replies
    commands = (b"set greeting hello\nget greeting\nincr visits\nrpush queue a b c\n"
                b"lrange queue 0 -1\nhset user:1 name ada lang en\nhgetall user:1\n"
                b"get missing\nnosuchcmd\n")
    redis_cli(port, stdin=commands)
    wait_until(lambda: row_of("4") and "closed" in row_of("4")[0].text, 5, "connection 4")
    pick(row_of("4")[0])
    wait_until(lambda: exchange_rows()[-1][3].startswith("-ERR unknown command"), 5,
               "its exchanges")  # COMMAND DOCS (redis-cli asks first), then the nine
    assert [r[1] for r in exchange_rows()][-3:] == ['hgetall user:1', 'get missing', 'nosuchcmd']
    assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, "#connections td.errors-some")
            ] == ["1"]

    # 5. Reset (RST) on an idle connection: the client sees a reset, the row turns closed
    assert browser.find_element(By.ID, "close-rst").get_attribute("disabled")  # 4 is closed
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sock:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        assert sock.recv(100) == b"+PONG\r\n"
        wait_until(lambda: row_of("5") and row_of("5")[0].find_elements(
            By.TAG_NAME, "td")[8].text == "1", 5, "the idle connection")
        pick(row_of("5")[0])
        reset = browser.find_element(By.ID, "close-rst")
        wait_until(lambda: reset.is_enabled(), 5, "Reset enabled on an open connection")
        reset.click()
        clicked = time.monotonic()
        with pytest.raises(ConnectionResetError):
            sock.recv(100)
    wait_until(lambda: row_of("5")[0].find_elements(By.TAG_NAME, "td")[4].text == "closed", 1.0,
               "the row closed within a second")
    assert time.monotonic() - clicked <= 1.5
    assert row_of("5")[0].find_elements(By.TAG_NAME, "td")[10].text == "reset (web view)"
    wait_until(lambda: not reset.is_enabled() and not browser.find_element(
        By.ID, "close-fin").is_enabled(), 5, "both buttons disabled once closed")
    pick(row_of("4")[0])  # the README's picture shows connection 4

    target = os.environ.get("TCPPLAY_WEB_SCREENSHOT")
    if target:
        # the last frame painted: two animation frames after the last change
        browser.execute_async_script(
            "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        browser.save_screenshot(str(ROOT / target))
    assert proc.terminate() == 0


def test_the_page_works_with_a_token_off_loopback(twistd, redis_server, browser):
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0", "--quiet")
    url = web_url(proc)
    assert "?token=" in url
    browser.get(url)  # the printed address: the page passes the token on to what it asks for
    wait_until(lambda: browser.find_element(By.ID, "status").text == "live", 10, "live feed")
    assert redis_cli(port, "ping") == "PONG"
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr"), 5,
               "the connection")
    browser.find_element(By.CSS_SELECTOR, "#connections tbody tr").click()
    wait_until(lambda: "PONG" in browser.find_element(By.ID, "exchanges").text, 5, "its row")
    assert proc.terminate() == 0


def test_a_page_on_another_site_cannot_take_the_views_event_streams(twistd, evil_browser):
    """A page anywhere can have the browser ask the loopback view (only reading the answers is
    refused to it): its frames of /api/events, on names under .localhost (a browser opens 6
    connections a name), held all 32 event streams of the view, and the user's page, opened
    beside it, said reconnecting… for as long as that page was open."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    proc, _ = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1", "--quiet")
    url = web_url(proc)
    view_port = int(url.split(":")[2].split("/")[0])
    frames = 40
    evil = (f"<!doctype html><body><script>window.loaded = 0; addEventListener('load', () => {{"
            f" for (let i = 0; i < {frames}; i++) {{ const f = document.createElement('iframe');"
            f" f.onload = () => window.loaded++;"
            f" f.src = `http://x${{i}}.localhost:{view_port}/api/events`;"
            f" document.body.appendChild(f); }} }});</script></body>").encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(evil)))
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        evil_browser.get(f"http://evil.test:{server.server_address[1]}/")
        # the frames the view answered at once (before, those over its 32 streams: a 503)
        wait_until(lambda: evil_browser.execute_script("return window.loaded") >= frames - 32,
                   15, "the frames answered")
        evil_browser.switch_to.new_window("tab")
        evil_browser.get(url)  # the user's page, the other still open
        wait_until(lambda: status(evil_browser) == "live", 10, "the view's own page live")
    finally:
        server.shutdown()
        server.server_close()
    assert proc.terminate() == 0


def test_the_stream_pane_says_the_chunks_it_no_longer_shows(twistd, redis_server, browser):
    """The follow-stream pane keeps a connection's last 5000 chunks: those before went from it
    without a word (the capture had them all, so no eviction was said), and scrolled to its
    top the stream seemed to begin with a PING in the middle of the connection."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        for _ in range(3000):  # one at a time: a chunk each way each, 6000 chunks
            s.sendall(b"PING\r\n")
            assert s.recv(100) == b"+PONG\r\n"
    wait_until(lambda: listed_ids(browser) == ["1"], 10, "the connection")
    browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
    note = browser.find_element(By.ID, "stream-note")
    wait_until(lambda: "not shown" in note.text, 20, "the note of the chunks not shown")
    shown = browser.execute_script("return document.getElementById('stream').children.length")
    dropped = int(note.text.split(" ", 1)[0])
    assert shown == 5000 and dropped >= 1000, note.text  # 6000 data chunks, and the marks'
    first = dropped + 1  # the first chunk shown: an odd one a PING, an even one a PONG
    where = (f"client → server, offset {6 * (first // 2)}," if first % 2
             else f"server → client, offset {7 * (first // 2 - 1)},")
    top = browser.execute_script("return document.getElementById('stream').firstChild.title")
    assert top.startswith(where), (top, note.text)
    assert proc.terminate() == 0


def test_the_stream_pane_names_the_evicted_bytes_as_the_pcap_does(twistd, redis_server, browser):
    """N evicted bytes are bytes 0 to N-1 (the .pcap's X-Tcpplay-Evicted says so); the pane
    said 0-N, one byte it still showed included."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--web-memory", "1", "--quiet")
    url = web_url(proc)
    browser.get(url)
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    value = b"v" * (3 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(value), value))
        assert s.recv(100) == b"+OK\r\n"
    wait_until(lambda: listed_ids(browser) == ["1"], 10, "the connection")
    wait_until(lambda: api_get(url + "api/connections/1")["connection"]["state"] == "closed",
               10, "its close")
    evicted = api_get(url + "api/connections/1")["connection"]["stream_evicted"]["c2s"]
    assert evicted > 0
    browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
    note = browser.find_element(By.ID, "stream-note")
    wait_until(lambda: "evicted" in note.text, 10, "the note of the evicted bytes")
    assert note.text == f"client → server bytes 0-{evicted - 1} evicted", note.text
    assert proc.terminate() == 0


def _stream_pane_after_an_evicted_set(twistd, redis_server, browser):
    """A proxy with ``--web-memory 1`` and the page on connection 1's stream pane, which shows
    a PING and its PONG; then an 8 MiB SET on it, more than the capture holds. Returns the
    proxy, the page's URL, ``shown`` (the pane's entries: ``[direction, n]`` a chunk, ``["gap",
    count]`` a gap mark) and the client's socket, still open."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--web-memory", "1", "--quiet")
    url = web_url(proc)
    browser.get(url)
    wait_until(lambda: status(browser) == "live", 10, "live feed")

    def shown() -> list:
        return browser.execute_script("return chunks.map((c) => [c.mark || c.direction, "
                                      "c.mark === 'gap' ? c.count : c.n])")

    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"PING\r\n")
    assert s.recv(100) == b"+PONG\r\n"
    wait_until(lambda: listed_ids(browser) == ["1"], 10, "the connection")
    browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
    wait_until(lambda: shown() == [["c2s", 1], ["s2c", 2]], 10, "the PING and its PONG")
    value = b"v" * (8 << 20)
    s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$%d\r\n%s\r\n" % (len(value), value))
    assert s.recv(100) == b"+OK\r\n"
    return proc, url, shown, s


def test_the_stream_pane_marks_chunks_evicted_between_its_answers(twistd, redis_server,
                                                                   browser):
    """Chunks the capture evicted after the pane had read the ones before them, before it read
    them, were skipped without a mark: the pane showed a PONG followed by the middle of a SET's
    value as if one came after the other (the note names the evicted bytes from 0, which the
    pane still shows)."""
    from selenium.webdriver.common.by import By

    proc, url, shown, s = _stream_pane_after_an_evicted_set(twistd, redis_server, browser)
    s.close()
    wait_until(lambda: api_get(url + "api/connections/1")["connection"]["state"] == "closed",
               10, "its close")
    last = api_get(url + "api/connections/1/stream?after=0")["chunks"][-1]["n"]
    wait_until(lambda: browser.execute_script("return lastChunk") == last, 10, "the last chunk")
    chunks = shown()
    gaps = [count for kind, count in chunks if kind == "gap"]
    assert gaps and chunks[2][0] == "gap", chunks[:4]
    assert len(chunks) - len(gaps) + sum(gaps) == last  # every chunk shown or counted, once
    assert "chunk(s) evicted before shown" in browser.find_element(By.ID, "stream").text
    assert proc.terminate() == 0


def test_the_note_of_chunks_not_shown_counts_the_chunks_of_a_gap_it_let_go(twistd, redis_server,
                                                                         browser):
    """A gap mark (``N chunk(s) evicted before shown``) that went from the top of the pane, 5000
    chunks later, was counted as one earlier chunk not shown: its N chunks went unsaid. Every
    chunk of the connection is shown, in a gap mark shown, or counted in the note, once."""
    from selenium.webdriver.common.by import By

    proc, url, shown, s = _stream_pane_after_an_evicted_set(twistd, redis_server, browser)
    with s:
        gap = wait_until(lambda: (shown()[2:3] or [None])[0], 20, "what follows the PONG")
        assert gap[0] == "gap" and gap[1] > 1, shown()[:4]  # the value's chunks, evicted
        for _ in range(3000):  # a chunk each way each: the gap goes from the top of the pane
            s.sendall(b"PING\r\n")
            assert s.recv(100) == b"+PONG\r\n"
    wait_until(lambda: api_get(url + "api/connections/1")["connection"]["state"] == "closed",
               10, "its close")
    last, more = 0, True
    while more:  # the number of its last chunk (the API's answers are bounded: more)
        answer = api_get(url + f"api/connections/1/stream?after={last}")
        last, more = (answer["chunks"] or [{"n": last}])[-1]["n"], answer["more"]
    wait_until(lambda: browser.execute_script("return lastChunk") == last, 20, "the last chunk")
    chunks = shown()
    note = browser.find_element(By.ID, "stream-note").text
    first = next(n for kind, n in chunks if kind != "gap")
    assert first > 2 + gap[1], chunks[:2]  # the PING, the PONG, the gap's chunks: gone
    assert len(chunks) == 5000 and "earlier chunk(s) not shown" in note, note
    not_shown = int(note.split(" ", 1)[0])
    gaps = [count for kind, count in chunks if kind == "gap"]
    assert not_shown + len(chunks) - len(gaps) + sum(gaps) == last, (note, gaps, last)
    assert proc.terminate() == 0


def test_the_exchanges_table_marks_rows_evicted_between_its_answers(twistd, redis_server,
                                                                     browser):
    """Rows the capture evicted after the table had read the ones before them, before it read
    them, were skipped without a mark (only the numbers jumped)."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--web-memory", "1", "--quiet")
    url = web_url(proc)
    browser.get(url)
    wait_until(lambda: status(browser) == "live", 10, "live feed")

    def shown() -> list:
        return browser.execute_script(
            "return exchanges.map((x) => x.gap ? ['gap', x.gap] : ['row', x.index])")

    sets = 20_000
    pipeline = b"".join(b"*3\r\n$3\r\nSET\r\n$6\r\nk%05d\r\n$200\r\n%s\r\n" % (i, b"v" * 200)
                        for i in range(sets))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(100) == b"+PONG\r\n"
        wait_until(lambda: listed_ids(browser) == ["1"], 10, "the connection")
        browser.find_element(By.CSS_SELECTOR, '#connections tbody tr[data-id="1"]').click()
        wait_until(lambda: shown() == [["row", 1]], 10, "the PING's row")
        s.sendall(pipeline)
        got = b""
        while got.count(b"+OK") < sets:
            got += s.recv(1 << 16)
    wait_until(lambda: api_get(url + "api/connections/1")["connection"]["state"] == "closed",
               10, "its close")
    wait_until(lambda: browser.execute_script("return lastExchange") == sets + 1, 20,
               "the last row read")
    rows = shown()
    gaps = [n for kind, n in rows if kind == "gap"]
    assert gaps and rows[1][0] == "gap", rows[:3]
    assert len(rows) - len(gaps) + sum(gaps) == sets + 1  # every row shown or counted, once
    assert proc.terminate() == 0


def test_the_latency_panel_shows_redis_benchmark_per_command(twistd, redis_server, browser):
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: browser.find_element(By.ID, "status").text == "live", 10, "live feed")
    assert not browser.find_element(By.ID, "latency-pane").is_displayed()
    browser.find_element(By.ID, "latency-toggle").click()
    assert browser.find_element(By.ID, "latency-pane").is_displayed()
    subprocess.run([need("redis-benchmark"), "-p", str(port), "-t", "get,set", "-n", "2000",
                    "-c", "4", "-q"], capture_output=True, timeout=120, check=True)

    def table():
        return {key: list(cells) for key, cells in table_rows(browser, "#latency tbody tr")}

    wait_until(lambda: {"resp GET", "resp SET"} <= set(table()) and table()["resp GET"][2] == "2000"
               and table()["resp SET"][2] == "2000", 5, "GET and SET rows, 2000 each")
    for name in ("resp GET", "resp SET"):
        proto, command, count, errors, *times = table()[name]
        assert (proto, command, count, errors) == ("resp", name[5:], "2000", "0")
        assert all(t.endswith(("µs", "ms")) for t in times), times  # p50 p90 p99 max

    def painted(canvas_id):  # pixels the chart drew (a cleared canvas has none)
        return browser.execute_script(
            "const c = document.getElementById(arguments[0]);"
            "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", canvas_id)

    for canvas_id in ("histogram", "rate"):
        canvas = browser.find_element(By.ID, canvas_id)
        assert int(canvas.get_attribute("data-bars")) > 0, canvas_id
        assert painted(canvas_id) > 500, canvas_id
    assert browser.find_element(By.ID, "rate-title").text.startswith("exchanges/s")
    browser.find_element(By.CSS_SELECTOR, '#latency tbody tr[data-key="resp SET"]').click()
    wait_until(lambda: browser.find_element(By.ID, "histogram-title").text.startswith("resp SET"),
               3, "the picked command's histogram")
    assert browser.find_element(By.CSS_SELECTOR, "#latency tbody tr.picked").get_attribute(
        "data-key") == "resp SET"

    # a command name is attacker data: text in the table, never HTML
    subprocess.run([need("redis-cli"), "-p", str(port), "<b>x</b>"], capture_output=True,
                   timeout=20)
    wait_until(lambda: "resp <B>X</B>" in table(), 5, "the unknown command's row")
    assert table()["resp <B>X</B>"][1:4] == ["<B>X</B>", "1", "1"]  # one, an error
    assert not browser.find_elements(By.CSS_SELECTOR, "#latency b")
    browser.find_elements(By.CSS_SELECTOR, "#connections tbody tr")[-2].click()  # beside it
    wait_until(lambda: (drawn_exchanges(browser) or [0])[-1] > 400, 5,
               "a benchmark connection's exchanges under the panel")
    # the picked connection's pane made the list shorter: it still sticks to the newest (it
    # stayed at its top, the newest and the picked row out of view)
    wait_until(lambda: list_at_end(browser), 3, "the list at its newest row")
    assert listed_ids(browser)[-2:] == ["9", "10"]
    target = os.environ.get("TCPPLAY_WEB_LATENCY_SCREENSHOT")
    if target:  # docs/web-latency.png
        browser.execute_async_script(
            "requestAnimationFrame(() => requestAnimationFrame(arguments[0]))")
        browser.save_screenshot(str(ROOT / target))
    assert proc.terminate() == 0


def test_a_url_with_a_filter_opens_with_only_the_matching_rows(twistd, redis_server, browser):
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    assert redis_cli(port, "set", "k", "v") == "OK"  # connection 1
    assert redis_cli(port, "get", "k") == "v"  # connection 2
    assert redis_cli(port, "ping") == "PONG"  # connection 3
    browser.get(web_url(proc) + "#proto=resp&cmd=GET")
    wait_until(lambda: browser.find_element(By.ID, "status").text == "live", 10, "live feed")
    assert browser.find_element(By.ID, "filter").get_attribute("value") == "proto=resp&cmd=GET"

    def listed():
        return [cells[0] for _, cells in table_rows(browser, "#connections tbody tr")]

    wait_until(lambda: listed() == ["2"], 5, "only the GET connection")
    # the header counts what the filter lets through, not only all three (which misled)
    wait_until(lambda: browser.find_element(By.ID, "totals").text
               == "1 of 3 connection(s) · 0 evicted", 5, "the filtered count")
    assert redis_cli(port, "get", "k") == "v"  # connection 4: live, it matches too
    assert redis_cli(port, "ping") == "PONG"  # connection 5: it does not
    wait_until(lambda: listed() == ["2", "4"], 5, "the new GET connection, live")
    # connection 6, a GET after the PING: once it is listed, the page has seen connection 5
    assert redis_cli(port, "get", "k") == "v"
    wait_until(lambda: len(listed()) == 3, 5, "connection 6, live")
    assert listed() == ["2", "4", "6"]  # and left the PING out
    browser.find_element(By.CSS_SELECTOR, "#connections tbody tr").click()
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "#exchanges tbody tr"), 5, "rows")
    assert [cells[1] for _, cells in table_rows(browser, "#exchanges tbody tr")] == ["get k"]
    field = browser.find_element(By.ID, "filter")  # the bar changes the URL and the list
    field.clear()
    field.send_keys("cmd=PING\n")
    wait_until(lambda: listed() == ["3", "5"], 5, "the PING connections")
    assert browser.current_url.endswith("#cmd=PING")
    wait_until(lambda: browser.find_element(By.ID, "totals").text
               == "2 of 6 connection(s) · 0 evicted", 5, "the filtered count")
    # a key that is not a filter (a typo) is said, not silently ignored while the bar shows it
    field.clear()
    field.send_keys("cmnd=GET&proto=resp\n")
    wait_until(lambda: browser.find_element(By.ID, "filter-note").text
               == "not a filter: cmnd (filters: proto, cmd, http, errors, slow, client)", 5,
               "the note on the unknown key")
    wait_until(lambda: len(listed()) == 6, 5, "proto=resp alone applied")
    field.clear()
    field.send_keys("GET\n")
    wait_until(lambda: browser.find_element(By.ID, "filter-note").text.startswith(
        "not a filter: GET ("), 5, "the note on a bare GET")
    field.clear()
    field.send_keys("\n")  # no filter: every connection, and the plain count
    wait_until(lambda: len(listed()) == 6, 5, "every connection")
    assert browser.find_element(By.ID, "totals").text == "6 connection(s) · 0 evicted"
    assert browser.find_element(By.ID, "filter-note").text == ""
    assert proc.terminate() == 0


def _api(url: str, path: str, **params) -> dict:
    import json
    import urllib.parse
    import urllib.request

    base, _, query = url.partition("?")
    q = dict(urllib.parse.parse_qsl(query), **{k: str(v) for k, v in params.items()})
    with urllib.request.urlopen(f"{base}{path}?{urllib.parse.urlencode(q)}", timeout=10) as r:
        return json.load(r)


def test_one_connections_many_exchanges_are_drawn_as_a_window(twistd, redis_server, browser):
    """redis-benchmark -P 16 -c 1 sends 24,000 SETs through one connection: the table draws a
    few hundred rows at most, the right ones at the top, in the middle and at the bottom; on a
    live connection it keeps the place the user scrolled to, follows new rows at the end, and
    a filter still picks the rows."""
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, redis_server.port, "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    url = web_url(proc)
    subprocess.run([need("redis-benchmark"), "-p", str(port), "-t", "set", "-n", "24000",
                    "-P", "16", "-c", "1", "-r", "100000", "-q"], capture_output=True,
                   timeout=120, check=True)
    wait_until(lambda: max((c["exchanges"] for c in _api(url, "api/connections")["connections"]),
                           default=0) == 24000, 10, "the benchmark's 24,000 SETs in the capture")
    bench = max(_api(url, "api/connections")["connections"], key=lambda c: c["exchanges"])
    total = bench["exchanges"]

    browser.get(url)
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    def click_row(pair: int) -> None:
        wait_until(lambda: str(pair) in listed_ids(browser), 5, f"connection {pair} listed")
        browser.find_element(By.CSS_SELECTOR, f'#connections tbody tr[data-id="{pair}"]').click()

    click_row(bench["id"])
    box = browser.find_element(By.CSS_SELECTOR, ".exchanges-box .scroll")

    def in_view() -> int:
        """The index of the row in the middle of the table's view."""
        return browser.execute_script(
            "const r = arguments[0].getBoundingClientRect();"
            "const e = document.elementFromPoint(r.left + 60, r.top + r.height / 2);"
            "return e && e.closest('tr') && Number(e.closest('tr').dataset.index)", box)

    def same_as_the_api(index: int) -> None:
        [row] = _api(url, f"api/connections/{bench['id']}", after=index - 1, limit=1)["exchanges"]
        tr = browser.find_element(By.CSS_SELECTOR, f'#exchanges tbody tr[data-index="{index}"]')
        cells = [td.get_attribute("textContent") for td in tr.find_elements(By.TAG_NAME, "td")]
        assert cells[:4] == [str(index), row["request"], "→", row["reply"]], (cells, row)
        assert row["request"].startswith("SET key:") and row["reply"] == "+OK"

    # the bottom: it follows the rows as the pages of the answer come, to the last
    wait_until(lambda: (drawn_exchanges(browser) or [0])[-1] == total, 20, "the last row drawn")
    drawn = drawn_exchanges(browser)
    assert drawn == list(range(drawn[0], total + 1)) and 10 < len(drawn) < 300, len(drawn)
    assert total - 40 <= in_view() <= total
    same_as_the_api(total)

    # the top
    browser.execute_script("arguments[0].scrollTop = 0", box)
    wait_until(lambda: drawn_exchanges(browser)[:1] == [1], 5, "the first rows drawn")
    drawn = drawn_exchanges(browser)
    assert drawn == list(range(1, len(drawn) + 1)) and len(drawn) < 300
    same_as_the_api(1)

    # the middle, where the scroll bar says
    browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight / 2", box)
    middle = wait_until(in_view, 5, "a middle row")
    assert abs(middle - total / 2) < total * 0.01, middle
    same_as_the_api(middle)
    drawn = drawn_exchanges(browser)
    assert drawn == list(range(drawn[0], drawn[-1] + 1)) and len(drawn) < 300

    # a redraw after a jump: every row new, and still only a window of them in the page
    most = browser.execute_script(
        "const box = arguments[0], most = [];"
        "for (let i = 0; i < 10; i++) {"
        "  box.scrollTop = (i % 2 ? 0.1 : 0.9) * box.scrollHeight - i * 1000;"
        "  renderExchanges();"
        "  most.push(document.querySelectorAll('#exchanges tbody tr[data-index]').length); }"
        "return Math.max(...most)", box)
    assert 10 < most < 300, most

    # a live connection: scrolled up, new rows leave the view where it is; at the end, followed
    live = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        def pings(n: int) -> None:
            live.sendall(b"PING\r\n" * n)
            got = b""
            while got.count(b"+PONG") < n:
                got += live.recv(65536)

        pings(3000)
        wait_until(lambda: any(c["exchanges"] == 3000 for c in
                               _api(url, "api/connections")["connections"]), 10, "3000 PINGs")
        live_id = max(c["id"] for c in _api(url, "api/connections")["connections"])
        click_row(live_id)
        wait_until(lambda: (drawn_exchanges(browser) or [0])[-1] == 3000, 10, "the live rows")
        browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight / 3", box)
        held = wait_until(in_view, 5, "a row a third of the way")
        top = browser.execute_script("return arguments[0].scrollTop", box)
        pings(500)
        wait_until(lambda: browser.execute_script(
            "return arguments[0].scrollHeight", box) > top * 3 + 400, 10, "the new rows' room")
        assert browser.execute_script("return arguments[0].scrollTop", box) == top
        assert in_view() == held
        browser.execute_script("arguments[0].scrollTop = arguments[0].scrollHeight", box)
        wait_until(lambda: 3500 in drawn_exchanges(browser), 5, "the end")
        pings(200)
        wait_until(lambda: drawn_exchanges(browser)[-1:] == [3700], 10, "the new rows, followed")
        assert 3650 <= in_view() <= 3700

        # a filter still applies: only the matching rows, in a window of their own
        live.sendall(b"ECHO a\r\n" + b"PING\r\n" * 1000 + b"ECHO b\r\n")
        got = b""
        while got.count(b"+PONG") < 1000 or not got.endswith(b"$1\r\nb\r\n"):
            got += live.recv(65536)
        wait_until(lambda: drawn_exchanges(browser)[-1:] == [4702], 10, "the ECHO b row")
        field = browser.find_element(By.ID, "filter")
        field.send_keys("cmd=ECHO\n")
        wait_until(lambda: drawn_exchanges(browser) == [3701, 4702], 10, "only the ECHO rows")
        target = os.environ.get("TCPPLAY_WEB_EXCHANGES_SCREENSHOT")
        if target:
            browser.save_screenshot(target)
    finally:
        live.close()
    assert proc.terminate() == 0


def test_a_client_the_proxy_could_not_connect_is_listed_with_why(twistd, browser):
    # the target is down: the client's pair is in the list, closed, connect-failed; picked,
    # its summary says why and its stream that the proxy could not reach the server
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(10) == b""  # closed by the proxy
    row = wait_until(lambda: [cells for key, cells in table_rows(browser, "#connections tbody tr")
                              if cells[-1] == "connect-failed (server)"], 5, "the failed pair")[0]
    assert (row[0], row[3], row[4], row[5], row[6]) == ("1", "—", "closed", "0 B", "0 B")
    assert "→ tcp:host=127.0.0.1:port=" in row[2]
    browser.find_element(By.CSS_SELECTOR, "#connections tbody tr").click()
    summary = wait_until(lambda: browser.find_element(By.ID, "detail-summary").text, 5,
                         "the summary line")
    assert "closed (connect-failed, server: " in summary and "refused" in summary.lower()
    marks = wait_until(lambda: [m.text for m in browser.find_elements(By.CSS_SELECTOR,
                                                                      "#stream .mark")], 5,
                       "the stream's mark")
    assert marks == ["── the proxy could not reach the server ──"]


def test_the_connection_header_keeps_its_buttons_whole_in_a_narrow_window(twistd, browser):
    # at 1024 px the summary wraps, not the buttons' and links' words ("Close" over "(FIN)")
    from selenium.webdriver.common.by import By

    proc, port = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1",
                             "--quiet")
    browser.set_window_size(1024, 700)
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        assert s.recv(10) == b""  # the target is down: a connect-failed pair, with its why
    wait_until(lambda: listed_ids(browser) == ["1"], 5, "the connection")
    browser.find_element(By.CSS_SELECTOR, "#connections tbody tr").click()
    wait_until(lambda: "refused" in browser.find_element(By.ID, "detail-summary").text.lower(),
               5, "the summary line")
    lines = browser.execute_script(
        "return Array.from(document.querySelectorAll('.detail-head .actions > *'), (e) => {"
        " const r = document.createRange(); r.selectNodeContents(e);"
        " return [e.textContent, new Set(Array.from(r.getClientRects(),"
        " (x) => Math.round(x.top))).size]; })")
    assert lines == [["Close (FIN)", 1], ["Reset (RST)", 1], ["pcap", 1], ["JSON lines", 1]]
    assert proc.terminate() == 0


def test_the_rate_plots_time_labels_stay_apart_in_a_narrow_window(twistd, browser):
    # at 800 px the plot is some 230 px wide: "-60 s" ran into "-50 s" and "-10 s" into "now";
    # a label is drawn only clear of the others (the canvas says which: data-ticks)
    from selenium.webdriver.common.by import By

    proc, _ = start_proxy(twistd, free_port(), "--web", "tcp:0:interface=127.0.0.1", "--quiet")
    browser.set_window_size(800, 600)
    browser.get(web_url(proc))
    wait_until(lambda: status(browser) == "live", 10, "live feed")
    browser.find_element(By.ID, "latency-toggle").click()
    ticks = wait_until(lambda: browser.execute_script(
        "const t = document.getElementById('rate').dataset.ticks; return t && JSON.parse(t)"),
        5, "the rate plot's labels")
    texts = [text for text, _, _ in ticks]
    assert "now" in texts and len(texts) >= 3, texts
    spans = sorted((left, right) for _, left, right in ticks)
    assert all(right + 2 <= next_left
               for (_, right), (next_left, _) in zip(spans, spans[1:], strict=False)), ticks
    assert proc.terminate() == 0
