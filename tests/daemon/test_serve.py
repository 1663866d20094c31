"""``twistd tcpplay serve --config FILE``: several services from one file, in one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request

import pytest

from playground.daemon import metrics, serve
from tests.support.net import free_port
from tests.support.paths import ROOT, TWISTD
from tests.support.waiting import wait_until
from tests.support.web import web_url


def _talk(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _config(tmp_path, echo_port, proxy_port, metrics_port=None, extra=""):
    path = tmp_path / "serve.toml"
    head = f'metrics = "{metrics_port}"\n' if metrics_port else ""
    path.write_text(
        f"{head}"
        f"[echo.backend]\nlisten = {echo_port}\n\n"
        f"[proxy.front]\nlisten = {proxy_port}\ntarget = {echo_port}\ndecode = \"text\"\n"
        f"quiet = true\n{extra}"
    )
    return path


@pytest.mark.twistd
def test_echo_and_proxy_in_front_of_it(twistd, tmp_path):
    echo_port, proxy_port, metrics_port = free_port(), free_port(), free_port()
    path = _config(tmp_path, echo_port, proxy_port, metrics_port)
    t = twistd(["serve", "--config", path], cwd=str(tmp_path))
    t.wait_for("proxy listening on")
    t.wait_for("echo listening on")
    t.wait_for("metrics listening on")
    assert _talk(echo_port, b"direct\n") == b"direct\n"
    assert _talk(proxy_port, b"through the proxy\n" * 100) == b"through the proxy\n" * 100
    t.wait_for("proxy #1 close")
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics.json", timeout=10) as r:
        body = json.load(r)
    by_name = {s["service"]: s for s in body["services"]}
    assert by_name["front"]["kind"] == "proxy" and by_name["backend"]["kind"] == "echo"
    assert by_name["front"]["connections"]["total"] == 1
    assert by_name["front"]["bytes"] == {"c2s": 1800, "s2c": 1800}
    # the echo saw one direct client and the proxy's upstream connection
    assert by_name["backend"]["connections"]["total"] == 2
    assert by_name["backend"]["bytes"] == {"c2s": 1807, "s2c": 1807}
    assert t.terminate() == 0
    out = t.output()
    assert "proxy stopped listening" in out and "echo stopped listening" in out
    assert "decoding in a child process" not in out  # the metrics count its commands here


@pytest.mark.twistd
def test_set_overrides_the_file(twistd, tmp_path):
    echo_port, proxy_port, other = free_port(), free_port(), free_port()
    path = _config(tmp_path, echo_port, proxy_port)
    t = twistd(["serve", "--config", path, "--set", f"proxy.front.listen={other}"],
               cwd=str(tmp_path))
    line = t.wait_for("proxy listening on")
    assert line.endswith(f"127.0.0.1:{other}")
    t.wait_for("echo listening on")
    assert _talk(other, b"x\n") == b"x\n"
    assert t.terminate() == 0


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


@pytest.mark.twistd
def test_a_proxy_table_serves_its_web_view(twistd, tmp_path):
    echo_port, proxy_port, web_port = free_port(), free_port(), free_port()
    path = _config(tmp_path, echo_port, proxy_port, extra=f'web = "{web_port}"\n')
    t = twistd(["serve", "--config", path], cwd=str(tmp_path))
    assert web_url(t) == f"http://127.0.0.1:{web_port}/"
    if (os.cpu_count() or 1) > 1:  # no metrics: decoded, and the view served, by a child
        t.wait_for("decoding in a child process")
    t.wait_for("proxy listening on")
    assert _talk(proxy_port, b"hello web\n") == b"hello web\n"

    def closed():
        rows = _get_json(f"http://127.0.0.1:{web_port}/api/connections")["connections"]
        return rows if rows and rows[0]["state"] == "closed" else None

    [row] = wait_until(closed, 10, "the pair closed in the web view")
    assert row["protocol"] == "text" and row["bytes_c2s"] == row["bytes_s2c"] == 10
    assert row["listen"] == f"127.0.0.1:{proxy_port}"
    with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/", timeout=10) as r:
        assert r.status == 200 and b"<html" in r.read().lower()
    assert t.terminate() == 0
    assert "web stopped listening" in t.output()


@pytest.mark.twistd
def test_bad_file_starts_nothing(tmp_path):
    port = free_port()
    path = tmp_path / "bad.toml"
    path.write_text(f"[echo.a]\nlisten = {port}\n\n[proxy.b]\ntarget = 1\nlisten = 'abc'\n")
    proc = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    out = proc.stdout + proc.stderr  # twistd prints usage errors on stdout
    assert proc.returncode != 0
    assert f"{path}:6: [proxy.b] listen: cannot read 'abc' as an address" in out
    assert "listening" not in out


@pytest.mark.twistd
def test_two_web_views_on_one_port_is_a_config_error(tmp_path):
    web_port = free_port()
    path = tmp_path / "webs.toml"
    path.write_text(f'[proxy.a]\nlisten = {free_port()}\ntarget = 1\nweb = "{web_port}"\n\n'
                    f'[proxy.b]\nlisten = {free_port()}\ntarget = 1\nweb = "{web_port}"\n')
    proc = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"{path}:9: [proxy.b] web: tcp:{web_port}:interface=127.0.0.1:backlog=1024 is "
            "already used by [proxy.a] web") in out
    assert "listening" not in out and "Traceback" not in out


@pytest.mark.real
@pytest.mark.parametrize("command", [["playground", "check-config"], ["playground.daemon.config"]])
def test_config_check_runs_as_a_command(command):
    proc = subprocess.run([sys.executable, "-m", *command, str(ROOT / "config" / "tcpplay.toml")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "[echo.echo] --listen=7000" in proc.stdout


@pytest.mark.real
def test_config_check_names_the_bad_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[echo.e]\nlisten = "abc"\n')
    proc = subprocess.run([sys.executable, "-m", "playground", "check-config", str(bad)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert f"{bad}:2: [echo.e] listen" in proc.stderr


@pytest.mark.memory
def test_make_service_builds_each_kind_with_a_shared_registry():
    from twisted.internet.testing import MemoryReactorClock

    o = serve.Options()
    o.parseOptions(["--config", str(ROOT / "config" / "tcpplay.toml")])
    reactor = MemoryReactorClock()
    top = serve.make_service(o, reactor=reactor)
    top.privilegedStartService()
    top.startService()
    try:
        ports = sorted(p[0] for p in reactor.tcpServers)
        assert ports == [6380, 6479, 7000, 7001, 8080, 9100]
        registry = next(s for s in top if isinstance(s, metrics.MetricsService)).registry
        assert [s.name for s in registry.sources] == ["redis", "echo", "web", "cache", "lobby"]
        assert registry.sources[0].commands is not None  # the proxy counts commands
        text = registry.prometheus().decode()
        assert 'tcpplay_service_info{service="lobby",kind="chat"} 1' in text
    finally:
        top.stopService()


@pytest.mark.twistd
@pytest.mark.parametrize("target", ["tcp:host=127.0.0.1:port=1:timeout=x",
                                    "tls:host=127.0.0.1:port=1:caCertsDir=/nonexistent"])
def test_a_target_only_the_endpoint_parser_refuses_is_one_line_naming_the_flag(tmp_path, target):
    # it passed the option checks and failed as the service was built: a traceback ending in
    # the UsageError, from twistd tcpplay proxy --target tcp:host=a:port=1:timeout=x
    proc = subprocess.run([TWISTD, "-n", "--pidfile=", "tcpplay", "proxy", "--listen",
                           str(free_port()), "--target", target],
                          capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1
    assert f"twistd tcpplay proxy: --target: {target!r}: " in out
    assert "Traceback" not in out and "listening" not in out


@pytest.mark.twistd
def test_a_service_that_cannot_listen_is_named_by_its_table(twistd, tmp_path):
    """A busy port ended start-up with 'tcpplay echo: cannot listen on ...': with several
    services of a kind, which table was it? The line now names the file, line and table."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        path = tmp_path / "serve.toml"
        path.write_text(f"[echo.a]\nlisten = {free_port()}\n\n[echo.b]\nlisten = {taken}\n")
        t = twistd(["serve", "--config", path], cwd=str(tmp_path))
        line = t.wait_for("cannot listen on --listen")
        assert f"{path}:4: [echo.b] tcpplay echo: cannot listen on --listen tcp:{taken}:" in line
        assert t.terminate() != 0
